"""GenMentor agents, schemas, repair, metrics and replay on the ScriptedBackend (no model, fast)."""

import json
import os

import pytest
from pydantic import ValidationError

from humanai_jax.agents import GenConfig, RecordingBackend, ReplayBackend, ScriptedBackend, StructuredOutputError
from humanai_jax.methods.genmentor import backends as B, content as C, metrics as M, runner as R, schemas as S
from humanai_jax.methods.genmentor.agents import Agents, check_learned_first, check_learned_unchanged
from humanai_jax.methods.genmentor.llm import Caller, Tracer

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "genmentor")
GAP = {"name": "SQL", "is_gap": True, "required_level": "intermediate", "current_level": "beginner",
       "reason": "Some queries at work.", "level_confidence": "medium"}


def _session(i, learned=False, skills=("SQL",)):
    return {"id": f"Session {i}", "title": f"T{i}", "abstract": "a", "if_learned": learned,
            "associated_skills": list(skills),
            "desired_outcome_when_completed": [{"name": skills[0], "level": "advanced"}]}


def _agents(rules, strict=True):
    backend = ScriptedBackend(list(rules) + B.mock_rules(), strict=strict)
    tracer = Tracer(None)
    return Agents(Caller(backend, GenConfig(), tracer, max_attempts=3)), backend, tracer


# ------------------------------------------------------------------------------ schemas
def test_schema_rules():
    S.SkillGap(**GAP)
    with pytest.raises(ValidationError, match="is_gap must be False"):
        S.SkillGap(**{**GAP, "current_level": "advanced"})
    with pytest.raises(ValidationError, match="at most 20"):
        S.SkillGap(**{**GAP, "reason": "word " * 21})
    with pytest.raises(ValidationError, match="duplicate skill"):
        S.SkillRequirements(skill_requirements=[{"name": "SQL", "required_level": "beginner"},
                                                {"name": " sql ", "required_level": "advanced"}])
    with pytest.raises(ValidationError):
        S.SkillRequirements(skill_requirements=[{"name": f"s{i}", "required_level": "beginner"} for i in range(11)])
    assert S.SkillRequirement(name="Git", required_level=" Advanced").required_level == "advanced"
    sess = S.SessionItem(**{**_session(1), "associated_skills": ["SQL", " ", ""]})
    assert sess.associated_skills == ["SQL"]
    with pytest.raises(ValidationError, match="Session 3"):
        S.SessionItem(**{**_session(1), "id": "session three"})
    with pytest.raises(ValidationError):
        S.LearningPath(learning_path=[_session(i) for i in range(1, 12)])
    with pytest.raises(ValidationError, match="outside"):
        S.SingleChoice(question="q", options=["a", "b"], correct_option=2)


@pytest.mark.skipif(not os.path.isdir(DATA), reason="../shared/data/genmentor is absent")
def test_example_files_load_with_older_shapes():
    from humanai_jax.methods.genmentor.examples import EXAMPLE_FILES, load_example

    out = {f: load_example(os.path.join(DATA, f)) for f in EXAMPLE_FILES}
    assert len(out["skill_gap.json"].skill_gaps) == 8
    prof = out["learner_profile.json"]
    assert (len(prof.cognitive_status.mastered_skills), len(prof.cognitive_status.in_progress_skills)) == (2, 6)
    path = out["learning_path.json"]
    assert len(path.learning_path) == 2 and path.learning_path[0].desired_outcome_when_completed == []
    assert out["knowledge_document.json"].content == out["learning_document.json"].content


# ------------------------------------------------------------------------------ repair and tracing
def test_schema_failure_triggers_repair_then_succeeds():
    bad = json.dumps({"skill_gaps": [{**GAP, "is_gap": False}]})
    good = json.dumps({"skill_gaps": [GAP]})
    agents, backend, tracer = _agents([(r"skill_gap\.gap_identifier", None, [bad, "```json\n" + good + "\n```"])])
    reqs = S.SkillRequirements(skill_requirements=[{"name": "SQL", "required_level": "intermediate"}])
    gaps = agents.identify_gaps("goal", "info", reqs)
    assert gaps.skill_gaps[0].current_level == "beginner"
    calls = [c for c in backend.calls if c.tag == "skill_gap.gap_identifier"]
    assert len(calls) == 2
    assert calls[1].messages[-2] == {"role": "assistant", "content": bad}
    assert "is_gap must be True" in calls[1].messages[-1]["content"]
    recs = [r for r in tracer.records if r["agent"] == "skill_gap.gap_identifier"]
    assert [r["attempt"] for r in recs] == [1, 2] and recs[0]["parse_error"] and recs[1]["parse_error"] is None
    backend.close()


