"""Schema-constrained decoding for GenMentor's agents (`llm.Caller(constrain=True)`, `constraints.py`): which schema
each call sends, that the input-dependent schemas admit exactly what the agents' checks admit (random walks through
the compiled automaton on one side, the scripted teacher's own replies and jsonschema on the other), and the
distillation data in the form the decoder writes."""

import json

import numpy as np
import pytest

from humanai_jax.agents import GenConfig, ScriptedBackend
from humanai_jax.agents.distill import CapturingBackend
from humanai_jax.decoding.json_constraint import Automaton, Tracker, VocabIndex, compile_schema
from humanai_jax.methods.genmentor import backends as B, constraints as K, content as C, runner as R, schemas as S
from humanai_jax.methods.genmentor.agents import (
    REASON_FIRST,
    Agents,
    check_count,
    check_covers,
    check_learned_first,
    check_learned_unchanged,
    check_quiz_counts,
)
from humanai_jax.methods.genmentor.llm import Caller, Tracer, decoding_schema

jsonschema = pytest.importorskip("jsonschema")

REQS = S.SkillRequirements(skill_requirements=[{"name": "SQL", "required_level": "intermediate"},
                                               {"name": "Data Visualization", "required_level": "beginner"},
                                               {"name": "A/B Testing", "required_level": "advanced"}])


def _session(i, learned=False):
    return {"id": f"Session {i}", "title": f"T{i}", "abstract": "a", "if_learned": learned,
            "associated_skills": ["SQL"], "desired_outcome_when_completed": [{"name": "SQL", "level": "advanced"}]}


PATH = S.LearningPath(learning_path=[_session(1, True), _session(2), _session(4, True)])


def _walks(schema: dict, n: int, seed: int = 0, slack: int = 60):
    """`n` documents from random walks through the compiled schema over a vocabulary of single printable bytes."""
    tokens = [bytes([b]) for b in range(0x20, 0x7F)] + [None]
    stop = len(tokens) - 1
    automaton, vocab = Automaton(compile_schema(schema)), VocabIndex(tokens)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        tr = Tracker(automaton, vocab, [stop], {})
        out = []
        for left in range(tr.min_tokens() + int(rng.integers(0, slack)), 0, -1):
            if tr.state == ():
                break
            tid = int(rng.choice(np.flatnonzero(tr.allowed(left))))
            if tid == stop:
                break
            tr.advance(tid)
            out.append(tokens[tid])
        yield json.loads(b"".join(out))


def _accepts(schema, text: str) -> bool:
    """Whether our decoder could write `text` byte by byte under `schema`."""
    return Automaton(compile_schema(schema)).accepts(text.encode())


# ------------------------------------------------------------------------------ which schema goes with a call
def test_caller_sends_schemas_only_when_constraining():
    gaps = {"skill_gaps": [{"name": "SQL", "is_gap": False, "required_level": "beginner", "current_level": "beginner",
                            "reason": "r", "level_confidence": "low"}]}
    backend = ScriptedBackend([("skill_gap.gap_identifier", None, json.dumps(gaps))])
    tracer = Tracer(None)
    off = Caller(backend, GenConfig(), tracer)
    on = Caller(backend, GenConfig(), tracer, constrain=True, unconstrained=REASON_FIRST)
    assert off.gen_config("skill_gap.goal_refiner", S.RefinedGoal) == (GenConfig(), None)
    gen, note = on.gen_config("skill_gap.goal_refiner", S.RefinedGoal)
    assert note == "schema" and gen.response_format == S.RefinedGoal.model_json_schema()
    assert on.gen_config("skill_gap.skill_mapper.cot", S.SkillRequirements) == (GenConfig(), None)  # reason first
    gen, note = on.gen_config("skill_gap.gap_identifier", S.SkillGaps, K.covering_gaps(REQS))
    assert note == "inputs" and gen.response_format == K.covering_gaps(REQS)
    # number bounds are dropped for the decoder (pydantic still checks them); the rest of the schema is kept
    gen, note = on.gen_config("sim.behaviour", S.BehaviourLog)
    metrics = gen.response_format["$defs"]["PerformanceMetrics"]["properties"]["exercise_scores"]
    assert note == "schema" and metrics == {"title": "Exercise Scores", "type": "number"}
    unsupported = {"type": "string", "pattern": "a+"}
    gen, note = on.gen_config("x", None, unsupported)
    assert gen.response_format is None and note.startswith("unsupported:") and "pattern" in note
    # the call itself: the backend sees the schema, the trace line says which
    on.ask("skill_gap.gap_identifier", [{"role": "user", "content": "x"}], S.SkillGaps,
           constraint=K.covering_gaps(S.SkillRequirements(skill_requirements=[{"name": "SQL",
                                                                               "required_level": "beginner"}])))
    sent = backend.calls[-1].cfg.response_format["properties"]["skill_gaps"]["prefixItems"][0]["anyOf"]
    assert {alt["properties"]["name"]["const"] for alt in sent} == {"SQL"} and len(sent) == 4
    assert tracer.records[-1]["constraint"] == "inputs"


