"""GenMentor's tutoring run on our own model: a tiny LM trained from scratch on the scripted teacher's replies
answers every agent and the judge in process; resume does not retrain; the replay hook reproduces results.json."""

import json

import pytest

from configs.genmentor import get_config
from humanai_jax.agents import GenConfig
from humanai_jax.methods.genmentor import backends

STUDENT = "project:distilled-from-scripted(in-process JAX)"


def test_default_variant_runs_tutoring_on_the_distilled_model():
    c = get_config()
    assert c.backend.kind == "distilled" and c.plumbing and c.tutoring.mapper == "trained"
    assert get_config("smoke").backend.kind == "mock" and not get_config("pipeline,kind=openai").plumbing


@pytest.mark.slow
def test_own_model_tutoring_end_to_end_resume_and_replay(tmp_path):
    from experiments import replay_metrics
    from experiments.run import run_experiment

    config = get_config("pipeline,kind=distilled,learners=1")
    config.eval.bootstrap_resamples = 50
    config.distill.update(teacher_learners=1, steps=6, d_model=32, n_layers=1, max_reply_tokens=48,
                          scripted_reference=False)
    res = run_experiment(config, str(tmp_path))["tutoring"]
    assert res["plumbing"] is True and "not quality" in res["distill"]["label"]
    assert res["distill"]["resumed"] is False and res["distill"]["final_step"] == 6
    # the distillation data is exactly the scripted teacher's replies to those prompts
    with open(tmp_path / "tutoring_distill" / "teacher_pairs.jsonl", encoding="utf-8") as f:
        pairs = [json.loads(line) for line in f]
    teacher = backends.mock_backend()
    assert len(pairs) > 5
    assert all(teacher.chat(p["messages"], GenConfig(), tag=p["tag"]).text == p["reply"] for p in pairs)
    # every model call of the tutoring run (agents, mapper, judge) went to the in-process student
    with open(tmp_path / "tutoring" / "traces.jsonl", encoding="utf-8") as f:
        calls = [r for r in map(json.loads, f) if r.get("type") == "llm_call"]
    assert calls and {r["backend"] for r in calls} == {STUDENT}
    assert res["distill"]["calls"]["backends"] == {STUDENT: len(calls)}
    out = replay_metrics.replay(str(tmp_path / "tutoring" / "traces.jsonl"))
    n, diffs = replay_metrics.compare(out["metrics"], res)
    assert n > 0 and diffs == []
    res2 = run_experiment(config, str(tmp_path))["tutoring"]
    assert res2["distill"]["resumed"] is True
    with open(tmp_path / "tutoring" / "traces.jsonl", encoding="utf-8") as f:
        assert sum(r.get("type") == "llm_call" for r in map(json.loads, f)) == len(calls)


@pytest.mark.slow
def test_constrained_student_always_writes_documents_of_the_sent_schema(tmp_path):
    """`tutoring.constrain_json`: a student trained for 6 steps (it writes near noise) decodes every JSON-only agent
    under its schema: every constrained reply is a whole document of the schema it was sent, whatever else fails.
    The mapper (reason first, never constrained) is the scripted model, so the learner reaches every agent."""
    import jsonschema

    from humanai_jax.agents import extract_json
    from humanai_jax.agents.distill import CapturingBackend, DistillConfig, train_student
    from humanai_jax.methods.genmentor import content as C, runner as R
    from humanai_jax.methods.genmentor.agents import REASON_FIRST, Agents
    from humanai_jax.methods.genmentor.llm import Caller, Tracer

    learner = {"id": "l1", "goal": "I want to become a junior data analyst building dashboards.",
               "learner_information": "I used Excel and SQL at work.",
               "gold": [{"name": "SQL", "required_level": "beginner"}, {"name": "Tableau", "required_level": "beginner"}]}
    spec = R.RunSpec(constrain_json=True, simulate_sessions=1, path_refine_iters=1, content_methods=("genmentor",),
                     judge=False, gen=GenConfig(temperature=0.0, max_tokens=2048))
    retrieved = C.Retrieved([{"id": "d", "text": "Learning SQL joins"}])
    teacher = CapturingBackend(backends.mock_backend(), compact_json=True)
    R.run_learner(learner, Agents(Caller(teacher, spec.gen, Tracer(None), constrain=True, unconstrained=REASON_FIRST)),
                  spec, retrieved, judge_backend=None)
    student, _ = train_student(teacher.pairs, str(tmp_path / "student"),
                               DistillConfig(steps=6, d_model=32, n_layers=1, max_reply_tokens=320))
    tracer = Tracer(None)
    agents = Agents(Caller(student, spec.gen, tracer, constrain=True, unconstrained=REASON_FIRST),
                    mapper=Caller(backends.mock_backend(), spec.gen, tracer))
    R.run_learner(learner, agents, spec, retrieved, judge_backend=None)
    constrained = [r for r in tracer.records if r.get("type") == "llm_call" and r.get("constraint")]
    assert {r["constraint"] for r in constrained} == {"schema", "inputs"}
    assert {r["agent"] for r in constrained} >= {"skill_gap.goal_refiner", "skill_gap.gap_identifier", "profiler.init",
                                                 "sim.ground_truth", "path.schedule.genmentor"}
    for r in constrained:
        doc = extract_json(r["response"][0])  # always a whole document, however poor its content
        schema = r["gen_config"]["response_format"]
        if "schema_sha256" not in schema:
            jsonschema.validate(doc, schema)
    assert all(p["reply"][:2] == '{"' for p in teacher.pairs if p["tag"] == "skill_gap.gap_identifier")