def test_gap_list_must_cover_requirements():
    other = json.dumps({"skill_gaps": [{**GAP, "name": "Excel"}]})
    agents, backend, _ = _agents([(r"skill_gap\.gap_identifier", None, [other])])
    reqs = S.SkillRequirements(skill_requirements=[{"name": "SQL", "required_level": "intermediate"}])
    agents.identify_gaps("goal", "info", reqs)  # the mock answers the repair turn correctly
    calls = [c for c in backend.calls if c.tag == "skill_gap.gap_identifier"]
    assert len(calls) == 2 and "no gap item for required skills ['sql']" in calls[1].messages[-1]["content"]


def test_repair_is_capped():
    agents, backend, tracer = _agents([(r"skill_gap\.goal_refiner", None, "not json")])
    with pytest.raises(StructuredOutputError) as err:
        agents.refine_goal("g", "i")
    assert len(err.value.attempts) == 3 and len(backend.calls) == 3
    assert all(r["parse_error"] for r in tracer.records)


def test_batch_repair_keeps_order_and_only_resends_failures():
    backend = ScriptedBackend([("content.draft", lambda m: "B" in m[-1]["content"] and len(m) == 2, "{broken"),
                               ("content.draft", None,
                                lambda m: json.dumps({"title": m[1]["content"], "content": "x"}))])
    caller = Caller(backend, GenConfig(), Tracer(None))
    prompts = [[{"role": "system", "content": "s"}, {"role": "user", "content": u}] for u in ("A", "B", "C")]
    out = caller.ask_batch("content.draft", prompts, S.KnowledgeDraft)
    assert [d.title for d in out] == ["A", "B", "C"]
    assert len(backend.calls) == 4  # 3 in round 1, the failed one again


# ------------------------------------------------------------------------------ scheduler rules
def test_reflexion_and_reschedule_checks():
    old = S.LearningPath(learning_path=[_session(1, True), _session(2)])
    check_learned_unchanged(old)(S.LearningPath(learning_path=[_session(1, True), _session(2, skills=("Git",))]))
    with pytest.raises(ValueError, match="Session 1"):
        check_learned_unchanged(old)(S.LearningPath(learning_path=[{**_session(1, True), "title": "new"}, _session(2)]))
    check_learned_first(old, 3)(S.LearningPath(learning_path=[_session(1, True), _session(2), _session(3)]))
    with pytest.raises(ValueError, match="come first"):
        check_learned_first(old, 2)(S.LearningPath(learning_path=[_session(2), _session(1, True)]))
    with pytest.raises(ValueError, match="3 sessions"):
        check_learned_first(old, 3)(S.LearningPath(learning_path=[_session(1, True), _session(2)]))


def test_reschedule_violation_is_repaired():
    profile = S.LearnerProfile.model_validate(B._new_profile("g", "i", [("SQL", "advanced", "beginner")]))
    path = S.LearningPath(learning_path=[_session(1, True), _session(2)])
    wrong = json.dumps({"learning_path": [_session(2), _session(1, True)]})
    agents, backend, _ = _agents([(r"path\.reschedule", None, [wrong])])
    new = agents.reschedule(profile, path, 2)
    assert new.learning_path[0] == path.learning_path[0]
    assert len([c for c in backend.calls if c.tag == "path.reschedule"]) == 2


# ------------------------------------------------------------------------------ content layout
def test_markdown_layout():
    points = [S.KnowledgePoint(name="p1", type="practical"), S.KnowledgePoint(name="p2", type="foundational"),
              S.KnowledgePoint(name="p3", type="practical")]
    drafts = [S.KnowledgeDraft(title=f"D{i}", content=f"c{i}\n") for i in (1, 2, 3)]
    md = C.render_markdown(S.DocumentStructure(title="T", overview="O", summary="Sum"), points, drafts)
    assert md == ("# T\n\nO\n\n## Foundational Concepts\n\n### D2\n\nc2\n\n"
                  "## Practical Applications\n\n### D1\n\nc1\n\n"
                  "### D3\n\nc3\n\n## Summary\n\nSum\n")
    assert M.content_metrics(md) == {"one_title": 1.0, "sections_in_order": 1.0, "has_summary": 1.0,
                                     "n_subsections": 3, "chars": len(md), "n_quiz": 0}
    bare = C.render_markdown(None, points[:1], drafts[:1], title="S")
    assert bare == "# S\n\n## Practical Applications\n\n### D1\n\nc1\n"