def test_every_schema_the_agents_send_compiles():
    for model in (S.RefinedGoal, S.SkillRequirements, S.SkillGaps, S.LearnerProfileOut, S.LearningPath,
                  S.LearnerFeedback, S.ContentFeedback, S.KnowledgePoints, S.KnowledgeDraft, S.DocumentStructure,
                  S.DocumentQuiz, S.Document, S.Outline, S.OutlineDocument, S.BehaviourLog, S.SkillMatches):
        assert decoding_schema(model)[1] is None, model.__name__


# ------------------------------------------------------------------------------ input-dependent schemas = the checks
def test_covering_gaps_admits_only_lists_that_cover_the_requirements():
    schema = K.covering_gaps(REQS)
    levels = set()
    for doc in _walks(schema, 40):
        jsonschema.validate(doc, schema)
        assert [g["name"] for g in doc["skill_gaps"]] == [r.name for r in REQS.skill_requirements]
        for g in doc["skill_gaps"]:  # the is_gap rule holds whatever level the walk picked
            assert g["is_gap"] == (S.LEVEL_ORDER[g["current_level"]] < S.LEVEL_ORDER[g["required_level"]])
            g["reason"] = " ".join(g["reason"].split()[:20])  # the word limit is pydantic's alone
        check_covers(REQS)(S.SkillGaps.model_validate(doc))
        levels |= {g["current_level"] for g in doc["skill_gaps"]}
    assert levels == set(S.LEVEL_ORDER)  # the model still chooses the current level


def test_profile_over_holds_each_skill_once_with_levels_that_fit_its_list():
    skills = [("SQL", "intermediate"), ("Data Visualization", "beginner"), ("A/B Testing", "advanced")]
    schema = K.profile_over(skills)
    splits = set()
    for doc in _walks(schema, 40, slack=1500):  # room for the free strings before the split
        jsonschema.validate(doc, schema)
        doc["learner_profile"]["learning_goal"] = "g"  # min_length 1: pydantic's alone
        status = S.LearnerProfileOut.model_validate(doc).learner_profile.cognitive_status  # unique and disjoint
        mastered = {m.name: m.proficiency_level for m in status.mastered_skills}
        progress = {p.name: p for p in status.in_progress_skills}
        assert sorted(mastered) + sorted(progress) != [] and set(mastered) | set(progress) == {n for n, _ in skills}
        for name, required in skills:
            if name in mastered:
                assert S.LEVEL_ORDER[mastered[name]] >= S.LEVEL_ORDER[required]
            else:
                assert progress[name].required_proficiency_level == required
                assert S.LEVEL_ORDER[progress[name].current_proficiency_level] < S.LEVEL_ORDER[required]
        splits.add(frozenset(mastered))
    assert len(splits) >= 6  # of the 8 splits: which skills are mastered is the model's choice
    assert K.profile_over([(f"s{k}", "beginner") for k in range(K.MAX_PARTITION_SKILLS + 1)]) is None
    assert K.profile_over([]) is None


@pytest.mark.parametrize("build, check", [
    (lambda: K.path_of(3), lambda: check_count(3)),
    (lambda: K.path_keeping_learned(PATH), lambda: check_learned_unchanged(PATH)),
    (lambda: K.path_learned_first(PATH, 4), lambda: check_learned_first(PATH, 4)),
    (lambda: K.path_learned_first(PATH, None), lambda: check_learned_first(PATH, None)),
])
def test_path_schemas_admit_only_paths_that_pass_the_checks(build, check):
    schema = build()
    for doc in _walks(schema, 15, slack=200):
        jsonschema.validate(doc, schema)
        doc = json.loads(json.dumps(doc).replace('"title": ""', '"title": "t"'))  # min_length 1, not the point here
        check()(S.LearningPath.model_validate(doc))


def test_learned_first_gets_fresh_ids_and_the_requested_total():
    schema = K.path_learned_first(PATH, 4)
    ids = [item["properties"]["id"]["const"] for item in schema["properties"]["learning_path"]["prefixItems"]]
    assert ids == ["Session 1", "Session 4", "Session 2", "Session 3"]
    assert K.path_of(-1) is None and K.path_of(None) is None


