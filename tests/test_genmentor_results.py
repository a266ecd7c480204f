"""GenMentor tutoring results: judge scores per learner reach results.json as hand-computed means, CIs and
paired GenMentor - baseline differences; judge failures are counted; the nearest-goal skill baseline (fast)."""

import json

import pytest

from humanai_jax.agents import ScriptedBackend
from humanai_jax.eval.stats import bootstrap_ci
from humanai_jax.methods.genmentor import backends as B, content as C, runner as R

GOLD = [{"name": "SQL", "required_level": "beginner"}, {"name": "Tableau", "required_level": "beginner"},
        {"name": "Excel", "required_level": "intermediate"}]
TRAIN = [{"goal": "Become a junior data analyst who builds dashboards.", "skill_requirements": [
             {"name": "SQL", "required_level": "beginner"}, {"name": "Excel", "required_level": "advanced"},
             {"name": "Python", "required_level": "beginner"}]},
         {"goal": "Become a backend developer writing REST APIs in Go.", "skill_requirements": [
             {"name": "Go", "required_level": "intermediate"}]}]


def _learners():
    base = {"goal": "I want to become a junior data analyst building dashboards.", "gold": GOLD}
    return [{**base, "id": "l1", "learner_information": "I used Excel and SQL at work."},
            {**base, "id": "l2", "learner_information": "No experience."}]


def _tags(**scores):
    return "".join(f"<{k}>{v}</{k}>" for k, v in scores.items())


def test_judge_scores_reach_results_with_cis_and_paired_differences(tmp_path):
    # judge replies in call order: per learner the skills of genmentor, direct, cot, then the paths of the same
    # three; learner 2's cot skills judge never answers in format (3 attempts): a counted failure
    bad = "no tags here"
    judge = ScriptedBackend([
        ("judge.skills", None, [_tags(goal_alignment=5), _tags(goal_alignment=2), _tags(goal_alignment=1),
                                _tags(goal_alignment=4), _tags(goal_alignment=3), bad, bad, bad]),
        ("judge.path", None, [_tags(progression=5, engagement=4), _tags(progression=3, engagement=3),
                              _tags(progression=2, engagement=2), _tags(progression=4, engagement=4),
                              _tags(progression=2, engagement=3), _tags(progression=1, engagement=1)]),
        ("judge.content", None, B._judge),  # constant 3s
    ])
    spec = R.RunSpec(content_methods=("genmentor", "rag"), path_refine_iters=1, simulate_sessions=1)
    res = R.run_tutoring(str(tmp_path), _learners(), B.mock_backend(), spec,
                         retriever=C.Retrieved([{"id": "d", "text": "SQL joins and dashboards"}]),
                         judge_backend=judge, train_samples=TRAIN, n_resamples=2000)
    judge.close()  # every queued reply was used: the calls happened in the order above
    sk, path = res["skills"], res["path"]
    assert (sk["genmentor"]["judge_goal_alignment"], sk["direct"]["judge_goal_alignment"]) == (4.5, 2.5)
    assert sk["cot"]["judge_goal_alignment"] == 1.0 and sk["cot"]["judge_failed"] == 1
    assert sk["genmentor"]["judge_failed"] == 0 and sk["genmentor"]["n"] == 2
    # two values {5, 4}: a resampled mean is 4, 4.5 or 5, each end with probability 1/4 > 2.5%
    assert sk["genmentor"]["ci95"]["judge_goal_alignment"] == [4.0, 5.0]
    assert sk["cot"]["ci95"]["judge_goal_alignment"] is None  # one value
    assert (path["genmentor"]["judge_progression"], path["genmentor"]["judge_engagement"]) == (4.5, 4.0)
    assert (path["direct"]["judge_progression"], path["cot"]["judge_engagement"]) == (2.5, 1.5)
    assert res["content"]["rag"]["judge_content_quality"] == 3.0 and res["content"]["rag"]["n"] == 2

    paired = res["paired_vs_genmentor"]
    d = paired["skills"]["direct"]["judge_goal_alignment"]  # differences 5-2, 4-3
    assert d["diff"] == 2.0 and d["n"] == 2 and d["ci"] == [1.0, 3.0]
    assert paired["skills"]["cot"]["judge_goal_alignment"] is None  # one pair: no comparison
    p = paired["path"]["direct"]
    assert (p["judge_progression"]["diff"], p["judge_engagement"]["diff"]) == (2.0, 1.0)
    assert p["judge_progression"]["ci"] == [2.0, 2.0]  # equal differences
    assert paired["path"]["cot"]["judge_progression"]["diff"] == 3.0
    assert paired["content"]["rag"]["judge_goal_relevance"]["diff"] == 0.0

    # the nearest training goal copies the data-analyst goal's skills: SQL (level right), Excel (level wrong)
    ng = sk["nearest_goal"]
    assert ng["precision"] == pytest.approx(2 / 3) and ng["recall"] == pytest.approx(2 / 3)
    assert ng["f1_strict"] == pytest.approx(1 / 3) and "judge_goal_alignment" not in ng
    assert paired["skills"]["nearest_goal"]["f1"]["n"] == 2
    # the same numbers from outputs.jsonl alone
    assert R.metrics_from_outputs(str(tmp_path / "outputs.jsonl")) == {k: v for k, v in res.items() if k != "n_calls"}
    recs = [json.loads(x) for x in open(tmp_path / "outputs.jsonl", encoding="utf-8")]
    assert recs[1]["skills"]["cot"]["judge"]["error"] and recs[0]["skills"]["cot"]["judge"] == {"goal_alignment": 1}
    judged = [json.loads(x) for x in open(tmp_path / "traces.jsonl", encoding="utf-8")]
    judged = [t["item_id"] for t in judged if t.get("agent", "").startswith("judge.")]
    # per learner 3 skills + 3 paths + 2 documents judged; learner 2's failing judge took 2 extra attempts
    assert judged == ["l1"] * 8 + ["l2"] * 10


