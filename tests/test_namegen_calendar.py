"""NAMeGEn deterministic facts: the shared birth-time parser, BaZi / elements, calendar facts, and the 8 Acc
fact checks against cnlunar on all 500 CBNames queries (skipped when the data is absent)."""

from __future__ import annotations

import collections
import datetime
import os
import re

import pytest

pytest.importorskip("cnlunar")

from humanai_jax.methods.namegen import (  # noqa: E402
    calendar as cal,  # noqa: E402
    data,
    hanzi,
    metrics,
    poems,
)
from humanai_jax.methods.namegen.constants import tau  # noqa: E402

CBNAMES = data.default_data_dir()


def test_tau_schedule_matches_spec():
    want = [0.8, 0.8, 0.7213, 0.6213, 0.5581, 0.5139, 0.4809, 0.4551, 0.4343, 0.4170]
    assert [round(tau(t), 4) for t in range(10)] == want


def test_bazi_elements_and_missing_by_hand():
    text, missing = cal.bazi_with_elements(["甲子", "乙丑", "丙寅", "丁卯"])
    assert text == "甲子(木水) 乙丑(木土) 丙寅(火木) 丁卯(火木)"
    assert missing == ["金"]
    assert cal.missing_elements("壬子壬子庚子丙子") == ["木", "土"]
    with pytest.raises(ValueError, match="stem-branch"):
        cal.bazi_with_elements(["甲子", "乙丑", "丙寅"])


@pytest.mark.parametrize("query, text, season", [
    ("请为一个于2029年12月25日凌晨12点出生的女孩起名", "2029-12-25-00-00-00", ""),
    ("2030年11月30日凌晨12点25分出生的男孩", "2030-11-30-00-25-00", ""),
    ("2031年3月5日下午3点出生", "2031-03-05-15-00-00", ""),
    ("2031年3月5日晚8点出生", "2031-03-05-20-00-00", ""),
    ("2031年3月5日上午9点出生", "2031-03-05-09-00-00", ""),
    ("2031年3月5日下午12点出生", "2031-03-05-12-00-00", ""),
    ("请为一个于2025年春天出生的男孩起名", "2025-00-00-00-00-00", "春季"),
    ("2026年1月8日（农历十一月二十）出生", "2026-01-08-00-00-00", ""),
])
def test_parse_birth_time_hand_cases(query, text, season):
    b = cal.parse_birth_time(query)
    assert (b.text, b.season) == (text, season)


def test_compat_parser_reads_midnight_12_as_noon():
    q = "请为一个于2029年12月25日凌晨12点出生的女孩起名"
    assert cal.parse_birth_time(q, compat=True).hour == 12
    assert cal.parse_birth_time(q).hour == 0


def test_birth_from_text_errors_name_the_field():
    assert cal.birth_from_text("2030-02-00-00-00-00").month == 2
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        cal.birth_from_text("2030年2月")
    with pytest.raises(ValueError, match="hour 25"):
        cal.birth_from_text("2030-02-01-25-00-00")


def test_calendar_facts_known_dates():
    # 2000-01-01 00:00: 己卯 year (before the lunar new year), 丙子 month, 戊午 day, 壬子 hour (almanac values)
    f = cal.calendar_facts(cal.Birth(2000, 1, 1, 0, 0, 0))
    assert f["八字"] == "己卯 丙子 戊午 壬子" and f["生肖"] == "兔" and f["季节"] == "冬季"
    assert f["八字和五行"] == "己卯(土木) 丙子(火水) 戊午(土火) 壬子(水水)" and f["五行缺失"] == ["金"]
    assert f["节日"] == "元旦节" and f["节气"] == "无"
    assert cal.calendar_facts(cal.Birth(2024, 12, 21, 10))["节气"] == "冬至"
    assert cal.calendar_facts(cal.Birth(2024, 4, 4, 12))["节气"] == "清明"
    assert cal.calendar_facts(cal.Birth(2024, 2, 10, 10))["节日"] == "春节，国际气象节"


def test_calendar_facts_missing_date_parts():
    f = cal.calendar_facts(cal.Birth(2026, 0, 0, season="夏季"))
    assert (f["八字"], f["八字和五行"], f["五行缺失"], f["节日"], f["节气"], f["农历"]) == ("无", "无", [], "无", "无", "无")
    assert f["季节"] == "夏季"
    assert f["生肖"] == "马"  # 2026 summer: every day of May-August is in the 丙午 (horse) lunar year
    # compat: zodiac of the substituted date 2026-01-01, still the snake year (a reference quirk)
    assert cal.calendar_facts(cal.Birth(2026, 0, 0, season="夏季"), compat=True)["生肖"] == "蛇"
    assert cal.calendar_facts(cal.Birth(2026, 0, 0, season="冬季"))["生肖"] == "无"  # winter spans two lunar years
    with pytest.raises(ValueError, match="does not exist"):
        cal.calendar_facts(cal.Birth(2026, 2, 30))


# ---------------------------------------------------------------------------------------------------
# The 8 Acc fact checks on all 500 CBNames queries


