"""CBNames metric arithmetic by hand values, the Acc checks on hand claims, judge parsing / repair / drops, and
the poem store (BM25 filters, lookup) and CBNames loader."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

pytest.importorskip("cnlunar")
pytest.importorskip("rank_bm25")

from humanai_jax.agents import (
    GenConfig,  # noqa: E402
    ScriptedBackend,  # noqa: E402
)
from humanai_jax.methods.namegen import data, hanzi, metrics, poems  # noqa: E402
from humanai_jax.methods.namegen.llm import Caller, Tracer  # noqa: E402
from humanai_jax.methods.namegen.runner import prompt_library  # noqa: E402

W = [0.2222, 0.3333, 0.1111, 0.2222, 0.1111]


def test_item_metrics_hand_values():
    m = metrics.item_metrics(emoc=[3, 2, 1, 0, 3], crc=[3, 3, 3, 3, 3], lr=[0, 3, 3, 3, 3], acc=[1] * 6 + [0] * 2,
                             up_w=W)
    # n(s) = 100 s / 3 -> [100, 200/3, 100/3, 0, 100]
    emoc_w = 0.2222 * 100 + 0.3333 * 200 / 3 + 0.1111 * 100 / 3 + 0 + 0.1111 * 100
    assert m["EMOC_w"] == pytest.approx(emoc_w) and emoc_w == pytest.approx(59.25333, abs=1e-4)
    # population std: mean 60, squared deviations 1600, 400/9, 6400/9, 3600, 1600
    assert m["EMOC_std"] == pytest.approx(math.sqrt((1600 + 400 / 9 + 6400 / 9 + 3600 + 1600) / 5))
    assert (m["CRC"], m["LR"], m["Acc"]) == (pytest.approx(100), pytest.approx(80), pytest.approx(75))
    assert m["IMOC"] == pytest.approx(85)
    assert m["IMOC_std"] == pytest.approx(math.sqrt((100 + 225 + 25) / 2))  # sample std of 75, 100, 80
    assert m["CMOC"] == pytest.approx(0.5 * emoc_w + 42.5)
    assert m["CMOC_std"] == pytest.approx(abs(emoc_w - 85) / math.sqrt(2))


def test_valid_scores_drops_malformed_lists():
    assert metrics.valid_scores([0, 1, 2, 3, 2.5]) == [0, 1, 2, 3, 2.5]
    for bad in ([1, 2, 3], [1, 2, 3, 4, 1], [1, 2, "3", 1, 1], [True, 1, 1, 1, 1], None, "12312", [1, 1, 1, 1, -1]):
        assert metrics.valid_scores(bad) is None


def test_aggregate_mean_sample_std_n_and_drops():
    rows = [metrics.item_metrics([3] * 5, [3] * 5, [3] * 5, [1] * 8, W),
            metrics.item_metrics([0] * 5, [0] * 5, [0] * 5, [0] * 8, W), None]
    agg = metrics.aggregate(rows)
    assert (agg["n_items"], agg["n_scored"], agg["n_dropped"]) == (3, 2, 1)
    assert agg["CMOC"]["mean"] == pytest.approx(np.mean([0.5 * 99.99 + 50, 0]))
    assert agg["Acc"] == {"mean": 50.0, "std": pytest.approx(math.sqrt(2 * 50 ** 2)), "n": 2}


@pytest.fixture(scope="module")
def sample():
    return poems.sample_poems()


def test_check_poems(sample):
    ok = {"题目": "静夜思", "诗句": "举头望明月", "诗人": "李白", "朝代": "唐"}
    assert metrics.check_poems([ok], sample)
    assert metrics.check_poems([{**ok, "诗句": "举头望明月|低头思故乡"}], sample)
    assert not metrics.check_poems([{**ok, "诗人": "杜甫"}], sample)
    assert not metrics.check_poems([{**ok, "朝代": "宋代"}], sample)
    # two lines of two different poems, without a title: not one poem
    assert not metrics.check_poems([{"题目": "无", "诗句": "举头望明月|春眠不觉晓", "诗人": "无", "朝代": "无"}], sample)
    assert metrics.check_poems([{"题目": "无", "诗句": "无", "诗人": "无", "朝代": "无"}], sample)
    assert metrics.check_poems("无", sample) and metrics.check_poems([], sample)


def test_check_elements_and_birth():
    table = hanzi.load_hanzi_table()
    assert metrics.check_elements([{"字": "清", "五行": "水"}, {"字": "林", "五行": "属木"}], table)
    assert not metrics.check_elements([{"字": "清", "五行": "火"}], table)
    assert not metrics.check_elements([{"字": "龘", "五行": "火"}], table)  # not in the table: unverifiable
    assert metrics.check_elements("无", table)
    facts = {"生肖": "鸡", "季节": "冬季", "节气": "无", "节日": "圣诞节", "八字": "己酉 丙子 己丑 甲子",
             "八字和五行": "己酉(土金) 丙子(火水) 己丑(土土) 甲子(木水)", "五行缺失": []}
    good = {"生肖": "鸡", "季节": "冬", "节气": "无", "节日": "圣诞节", "八字": "己酉丙子己丑甲子", "五行缺失": "无"}
    assert metrics.check_birth(good, facts) == [1] * 6
    assert metrics.check_birth({**good, "五行缺失": "火"}, facts) == [1, 1, 1, 1, 1, 0]
    assert metrics.check_birth({**good, "节日": "圣诞"}, facts)[3] == 0  # festival: exact
    assert metrics.check_birth({**good, "八字": "己酉(土金) 丙子(火水) 己丑(土土) 甲子(木水)"}, facts)[4] == 1


def _judge(rules):
    backend = ScriptedBackend(rules)
    return backend, Caller(backend, GenConfig(temperature=0.2), Tracer(None), max_attempts=3)


def test_judge_item_repairs_then_drops_unparsable():
    claims = '{"古诗信息": [], "字和五行": [{"字": "清", "五行": "水"}], "出生信息": {"生肖": "鸡"}}'
    backend, caller = _judge([
        ("judge.emoc", None, ["评估分数：很好", "{'评估分数': [3, 3, 3, 3, 3]}"]),  # repair, Python literal
        ("judge.crc", None, "```json\n{“评估分数”： [3, 3, 3, 3, 3]}\n```"),  # full-width punctuation
        ("judge.lr", None, '{"评估分数": [3, 3, 3, 3, 3]}'),
        ("judge.acc_extract", None, claims)])
    q = "请为一个于2029年12月25日凌晨12点出生的女孩起个名字，姓伏"
    out = metrics.judge_item(caller, prompt_library(), item_id="x", query=q, name="伏清", explanation={"1": "a"},
                             up_w=W, poems=poems.sample_poems(), hanzi=hanzi.load_hanzi_table())
    assert out["drop"] is None and out["acc_flags"] == [1] * 8
    assert out["metrics"]["CMOC"] == pytest.approx(100 * sum(W) / 2 + 50)
    assert [c.tag for c in backend.calls].count("judge.emoc") == 2
    backend.close()
    backend, caller = _judge([("judge.emoc", None, '{"评估分数": [3, 3, 3]}'),
                              ("judge.(crc|lr)", None, '{"评估分数": [1, 1, 1, 1, 1]}'),
                              ("judge.acc_extract", None, claims)])
    out = metrics.judge_item(caller, prompt_library(), item_id="x", query=q, name="伏清", explanation="e", up_w=W,
                             poems=[], hanzi={})
    assert out["metrics"] is None and out["drop"] == "judge_unparsable:emoc"
    assert [c.tag for c in backend.calls].count("judge.emoc") == 3  # capped
    assert metrics.aggregate([out["metrics"]])["n_dropped"] == 1


def test_poem_store_filters_and_lookup(sample):
    store = poems.PoemStore(sample)
    hits = store.search("亲情|思念", "中秋望月思念亲人", 5, prefilter_terms=["中秋节"])
    assert [p["title"] for p in hits] == ["水调歌头·明月几时有"]  # the pre-filter keeps the festival poem only
    ids = {p["id"] for p in store.search("春季", "春日", 5)}
    assert not ids & {p["id"] for p in store.search("春季", "春日", 5, exclude_ids=ids)}
    assert all(p["type"] == "词" for p in store.search("月亮", "明月", 5, types=["词"]))
    assert store.search("月亮", "明月", 5, prefilter_terms=["不存在的节日"])  # empty pre-filter is skipped
    top = store.search("登高|励志", "登高望远", 5, element_chars={"清"})
    assert top[0]["element_chars"] == ["清"] if any("清" in p["content"] for p in top) else True
    assert [p["title"] for p in store.lookup("静夜思", "李白", "举头望明月")] == ["静夜思"]
    assert store.lookup("静夜思", "杜甫") == []
    # ties break by table order: two identical poems
    twins = [{**sample[0], "id": "a"}, {**sample[0], "id": "b"}]
    assert [p["id"] for p in poems.PoemStore(twins).search("思乡", "思念", 2)] == ["a", "b"]


def test_bm25_ranking_matches_hand_formula():
    """rank_bm25's Okapi ranking on a 3-document corpus equals the formula's ranking (k1 1.5, b 0.75, and
    rank_bm25's documented floor: a negative idf becomes 0.25 x the mean idf of the vocabulary)."""
    docs = [{"id": str(i), "title": "t", "author": "a", "content": "c", "topics": t, "implication": t}
            for i, t in enumerate(["明月思乡", "春风春雨春花", "明月清风"])]
    store = poems.PoemStore(docs)
    query = "明月春风"
    toks = [poems.cjk_tokens(d["implication"]) for d in docs]
    avg = np.mean([len(t) for t in toks])
    raw_idf = {t: math.log((3 - n + 0.5) / (n + 0.5)) for t in {t for d in toks for t in d}
               for n in [sum(t in d for d in toks)]}
    floor = 0.25 * sum(raw_idf.values()) / len(raw_idf)

    def score(doc):
        s = 0.0
        for t in poems.cjk_tokens(query):
            idf = raw_idf.get(t, 0.0)
            idf = floor if idf < 0 else idf
            tf = doc.count(t)
            s += idf * tf * 2.5 / (tf + 1.5 * (0.25 + 0.75 * len(doc) / avg))
        return s

    want = sorted(range(3), key=lambda i: -score(toks[i]))
    assert [int(p["id"]) for p in store.search(query, query, 3)] == want


def test_parse_r_poem_and_loader_errors(tmp_path):
    p = data.parse_r_poem("唐代·白居易《小岁日》\n诗句：今旦夫妻喜|他人岂得知。\n赏析：喜悦。")
    assert (p["dynasty"], p["author"], p["title"], p["content"]) == ("唐代", "白居易", "小岁日", "今旦夫妻喜|他人岂得知")
    with pytest.raises(ValueError, match="r_poem"):
        data.parse_r_poem("no poem here")
    bad = tmp_path / "test_data_500.csv"
    bad.write_text("query,user_preference,up_w,r_poem\nq,\"{'a': 1}\",\"[1.0]\",x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="row 1: user_preference keys"):
        data.load_cbnames(str(tmp_path))
    with pytest.raises(ValueError, match=r"hanzi.tsv:2"):
        (tmp_path / "hanzi.tsv").write_text("字\t汉字五行\n清\t风\n", encoding="utf-8")
        hanzi.load_hanzi_table(str(tmp_path / "hanzi.tsv"))


@pytest.mark.skipif(not os.path.exists(os.path.join(data.default_data_dir(), "test_data_500.csv")),
                    reason="CBNames data absent")
def test_cbnames_loader_and_gold_poems():
    rows = data.load_cbnames()
    assert len(rows) == 500 and sum("女孩" in r["query"] for r in rows) == 250
    gold = poems.poems_from_cbnames(rows)
    assert len(gold) == len({r["r_poem"] for r in rows})
    store = poems.PoemStore(gold)
    r = rows[0]["poem"]
    assert store.lookup(r["title"], r["author"], r["content"].split("|")[0])
