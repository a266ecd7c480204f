"""Deterministic birth facts for NAMeGEn: one birth-time parser (shared by generation and the Acc metric)
and the cnlunar calendar expansion (zodiac, season, festival, solar term, BaZi with elements, missing
elements). See docs/namegen.md and docs/namegen.md §2 step 4 and §4.

A birth time is a `Birth(year, month, day, hour, minute, second, season)`; unknown parts are 0 (and
`season` is "" when the query names none). `Birth.text` is the reference string "YYYY-MM-DD-HH-MM-SS".

`compat=True` reproduces the reference where ours deliberately differs:
  * parser: "凌晨12点" / "午夜12点" read as 12:00 (the reference metric regex) instead of 00:00;
  * zodiac when the year, month or day is unknown: taken from the date with 2024 / 1 / 1 substituted
    (ours: from the known year when it is unambiguous, else "无").
`cnlunar` is imported inside the functions: only this method needs it.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

__all__ = ["Birth", "parse_birth_time", "birth_from_text", "calendar_facts", "bazi_with_elements",
           "missing_elements", "ELEMENT_OF", "ELEMENTS", "season_name"]

ELEMENTS = ("木", "火", "土", "金", "水")
# Fixed stem/branch -> element table (no hidden stems), docs/namegen.md §2 step 4.
ELEMENT_OF = {**dict.fromkeys("甲乙", "木"), **dict.fromkeys("丙丁", "火"), **dict.fromkeys("戊己", "土"),
              **dict.fromkeys("庚辛", "金"), **dict.fromkeys("壬癸", "水"),
              **dict.fromkeys("子亥", "水"), **dict.fromkeys("丑辰未戌", "土"), **dict.fromkeys("寅卯", "木"),
              **dict.fromkeys("巳午", "火"), **dict.fromkeys("申酉", "金")}
_PM_WORDS = ("下午", "晚", "傍晚", "晚上")
_PERIOD = re.compile(r"\d{1,2}日?(上午|中午|下午|凌晨|晚|早|傍晚|晚上|午夜)")
_SEASON_WORD = re.compile(r"年(春|夏|秋|冬)")
_MIDNIGHT_12 = re.compile(r"(凌晨|午夜|半夜|深夜)\s*12\s*点")


@dataclasses.dataclass(frozen=True)
class Birth:
    year: int = 0
    month: int = 0
    day: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    season: str = ""  # "春季" / "夏季" / "秋季" / "冬季" named in the query, else ""

    @property
    def text(self) -> str:
        return (f"{self.year:04d}-{self.month:02d}-{self.day:02d}-{self.hour:02d}-{self.minute:02d}-"
                f"{self.second:02d}")

    @property
    def has_date(self) -> bool:
        return bool(self.year and self.month and self.day)


def season_name(text: str) -> str:
    """"春" / "仲春" / "春季" ... -> "春季" (first season character found), else ""."""
    for ch in text or "":
        if ch in "春夏秋冬":
            return ch + "季"
    return ""


def _first_int(pattern: str, query: str) -> int:
    m = re.search(pattern, query)
    return int(m.group(1)) if m else 0


def parse_birth_time(query: str, *, compat: bool = False) -> Birth:
    """The birth time named in a free-text Chinese query (regexes of the reference metric, docs/namegen.md §4).

    `(\\d{4})年`, `(\\d{1,2})月`, `(\\d{1,2})日`, `(\\d{1,2})点`, `分`, `秒`; +12 h after 下午/晚/傍晚/晚上
    when 0 < h < 12. Ours reads "凌晨12点"/"午夜12点" as 00:00 (as the generation-side extraction prompt
    states); `compat=True` keeps the reference's 12:00. The season comes from "<year>年春/夏/秋/冬".
    """
    year = _first_int(r"(\d{4})年", query)
    month = _first_int(r"(\d{1,2})月", query)
    day = _first_int(r"(\d{1,2})日", query)
    hour = _first_int(r"(\d{1,2})点", query)
    period = _PERIOD.search(query)
    if period and period.group(1) in _PM_WORDS and 0 < hour < 12:
        hour += 12
    if not compat and hour == 12 and _MIDNIGHT_12.search(query):
        hour = 0
    minute = _first_int(r"(\d{1,2})分", query)
    second = _first_int(r"(\d{1,2})秒", query)
    season = _SEASON_WORD.search(query)
    birth = Birth(year, month, day, hour, minute, second, season_name(season.group(1)) if season else "")
    _check_ranges(birth, where=f"query {query[:40]!r}")
    return birth


def birth_from_text(text: str, season: str = "") -> Birth:
    """Parses "YYYY-MM-DD-HH-MM-SS" (the LLM extraction format; missing trailing parts are 0)."""
    parts = [p for p in str(text).strip().split("-")]
    if not 1 <= len(parts) <= 6 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"birth time {text!r} is not 'YYYY-MM-DD-HH-MM-SS' (unknown parts '00')")
    values = [int(p) for p in parts] + [0] * (6 - len(parts))
    birth = Birth(*values, season=season_name(season))
    _check_ranges(birth, where=f"birth time {text!r}")
    return birth


def _check_ranges(b: Birth, *, where: str) -> None:
    limits = {"month": (0, 12), "day": (0, 31), "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}
    for name, (lo, hi) in limits.items():
        if not lo <= getattr(b, name) <= hi:
            raise ValueError(f"{where}: {name} {getattr(b, name)} outside [{lo}, {hi}]")


def bazi_with_elements(pillars: list[str]) -> tuple[str, list[str]]:
    """["甲子", "乙丑", ...] -> ("甲子(木水) 乙丑(木土) ...", missing elements in 木火土金水 order)."""
    chars = "".join(pillars)
    if len(chars) != 8 or any(c not in ELEMENT_OF for c in chars):
        raise ValueError(f"BaZi must be four stem-branch pairs, got {pillars!r}")
    text = " ".join(f"{p}({ELEMENT_OF[p[0]]}{ELEMENT_OF[p[1]]})" for p in pillars)
    return text, missing_elements(chars)


def missing_elements(chars: str) -> list[str]:
    present = {ELEMENT_OF[c] for c in chars if c in ELEMENT_OF}
    return [e for e in ELEMENTS if e not in present]


def _lunar(dt: datetime.datetime):
    import cnlunar

    return cnlunar.Lunar(dt, godType="8char")


def _festival(lunar) -> str:
    joined = lunar.get_legalHolidays() + "，" + lunar.get_otherHolidays()
    return "，".join(x for x in joined.split("，") if x) or "无"


def _safe_date(year: int, month: int, day: int) -> datetime.date | None:
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


# Gregorian months a season may cover (generous, so that a zodiac is only given when it cannot be wrong).
_SEASON_MONTHS = {"春季": [2, 3, 4, 5], "夏季": [5, 6, 7, 8], "秋季": [8, 9, 10, 11], "冬季": list(range(1, 13))}


def _zodiac_ours(b: Birth) -> str:
    """The zodiac when it is determined by what the query says: the lunar year of the known date; with the
    day (month) unknown, only when every day of that month (of the named season's months, else of the year)
    has the same zodiac; else "无"."""
    if not b.year:
        return "无"
    if b.month and b.day:
        return _lunar(datetime.datetime(b.year, b.month, b.day, b.hour, b.minute, b.second)).chineseYearZodiac
    months = [b.month] if b.month else _SEASON_MONTHS.get(b.season, list(range(1, 13)))
    first = datetime.date(b.year, months[0], 1)
    last = (datetime.date(b.year + (months[-1] == 12), months[-1] % 12 + 1, 1) - datetime.timedelta(days=1))
    z0 = _lunar(datetime.datetime.combine(first, datetime.time())).chineseYearZodiac
    z1 = _lunar(datetime.datetime.combine(last, datetime.time())).chineseYearZodiac
    return z0 if z0 == z1 else "无"


def calendar_facts(birth: Birth, user_season: str | None = None, *, compat: bool = False) -> dict:
    """Calendar expansion of a birth time (docs/namegen.md §2 step 4): a dict with 农历, 生肖, 季节, 节日, 节气,
    八字 (pillars only), 八字和五行, 五行缺失 (list).

    With the year, month or day unknown the date is computed with 2024 / 1 / 1 substituted, then 农历,
    节日, 节气, 八字 are "无" and 五行缺失 is []; 季节 is the user's season only when the month is unknown.
    `user_season` defaults to `birth.season`.
    """
    user_season = season_name(birth.season if user_season is None else user_season)
    year, month, day = birth.year or 2024, birth.month or 1, birth.day or 1
    if _safe_date(year, month, day) is None:
        raise ValueError(f"birth date {birth.text} does not exist")
    lunar = _lunar(datetime.datetime(year, month, day, birth.hour, birth.minute, birth.second))
    pillars = [lunar.year8Char, lunar.month8Char, lunar.day8Char, lunar.twohour8Char]
    bazi_text, missing = bazi_with_elements(pillars)
    facts = {
        "农历": f"{lunar.lunarYearCn} {lunar.year8Char}[{lunar.chineseYearZodiac}]年 {lunar.lunarMonthCn}{lunar.lunarDayCn}",
        "生肖": lunar.chineseYearZodiac,
        "季节": season_name(lunar.lunarSeason),
        "节日": _festival(lunar),
        "节气": lunar.todaySolarTerms or "无",
        "八字": " ".join(pillars),
        "八字和五行": bazi_text,
        "五行缺失": missing,
    }
    if not birth.has_date:
        facts.update({"农历": "无", "节日": "无", "节气": "无", "八字": "无", "八字和五行": "无", "五行缺失": []})
        if not birth.month:
            facts["季节"] = user_season or "无"
        if not compat:
            facts["生肖"] = _zodiac_ours(birth)
    return facts