def test_quiz_schema_has_the_requested_counts():
    counts = {"single_choice": 2, "multiple_choice": 0, "true_false": 1, "short_answer": 0}
    schema = K.quiz_with_counts(counts)
    for doc in _walks(schema, 10, slack=100):
        jsonschema.validate(doc, schema)
        for q in doc["single_choice_questions"]:  # fill what only pydantic checks (non-empty, index in range)
            q.update(question="q", correct_option=0)
        for q in doc["true_false_questions"]:
            q.update(question="q")
        check_quiz_counts(counts)(S.DocumentQuiz.model_validate(doc))


def test_exact_spells_out_one_value():
    value = _session(3, True)
    schema = K.exact(value)
    assert _accepts(schema, json.dumps(value, separators=(",", ":")))
    assert not _accepts(schema, json.dumps({**value, "title": "other"}, separators=(",", ":")))
    assert list(_walks(schema, 3)) == [value] * 3


# ------------------------------------------------------------------------------ the teacher's replies fit the decoder
def test_the_scripted_teachers_replies_are_what_the_constrained_decoder_can_write():
    """A constrained run of the scripted model: every JSON-only call carries a schema, reason-first ones none, and
    every reply, stored compact as the distillation data keeps it, is a byte sequence our decoder accepts under the
    schema that call sent. So a student distilled from these replies is not pushed off its training distribution."""
    inner = ScriptedBackend(B.mock_rules())
    teacher = CapturingBackend(inner, compact_json=True)
    tracer = Tracer(None)
    agents = Agents(Caller(teacher, GenConfig(), tracer, constrain=True, unconstrained=REASON_FIRST))
    learner = {"id": "l1", "goal": "I want to become a junior data analyst building dashboards.",
               "learner_information": "I used Excel and SQL at work.",
               "gold": [{"name": "SQL", "required_level": "beginner"}, {"name": "Tableau", "required_level": "beginner"}]}
    rec = R.run_learner(learner, agents, R.RunSpec(constrain_json=True),
                        C.Retrieved([{"id": "d", "text": "Learning SQL joins"}]), judge_backend=None)
    assert "failed" not in rec, rec.get("failed")
    notes = {}
    for call, pair in zip(inner.calls, teacher.pairs):
        notes.setdefault(call.tag, set()).add(None if call.cfg.response_format is None else "sent")
        if call.cfg.response_format is not None:
            assert _accepts(call.cfg.response_format, pair["reply"]), (call.tag, pair["reply"][:300])
    for tag in REASON_FIRST + ("tutor.chat",):
        assert notes.get(tag, {None}) == {None}, tag
    for tag in ("skill_gap.goal_refiner", "skill_gap.gap_identifier", "profiler.init", "path.schedule.genmentor",
                "path.reflexion", "path.reschedule", "content.quiz", "content.draft", "sim.behaviour", "profiler.update",
                "sim.ground_truth", "sim.progress"):
        assert notes[tag] == {"sent"}, tag
    for tag in ("skill_gap.gap_identifier", "profiler.init", "profiler.update", "sim.ground_truth", "sim.progress",
                "path.schedule.genmentor", "path.reflexion", "path.reschedule", "content.quiz"):
        assert {r["constraint"] for r in tracer.records if r.get("agent") == tag} == {"inputs"}, tag
    # a profile schema (one alternative per split) is traced by its digest, not whole
    traced = next(r["gen_config"]["response_format"] for r in tracer.records if r.get("agent") == "profiler.init")
    assert set(traced) == {"schema_sha256", "schema_bytes"} and traced["schema_bytes"] > 16_384


def test_capture_stores_constrained_json_replies_as_the_decoder_writes_them():
    backend = ScriptedBackend([("a", None, '{"y": "s", "x": [1, 2], "extra": 0}'), ("b", None, 'Reasoning. {"x": 1}'),
                               ("c", None, '{"x": "not a list"}')])
    cap = CapturingBackend(backend, compact_json=True)
    schema = GenConfig(response_format={"type": "object", "properties": {
        "x": {"type": "array", "items": {"type": "integer"}},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "y": {"type": "string"}}})
    msgs = [{"role": "user", "content": "u"}]
    cap.chat(msgs, schema, tag="a")  # declared order, default filled, extra key dropped, no whitespace
    cap.chat(msgs, GenConfig(), tag="a")  # not constrained: as written
    cap.chat(msgs, GenConfig(response_format="json"), tag="a")  # any JSON: compact only
    cap.chat(msgs, schema, tag="b")  # not a bare document
    cap.chat(msgs, schema, tag="c")  # no form under the schema
    assert [p["reply"] for p in cap.pairs] == [
        '{"x":[1,2],"note":null,"y":"s"}', '{"y": "s", "x": [1, 2], "extra": 0}', '{"y":"s","x":[1,2],"extra":0}',
        'Reasoning. {"x": 1}', '{"x": "not a list"}']
    assert _accepts(schema.response_format, cap.pairs[0]["reply"])