def test_aggregate_keeps_learners_aligned_and_skips_failed():
    def rec(f1_ours, f1_bm25=None):
        skills = {"genmentor": {"precision": f1_ours, "recall": f1_ours, "f1": f1_ours, "f1_strict": 0.0}}
        if f1_bm25 is not None:
            skills["bm25"] = {"precision": f1_bm25, "recall": f1_bm25, "f1": f1_bm25, "f1_strict": 0.0}
        return {"skills": skills, "path": {m: {"gap_coverage": 1.0, "level_monotone": 1.0, "n_sessions": 2}
                                           for m in R.PATH_METHODS},
                "content": {}, "profile_init": {"level_accuracy": 1.0, "in_progress_f1": 1.0}}

    # bm25 missing for the second learner: the pairs are (1.0, 0.5) and (0.6, 0.2), never (0.8, 0.2)
    records = [rec(1.0, 0.5), rec(0.8), rec(0.6, 0.2), {"failed": {"stage": "path.genmentor", "error": "x"}}]
    out = R.aggregate(records, n_resamples=500)
    assert out["n_failed"] == 1 and out["failed_stages"] == ["path.genmentor"]
    assert out["skills"]["genmentor"]["f1"] == pytest.approx(0.8) and out["skills"]["genmentor"]["n"] == 3
    assert out["skills"]["bm25"]["f1"] == pytest.approx(0.35) and out["skills"]["bm25"]["n"] == 2
    pb = out["paired_vs_genmentor"]["skills"]["bm25"]["f1"]
    assert pb["n"] == 2 and pb["diff"] == pytest.approx(0.45)
    assert out["skills"]["genmentor"]["ci95"]["f1"] == list(bootstrap_ci([1.0, 0.8, 0.6], n_resamples=500))
    assert R.aggregate(records, n_resamples=0)["paired_vs_genmentor"]["skills"] == {}


