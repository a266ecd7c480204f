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