# ------------------------------------------------------------------------------ metrics (hand values)
def test_skill_prf_hand_values():
    gold = [{"name": "SQL", "required_level": "beginner"}, {"name": "Data Visualization", "required_level": "advanced"},
            {"name": "Git", "required_level": "beginner"}]
    pred = [{"name": "sql", "required_level": "beginner"},
            {"name": "Visualization of Data", "required_level": "advanced"},
            {"name": "Docker", "required_level": "beginner"}, {"name": "Git", "required_level": "advanced"}]
    r = M.skill_prf(pred, gold, "exact")  # SQL, Git match: P 2/4, R 2/3, F1 4/7; strict: only SQL
    assert (r["precision"], r["recall"], r["n_matched"]) == (0.5, 2 / 3, 2)
    assert r["f1"] == pytest.approx(4 / 7) and r["level_accuracy"] == 0.5
    assert r["f1_strict"] == pytest.approx(2 * 0.25 * (1 / 3) / (0.25 + 1 / 3))
    r = M.skill_prf(pred, gold, "token_jaccard")  # {data, visualization, of} vs {data, visualization}: 2/3
    assert r["n_matched"] == 3
    # one-to-one: two predictions cannot both take the one gold skill
    assert M.match_skills(["Git", "git"], ["GIT"]) == [(0, 0)]
    assert M.skill_prf([], gold)["f1"] == 0.0