def test_llm_matcher_asks_the_judge_once_and_repairs_unknown_names():
    from humanai_jax.agents import GenConfig
    from humanai_jax.methods.genmentor.agents import Agents
    from humanai_jax.methods.genmentor.llm import Caller, Tracer

    pred = [{"name": "Visualization of Data", "required_level": "advanced"},
            {"name": "sql", "required_level": "intermediate"}, {"name": "Docker", "required_level": "beginner"}]
    gold = [{"name": "SQL", "required_level": "beginner"}, {"name": "Data Visualization", "required_level": "advanced"},
            {"name": "Git", "required_level": "beginner"}]
    wrong = json.dumps({"matches": [{"predicted": "Kubernetes", "gold": "Git"}]})
    right = json.dumps({"matches": [{"predicted": "Visualization of Data", "gold": "Data Visualization"},
                                    {"predicted": "sql", "gold": "SQL"}]})
    judge = ScriptedBackend([("judge.skill_match", None, [wrong, right])])
    tracer = Tracer(None)
    agents = Agents(Caller(B.mock_backend(), GenConfig(), tracer))
    prf = R._skill_scorer(R.RunSpec(matcher="llm"), agents, judge)
    r = prf(pred, gold)  # 2 of 3 matched both ways; only the visualisation pair has the right level
    assert (r["precision"], r["recall"], r["n_matched"]) == (2 / 3, 2 / 3, 2)
    assert r["f1_strict"] == pytest.approx(1 / 3)
    assert prf(pred, gold) == r and len(judge.calls) == 2  # the repair turn, then cached
    assert "not in the predicted list: ['kubernetes']" in judge.calls[1].messages[-1]["content"]
    assert [x["attempt"] for x in tracer.records if x["agent"] == "judge.skill_match"] == [1, 2]
    judge.close()
    with pytest.raises(ValueError, match="needs a judge backend"):
        R._skill_scorer(R.RunSpec(matcher="llm"), agents, None)


def test_tutoring_run_with_llm_matcher(tmp_path):
    backend = B.mock_backend()
    spec = R.RunSpec(matcher="llm", content_methods=("genmentor",), path_refine_iters=1, simulate_sessions=1)
    res = R.run_tutoring(str(tmp_path), _learners()[:1], backend, spec, retriever=C.Retrieved([]),
                         judge_backend=backend, train_samples=TRAIN)
    assert res["n_failed"] == 0
    # the mock judge pairs by token-Jaccard: the same numbers as that matcher on the stored predictions
    from humanai_jax.methods.genmentor import metrics as M

    rec = json.loads(open(tmp_path / "outputs.jsonl", encoding="utf-8").readline())
    for method, out in rec["skills"].items():
        assert out["f1"] == M.skill_prf(out["pred"], GOLD, "token_jaccard")["f1"], method
    tags = [json.loads(x).get("agent") for x in open(tmp_path / "traces.jsonl", encoding="utf-8")]
    assert 1 <= tags.count("judge.skill_match") <= 4  # one per distinct prediction list (4 skill methods)


def test_config_matcher_option():
    from configs.genmentor import get_config

    assert get_config("pipeline,matcher=llm").tutoring.matcher == "llm"
    assert get_config("pipeline").tutoring.matcher == "exact"
    with pytest.raises(ValueError, match="valid: exact, token_jaccard, llm"):
        get_config("pipeline,matcher=fuzzy")


def test_every_agent_repairs_one_bad_reply_to_the_same_result():
    """One unparseable first reply per agent tag (judges included): each tag gets exactly one extra call (its
    repair turn), the learner still finishes, and every artefact equals the run without bad replies."""
    import re

    from humanai_jax.agents import GenConfig
    from humanai_jax.methods.genmentor.agents import Agents
    from humanai_jax.methods.genmentor.llm import Caller, Tracer

    spec = R.RunSpec(path_refine_iters=2, simulate_sessions=2)
    docs = C.Retrieved([{"id": "d", "text": "SQL joins and dashboards"}])

    def run(rules):
        backend = ScriptedBackend(rules + B.mock_rules())
        rec = R.run_learner(_learners()[0], Agents(Caller(backend, GenConfig(), Tracer(None))), spec, docs,
                            judge_backend=backend, train_samples=TRAIN)
        counts = {}
        for c in backend.calls:
            counts[c.tag] = counts.get(c.tag, 0) + 1
        return rec, counts, backend

    ref, ref_counts, _ = run([])
    tags = sorted(t for t in ref_counts if t != "tutor.chat")  # the tutor's reply is free text: nothing to repair
    assert len(tags) == 29
    rec, counts, backend = run([(re.escape(t), None, ["{not json"]) for t in tags])
    backend.close()  # every bad reply was sent
    assert "failed" not in rec
    assert counts == {t: n + (t != "tutor.chat") for t, n in ref_counts.items()}
    assert rec == ref