def _reference_parse(query: str) -> tuple[int, int, int, int, int, int, str | None]:
    """The reference metric's regex parser, written independently here (docs/namegen.md §4): 凌晨12点 -> 12."""
    def first(p):
        m = re.search(p, query)
        return int(m.group(1)) if m else 0
    y, mo, d, h = first(r"(\d{4})年"), first(r"(\d{1,2})月"), first(r"(\d{1,2})日"), first(r"(\d{1,2})点")
    period = re.search(r"\d{1,2}日?(上午|中午|下午|凌晨|晚|早|傍晚|晚上|午夜)", query)
    if period and period.group(1) in ("下午", "晚", "傍晚", "晚上") and 0 < h < 12:
        h += 12
    s = re.search(r"年(春|夏|秋|冬)", query)
    return y, mo, d, h, first(r"(\d{1,2})分"), first(r"(\d{1,2})秒"), s.group(1) if s else None


def _truth_from_cnlunar(y, mo, d, h, mi, s):
    """Facts straight from cnlunar (no code of ours): the claims a perfect explanation would make."""
    import cnlunar

    lun = cnlunar.Lunar(datetime.datetime(y, mo, d, h, mi, s), godType="8char")
    pillars = [lun.year8Char, lun.month8Char, lun.day8Char, lun.twohour8Char]
    holidays = "，".join(x for x in (lun.get_legalHolidays() + "，" + lun.get_otherHolidays()).split("，") if x)
    return {"八字": " ".join(pillars), "生肖": lun.chineseYearZodiac, "季节": lun.lunarSeason[-1] + "季",
            "节气": lun.todaySolarTerms, "节日": holidays or "无"}


@pytest.mark.skipif(not os.path.exists(os.path.join(CBNAMES, "test_data_500.csv")),
                    reason=f"CBNames data absent ({CBNAMES})")
def test_acc_fact_checks_agree_with_cnlunar_on_all_cbnames_queries():
    rows = data.load_cbnames(CBNAMES)
    assert len(rows) == 500
    table, store = hanzi.load_hanzi_table(), poems.sample_poems()
    disagreements = collections.Counter()
    for row in rows:
        q = row["query"]
        y, mo, d, h, mi, s, season = _reference_parse(q)
        ours = cal.parse_birth_time(q)
        # 1. parser: ours == the reference regex, except "凌晨12点" (ours 00:00, the reference 12:00)
        if (ours.year, ours.month, ours.day, ours.hour, ours.minute, ours.second) != (y, mo, d, h, mi, s):
            assert "凌晨12点" in q and h == 12 and ours.hour == 0, q
            disagreements["凌晨12点 -> 00:00 (ours) vs 12:00 (reference)"] += 1
        assert cal.parse_birth_time(q, compat=True).hour == h
        facts = cal.calendar_facts(ours)
        if ours.has_date:
            truth = _truth_from_cnlunar(ours.year, ours.month, ours.day, ours.hour, ours.minute, ours.second)
            # 2. claims equal to cnlunar's own facts pass all 8 checks
            claims = {"古诗信息": [], "字和五行": [], "出生信息": {**truth, "五行缺失": "|".join(facts["五行缺失"]) or "无"}}
            assert metrics.acc_flags(claims, q, store, table) == [1] * 8, q
            # the claim without element annotations is accepted too, the annotated form as well
            claims["出生信息"]["八字"] = facts["八字和五行"]
            assert metrics.acc_flags(claims, q, store, table)[6] == 1
            # 3. each wrong claim fails exactly its own flag
            wrong = {"生肖": ("猫", 2), "季节": ("雨季" if truth["季节"] != "雨季" else "春季", 3),
                     "节气": ("大寒" if truth["节气"] != "大寒" else "小寒", 4),
                     "节日": ("愚人节" if truth["节日"] != "愚人节" else "无节", 5),
                     "八字": (truth["八字"][::-1], 6)}
            for field, (value, index) in wrong.items():
                bad = {"出生信息": {**dict.fromkeys(truth, "无"), field: value}}
                flags = metrics.acc_flags(bad, q, store, table)
                assert flags[index] == 0 and sum(flags) == 7, (q, field, flags)
            present = [e for e in cal.ELEMENTS if e not in facts["五行缺失"]]
            bad = {"出生信息": {**dict.fromkeys(truth, "无"), "五行缺失": present[0]}}
            assert metrics.acc_flags(bad, q, store, table)[7] == 0
        else:
            # year / season only: BaZi, festival, solar term unknown; a zodiac only when the season fixes it
            assert facts["八字"] == "无" and facts["五行缺失"] == [] and season is not None
            compat_zodiac = cal.calendar_facts(cal.parse_birth_time(q, compat=True), compat=True)["生肖"]
            if facts["生肖"] != compat_zodiac:
                disagreements["year+season only: zodiac of the 2024/1/1-substituted date (reference) "
                              "vs the season's lunar year or 无 (ours)"] += 1
    assert disagreements == {"凌晨12点 -> 00:00 (ours) vs 12:00 (reference)": 23,
                             "year+season only: zodiac of the 2024/1/1-substituted date (reference) "
                             "vs the season's lunar year or 无 (ours)": 17}, disagreements
