"""NAMeGEn control flow on a strict ScriptedBackend: every flag path (0, 1, 2, 3, 4), the round cap, the
threshold schedule, rule checks, retrieval judging / final pick / give-up, refinement repair cap, JSON repair,
ablations and the six baselines. Test rules go in front of the plumbing model's rules (`mock_rules`); a queued
reply list is used up first, then the plumbing default answers."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

pytest.importorskip("cnlunar")
pytest.importorskip("rank_bm25")

from humanai_jax.agents import GenConfig, ScriptedBackend  # noqa: E402
from humanai_jax.methods.namegen import baselines, hanzi, pipeline, poems  # noqa: E402
from humanai_jax.methods.namegen.backends import mock_rules  # noqa: E402
from humanai_jax.methods.namegen.constants import KEYS, tau  # noqa: E402
from humanai_jax.methods.namegen.llm import Caller, Tracer  # noqa: E402
from humanai_jax.methods.namegen.runner import prompt_library  # noqa: E402

Q = "请为一个于2029年12月25日凌晨12点出生的女孩起个名字，姓伏，希望她温柔清雅。"
PROMPTS = prompt_library()
TABLE = hanzi.load_hanzi_table()
STORE = poems.PoemStore(poems.sample_poems())


def gen_reply(name: str, three: str = "清属水") -> str:
    exp = {f"{i}.{k}": "说明" for i, k in enumerate(KEYS, start=1)}
    exp["3.五行八字"] = three
    return json.dumps({"结果": name, "解释": exp}, ensure_ascii=False)


DEFAULT = pipeline.Settings()


def run(rules, settings=DEFAULT, store=STORE, query=Q):
    backend = ScriptedBackend(list(rules) + mock_rules())
    tracer = Tracer(None)
    caller = Caller(backend, GenConfig(), tracer, max_attempts=3)
    rec = pipeline.run_query(caller, PROMPTS, query, "q0", store, TABLE, settings, tracer)
    backend.close()  # every queued reply was used
    return rec, backend, tracer


def tags(backend) -> list[str]:
    return [c.tag for c in backend.calls]


def flags(rec) -> list[int]:
    return [r["flag"] for r in rec["rounds"]]


# four objectives weighted 0.25 each and one with weight 0: exp = 0.125 * sum of the four relevances
WEIGHTS = ("MOM.weights", None, json.dumps({**dict.fromkeys(KEYS, 4), KEYS[4]: 0}, ensure_ascii=False))


def rel(*values):
    return ("MOE.explicit", None, [json.dumps({"相关性": v, "结论与建议": f"相关性{v}"}, ensure_ascii=False)
                                   for v in values])


def test_accept_on_first_round():
    rec, backend, tracer = run([])
    assert flags(rec) == [2] and rec["f_regen_flag"] == 2 and rec["failed"] is None
    assert rec["name"].startswith("伏") and rec["f_gen_rounds"] == 1 and rec["f_rk_rounds"] == 1
    t = tags(backend)
    assert t.count("MOE.implicit") == 5 and t.count("MOE.explicit") == 5 and t.count("MOG.generate") == 1
    assert rec["rounds"][0]["tau_imp"] == 0.8 and rec["rounds"][0]["tau_exp"] == 0.8
    assert any(r.get("name") == "flag" for r in tracer.records)


def test_flags_0_then_1_then_2_with_feedback_prefixes():
    rules = [WEIGHTS,
             ("MOE.implicit", None, ['{"完成度": 0, "清晰度": 0, "结论与建议": "太简略"}'] * 5),  # round 1: imp 0
             rel(1, 1, 1, 1, 2, 2, 2, 2),  # round 2: exp 0.5 < 0.8 ; round 3: exp 1.0 >= 0.7213
             ("MOE.summarise", None, ['{"重写结果": 0, "结论与建议": "保留名字"}']),
             ("MOG.generate", None, [gen_reply("伏清雅"), gen_reply("伏清雅"), gen_reply("伏清雅")])]
    rec, backend, _ = run(rules)
    assert flags(rec) == [0, 1, 2]
    r1, r2, r3 = rec["rounds"]
    assert r1["imp"] == 0 and "exp" not in r1
    assert r2["imp"] == 1.0 and r2["tau_imp"] == 0.8 and r2["exp"] == 0.5 and r2["tau_exp"] == 0.8
    assert r3["tau_imp"] == pytest.approx(tau(2)) and r3["tau_exp"] == 0.8 and r3["exp"] == 1.0
    gens = [c for c in backend.calls if c.tag == "MOG.generate"]
    assert len(gens[0].messages) == 1 and len(gens[1].messages) == 3 and len(gens[2].messages) == 3
    assert "重新取名" in gens[1].messages[2]["content"] and "太简略" in gens[1].messages[2]["content"]
    rewrite = gens[2].messages[2]["content"]
    assert "保留“结果”中的名字不变" in rewrite and "相关性1" in rewrite  # ours passes the relevance critique
    assert gens[2].messages[1]["content"] == gen_reply("伏清雅")  # one-round memory: the last raw output
    assert tags(backend).count("MOE.explicit") == 8  # the weight-0 objective is never scored


def test_flag_1_compat_passes_only_the_implicit_critique():
    rules = [WEIGHTS, rel(1, 1, 1, 1, 2, 2, 2, 2), ("MOE.summarise", None, ['{"重写结果": 0, "结论与建议": ""}'])]
    rec, backend, _ = run(rules, pipeline.Settings(compat=True))
    assert flags(rec) == [1, 2]
    assert "相关性1" not in [c for c in backend.calls if c.tag == "MOG.generate"][1].messages[2]["content"]


def test_flag_3_returns_the_historical_best():
    rules = [WEIGHTS, rel(2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),  # exp 0.75, 0.5, 0.5
             ("MOE.summarise", None, ['{"重写结果": 1, "结论与建议": "换名"}'] * 2),
             ("MOG.generate", None, [gen_reply("伏清"), gen_reply("伏林"), gen_reply("伏森")])]
    rec, _, _ = run(rules)
    # round 3: 0.5 < tau(2) = 0.7213 and the best earlier 0.75 > 0.7213 -> flag 3, the round-1 name
    assert flags(rec) == [0, 0, 3] and rec["name"] == "伏清" and rec["h_exp_ss"] == [0.75, 0.5, 0.5]
    assert rec["f_regen_flag"] == 3 and rec["failed"] is None


def test_round_cap_without_explicit_score_is_flag_4():
    rules = [("MOE.implicit", None, '{"完成度": 0, "清晰度": 1, "结论与建议": "不清楚"}')]
    rec, backend, tracer = run(rules, pipeline.Settings(max_round=3))
    assert flags(rec) == [0, 0, 0] and rec["f_regen_flag"] == 4 and rec["failed"] == "round_cap_without_explicit_score"
    assert tags(backend).count("MOG.generate") == 3 and tags(backend).count("MOE.explicit") == 0
    assert [r["tau_imp"] for r in rec["rounds"]] == [0.8, 0.8, pytest.approx(tau(2))]
    assert any(r.get("name") == "round_cap" for r in tracer.records)


def test_round_cap_with_explicit_scores_returns_best_flag_3():
    rules = [WEIGHTS, rel(2, 1, 1, 1, 1, 1, 1, 1), ("MOE.summarise", None, '{"重写结果": 1, "结论与建议": ""}'),
             ("MOG.generate", None, [gen_reply("伏清"), gen_reply("伏林")])]
    rec, _, _ = run(rules, pipeline.Settings(max_round=2))
    assert flags(rec) == [0, 0] and rec["f_regen_flag"] == 3 and rec["name"] == "伏清"


def test_rule_checks_length_and_elements():
    rules = [("MOG.generate", None, [gen_reply("伏清雅致"), gen_reply("伏"), gen_reply("伏清", "清属火"),
                                     gen_reply("伏清")]),
             ("MOE.elements", None, ['{"清": "火"}'])]
    rec, backend, _ = run(rules)
    assert flags(rec) == [0, 0, 0, 2]
    assert "超过 2 个字" in rec["rounds"][0]["rule"] and "只有姓氏" in rec["rounds"][1]["rule"]
    assert "“清”的五行是水" in rec["rounds"][2]["rule"]
    assert "imp" not in rec["rounds"][0] and tags(backend).count("MOE.implicit") == 5  # only the last round


def test_surname_is_prefixed_and_generation_regex_fallback():
    text = '结果如下：\n"结果"："清雅"，\n"1.文化内涵（古诗）"："出自王维"，\n"3.五行八字"："清属水"'
    rec, _, _ = run([("MOG.generate", None, [text])])
    assert rec["name"] == "伏清雅" and rec["explanation"]["1.文化内涵（古诗）"] == "出自王维"


def test_json_repair_and_cap_fallbacks():
    rules = [("MOM.weights", None, ["不是 JSON", '{"文化内涵（古诗）": 9}',
                                    json.dumps(dict.fromkeys(KEYS, 2), ensure_ascii=False)]),
             ("MOM.refine", None, ["坏", "坏", "坏"]),  # the cap: 3 attempts, then the default objectives
             ("MOG.generate", None, ["坏", "坏", "坏"])]  # round 1: 3 unparsable replies -> flag 0
    rec, backend, tracer = run(rules)
    calls = [r for r in tracer.records if r.get("agent") == "MOM.weights"]
    assert [c["attempt"] for c in calls] == [1, 2, 3] and calls[0]["parse_error"] and calls[2]["parse_error"] is None
    assert "no JSON value" in backend.calls[1].messages[-1]["content"]  # each repair turn quotes its error
    assert "0-4 的整数" in backend.calls[2].messages[-1]["content"] and len(backend.calls[2].messages) == 5
    assert rec["weights"] == [0.2] * 5 and rec["refine_repairs"] == 0
    assert rec["objectives"][0] == f"{KEYS[0]}：满足用户在该方面的需求"
    assert rec["rounds"][0] == {"round": 1, "flag": 0, "error": "generation_unparsable"} and flags(rec) == [0, 2]


def test_refinement_repairs_are_capped_at_three():
    four = json.dumps({"任务目标": ["a"] * 4, "任务要求": ["b"] * 5}, ensure_ascii=False)
    rec, backend, _ = run([("MOM.refine", None, [four] * 4)])
    assert tags(backend).count("MOM.refine") == 4 and rec["refine_repairs"] == 3
    last = [c for c in backend.calls if c.tag == "MOM.refine"][-1].messages
    assert len(last) == 7 and "都必须正好 5 条" in last[-1]["content"]
    rec, backend, _ = run([("MOE.refine_check", None, ['{"合理性": 0, "修改建议": "太空泛"}'])])
    assert rec["refine_repairs"] == 1 and "太空泛" in [c for c in backend.calls if c.tag == "MOM.refine"][1] \
        .messages[-1]["content"]


def _big_store(n=30):
    return poems.PoemStore([{"id": f"s{i}", "title": f"题{i}", "author": "某", "content": "山高水长|月明星稀",
                             "implication": "美好与希望" * (1 + i % 3), "topics": "希望", "type": "诗"}
                            for i in range(n)])


def test_retrieval_gives_up_after_final_pick_and_extra_round():
    again = '{"是否重新检索": 1, "检索描述": "新的描述", "最相关的知识": ""}'
    rules = [("MOE.retrieval_judge", None, [again] * 4),
             ("MOE.retrieval_pick", None, ['{"最相关的知识": "无"}', '{"最相关的知识": "#99"}'])]
    rec, backend, _ = run(rules, store=_big_store())
    assert rec["failed"] == "retrieval_gave_up" and rec["poem"] is None and rec["f_rk_rounds"] == 6
    assert "MOG.generate" not in tags(backend)
    picks = [c for c in backend.calls if c.tag == "MOE.retrieval_pick"]
    assert picks[0].messages[0]["content"].count("\n#") == 5 and "#6 " not in picks[0].messages[0]["content"]
    assert "#25 " in picks[1].messages[0]["content"]  # the extra round sees every poem seen so far
    judged = [c for c in backend.calls if c.tag == "MOE.retrieval_judge"]
    assert "新的描述" in judged[1].messages[0]["content"]  # the judge's description is used next round
    seen = [set(re.findall(r"《(题\d+)》", c.messages[0]["content"])) for c in judged + picks[:1]]
    assert all(len(s) == 5 for s in seen) and len(set().union(*seen)) == 25  # seen poems are excluded later


def test_retrieval_extra_round_pick_succeeds():
    rules = [("MOE.retrieval_judge", None, ['{"是否重新检索": 1, "检索描述": "x", "最相关的知识": ""}'] * 4),
             ("MOE.retrieval_pick", None, ['乱码', '乱码', '乱码', '{"最相关的知识": "#7"}'])]
    rec, _, _ = run(rules, store=_big_store())
    assert rec["failed"] is None and rec["f_rk_rounds"] == 6 and rec["poem"]["id"].startswith("s")


def test_named_poem_lookup_skips_judging():
    desc = json.dumps({"古诗类型": "诗", "古诗信息": [["望岳", "杜甫", "唐代", "会当凌绝顶"]], "检索描述": "登高"},
                      ensure_ascii=False)
    rec, backend, _ = run([("MOM.retrieval_desc", None, [desc])])
    assert rec["poem"]["title"] == "望岳" and rec["f_rk_rounds"] == 0 and "MOE.retrieval_judge" not in tags(backend)


@pytest.mark.parametrize("variant, absent, present", [
    ("wo_R", {"MOM.retrieval_desc", "MOE.retrieval_judge"}, {"MOE.implicit", "MOE.explicit"}),
    ("wo_evalR", {"MOE.retrieval_judge", "MOE.retrieval_pick"}, {"MOM.retrieval_desc"}),
    ("wo_Imp", {"MOE.implicit"}, {"MOE.explicit", "MOM.refine"}),
    ("wo_Exp", {"MOE.explicit", "MOE.summarise"}, {"MOE.implicit"}),
    ("wo_evalGen", {"MOE.implicit", "MOE.explicit", "MOE.elements"}, {"MOG.generate", "MOE.retrieval_judge"}),
    ("wo_ImpExp", {"MOE.implicit", "MOE.explicit", "MOM.refine"}, {"MOE.elements"}),
])
def test_ablations_skip_their_component(variant, absent, present):
    settings = dataclasses.replace(pipeline.Settings(), **pipeline.ABLATIONS[variant])
    rec, backend, _ = run([], settings)
    t = set(tags(backend))
    assert not absent & t and present <= t and flags(rec) == [2] and rec["name"]
    prompt = [c for c in backend.calls if c.tag == "MOG.generate"][0].messages[0]["content"]
    if variant == "wo_R":
        assert rec["poem"] is None and "推荐古诗：无" in prompt
    if variant in ("wo_Imp", "wo_ImpExp"):
        assert "解释要求：\n无" in prompt


def test_show_weights_reaches_the_generator_only_when_set():
    _, backend, _ = run([])
    assert "关注程度" not in [c for c in backend.calls if c.tag == "MOG.generate"][0].messages[0]["content"]
    _, backend, _ = run([], pipeline.Settings(show_weights=True))
    assert "4分，非常关注" not in backend.calls[0].messages[0]["content"]
    assert "关注程度" in [c for c in backend.calls if c.tag == "MOG.generate"][0].messages[0]["content"]


@pytest.mark.parametrize("method, calls", [("base", 1), ("fewshot", 1), ("cot", 1), ("tdb", 1),
                                           ("llm_discussion", 4), ("rag", 2)])
def test_baselines(method, calls):
    backend = ScriptedBackend(mock_rules())
    caller = Caller(backend, GenConfig(), Tracer(None))
    rec = baselines.run_baseline(method, caller, PROMPTS, Q, "q0", STORE)
    assert rec["failed"] is None and rec["name"] and len(backend.calls) == calls
    assert backend.calls[-1].tag == f"baseline.{method}"
    bad = ScriptedBackend([(".*baseline\\.(base|keywords)", None, "坏")])
    rec = baselines.run_baseline("base", Caller(bad, GenConfig(), Tracer(None)), PROMPTS, Q, "q0", STORE)
    assert rec["failed"] == "unparsable:baseline.base" and len(bad.calls) == 3


def test_birth_time_source_parser_or_llm():
    extraction = json.dumps({"姓氏": "伏", "性别": "女", "出生时间": "2029-12-25-12-00-00", "出生季节": "无",
                             "寓意": "温柔", "其他信息": "无"}, ensure_ascii=False)
    rec, _, _ = run([("MOM.extract", None, [extraction])])
    assert rec["birth"] == "2029-12-25-00-00-00"  # the shared parser (凌晨12点 -> 00:00), whatever the LLM says
    rec, _, _ = run([("MOM.extract", None, [extraction])], pipeline.Settings(birth_from="llm"))
    assert rec["birth"] == "2029-12-25-12-00-00" and rec["facts"]["八字"].endswith("庚午")
    bad = extraction.replace("2029-12-25-12-00-00", "2029年12月")
    rec, _, _ = run([("MOM.extract", None, [bad])], pipeline.Settings(birth_from="llm"))
    assert rec["birth"] == "2029-12-25-00-00-00" and "birth_time" in rec["fallbacks"]


def test_prompt_templates_have_the_fields_the_code_fills():
    want = {
        "mom_weights": {"query", "keys"}, "mom_extract": {"query"}, "mom_retrieval_desc": {"query"},
        "moe_retrieval_judge": {"query", "description", "candidates"},
        "moe_retrieval_pick": {"query", "description", "candidates"}, "mom_refine": {"query", "keys"},
        "moe_refine_check": {"query", "objectives", "requirements"}, "mom_refine_repair": {"feedback"},
        "mog_generate": {"query", "surname", "poem", "facts", "objectives", "requirements", "weights"},
        "mog_weights": {"labels"}, "mog_feedback_regen": {"report"}, "mog_feedback_rewrite": {"report"},
        "moe_elements": {"text"}, "moe_implicit": {"query", "result", "requirement"},
        "moe_explicit": {"query", "result", "objective"}, "moe_summarise": {"query", "result", "report"},
        "metric_emoc": {"user_query", "gen_cont", "exp"}, "metric_crc": {"user_query", "gen_cont", "exp"},
        "metric_lr": {"user_query", "gen_cont", "exp"}, "metric_acc": {"exp"},
        **{f"baseline_{b}": {"query"} for b in ("base", "fewshot", "cot", "tdb", "q2k")},
        "baseline_discussion_member": {"role", "query", "discussion"},
        "baseline_discussion_final": {"query", "discussion"}, "baseline_rag": {"query", "poems"}}
    root = PROMPTS.path("mom_weights").parent
    assert {p.name[:-4] for p in root.iterdir() if p.name.endswith(".txt")} == set(want)
    for name, fields in want.items():
        assert PROMPTS.fields(name) == fields, name
    for name in ("metric_emoc", "metric_crc", "metric_lr"):  # every judge prompt asks for the same JSON
        assert '{"评估分数": [s1, s2, s3, s4, s5]}' in PROMPTS.text(name)