def test_profile_and_path_metrics_hand_values():
    mk = lambda items: S.LearnerProfileOut.model_validate(  # noqa: E731
        {"learner_profile": B._new_profile("g", "i", items)}).learner_profile
    truth = mk([("A", "advanced", "advanced"), ("B", "advanced", "beginner"), ("C", "beginner", "unlearned")])
    pred = mk([("A", "advanced", "advanced"), ("B", "advanced", "unlearned"), ("C", "beginner", "beginner")])
    m = M.profile_metrics(pred, truth)
    assert m["level_accuracy"] == pytest.approx(1 / 3)
    assert m["mastered_f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)  # pred {A, C} vs truth {A}
    assert m["in_progress_f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)  # pred {B} vs truth {B, C}
    path = S.LearningPath(learning_path=[_session(1, skills=("SQL",)),
                                         _session(2, skills=("Data Visualisation tools",))])
    assert M.path_metrics(path, ["SQL", "Git"]) == {"gap_coverage": 0.5, "level_monotone": 1.0, "n_sessions": 2}


# ------------------------------------------------------------------------------ the whole loop
def _learner():
    return {"id": "l1", "goal": "I want to become a junior data analyst building dashboards.",
            "learner_information": "I used Excel and SQL at work.",
            "gold": [{"name": "SQL", "required_level": "beginner"}, {"name": "Tableau", "required_level": "beginner"},
                     {"name": "Excel", "required_level": "intermediate"}]}


def test_every_agent_runs_with_expected_call_counts():
    agents, backend, tracer = _agents([])
    spec = R.RunSpec(path_refine_iters=3, simulate_sessions=2)
    rec = R.run_learner(_learner(), agents, spec, C.Retrieved([{"id": "d", "text": "Learning SQL joins"}]),
                        judge_backend=backend)
    assert "failed" not in rec, rec.get("failed")
    n = {}
    for c in backend.calls:
        n[c.tag] = n.get(c.tag, 0) + 1
    # the mock's second reflexion returns its input: the loop stops after 2 of 3 iterations
    assert n["path.reflexion"] == 2 and n["feedback.path"] == 2
    assert n["sim.progress"] == n["sim.behaviour"] == n["profiler.update"] == 2
    assert n["content.draft"] == 2 * 3 and n["content.explore"] == 2  # genmentor and wo_refinement, 3 points each
    assert n["judge.content"] == 5 and n["judge.path"] == 3 and n["judge.skills"] == 3
    for tag in ("skill_gap.goal_refiner", "skill_gap.skill_mapper.genmentor", "skill_gap.skill_mapper.direct",
                "skill_gap.skill_mapper.cot", "skill_gap.gap_identifier", "profiler.init", "path.schedule.genmentor",
                "path.schedule.direct", "path.schedule.cot", "path.reschedule", "content.integrate",
                "content.quiz", "feedback.content", "baseline.dirgen", "baseline.rag", "baseline.outline",
                "baseline.outline_document", "tutor.chat", "sim.ground_truth"):
        assert n.get(tag) == 1, tag
    assert rec["content"]["genmentor"]["n_quiz"] == 3 and rec["content"]["genmentor"]["has_summary"] == 1.0
    assert [s["session"] for s in rec["simulation"]] == ["Session 1", "Session 2"]
    assert rec["reschedule"]["path"]["learning_path"][0]["if_learned"] is True
    assert any(r["type"] == "event" and r["name"] == "path_refine" for r in tracer.records)
    backend.close()


def test_failure_is_recorded_not_dropped():
    agents, backend, _ = _agents([(r"path\.schedule\.genmentor", None, "no json here")])
    rec = R.run_learner(_learner(), agents, R.RunSpec(judge=False), C.Retrieved([]))
    assert rec["failed"]["stage"] == "path.genmentor"
    agg = R.aggregate([rec])
    assert agg["n_failed"] == 1 and agg["failed_stages"] == ["path.genmentor"]


def test_a_comparison_methods_failure_stays_in_its_slot():
    """A baseline with no valid reply (the direct skill mapper, the cot path, the rag content) is recorded in
    its own slot and counted in its block; GenMentor's pipeline for that learner still finishes."""
    agents, backend, tracer = _agents([(r"skill_gap\.skill_mapper\.direct", None, "no json here"),
                                       (r"path\.schedule\.cot", None, "no json here"),
                                       (r"baseline\.rag", None, "")])
    rec = R.run_learner(_learner(), agents, R.RunSpec(judge=False), C.Retrieved([]))
    assert "failed" not in rec, rec.get("failed")
    assert set(rec["skills"]["direct"]) == {"failed"} and set(rec["path"]["cot"]) == {"failed"}
    assert "tutor_reply" in rec and rec["skills"]["genmentor"]["f1"] is not None
    failed_events = [r["data"]["stage"] for r in tracer.records if r.get("name") == "method_failed"]
    assert failed_events == ["skills.direct", "path.cot", "content.rag"]
    agg = R.aggregate([rec, rec], n_resamples=0)
    assert agg["n_failed"] == 0
    assert agg["skills"]["direct"]["n"] == 0 and agg["skills"]["direct"]["n_failed"] == 2
    assert agg["skills"]["direct"]["f1"] is None
    assert agg["skills"]["genmentor"]["n"] == 2 and agg["skills"]["genmentor"]["n_failed"] == 0
    assert agg["path"]["cot"]["n_failed"] == 2 and agg["path"]["direct"]["n_failed"] == 0
    assert agg["content"]["rag"]["n_failed"] == 2 and agg["content"]["genmentor"]["n"] == 2


def test_recorded_run_replays_exactly(tmp_path):
    learners = [_learner(), {**_learner(), "id": "l2", "learner_information": "No experience."}]
    docs = C.Retrieved([{"id": "d", "text": "Learning SQL joins"}])
    spec = R.RunSpec(content_methods=("genmentor", "rag"))
    cassette = str(tmp_path / "cassette.jsonl")
    rec_backend = RecordingBackend(B.mock_backend(), cassette)
    first = R.run_tutoring(str(tmp_path / "a"), learners, rec_backend, spec, retriever=docs, judge_backend=rec_backend)
    second = R.run_tutoring(str(tmp_path / "b"), learners, ReplayBackend(cassette), spec, retriever=docs,
                            judge_backend=ReplayBackend(cassette))
    assert first == second
    assert R.metrics_from_outputs(str(tmp_path / "a" / "outputs.jsonl")) == {k: v for k, v in first.items()
                                                                           if k != "n_calls"}
    read = lambda d, f: open(tmp_path / d / f, encoding="utf-8").read()  # noqa: E731
    assert read("a", "outputs.jsonl") == read("b", "outputs.jsonl")
    ta = [json.loads(x) for x in read("a", "traces.jsonl").splitlines()]
    tb = [json.loads(x) for x in read("b", "traces.jsonl").splitlines()]
    def strip(t):
        return [{k: v for k, v in r.items() if k not in ("run_id", "backend", "latency_s")} for r in t]
    assert strip(ta) == strip(tb) and len(ta) > 50
    manifest = json.loads(read("a", "manifest.json"))
    assert manifest["learners"] == ["l1", "l2"] and "goal_refiner_system.txt" in manifest["prompt_hashes"]
    # a re-run in the same workdir resumes: no new calls
    again = R.run_tutoring(str(tmp_path / "a"), learners, ReplayBackend(cassette), spec, retriever=docs)
    assert again["n_calls"] == 0


def test_judge_rubrics_are_data():
    rub = R.rubrics()
    assert rub["content"].dimensions == ("goal_relevance", "engagement", "personalization", "content_quality")
    assert rub["path"].scale == (1, 5)
    with pytest.raises(ValueError, match="out of range"):
        rub["skills"].parse("<goal_alignment>7</goal_alignment>")
