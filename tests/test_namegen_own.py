"""The default NAMeGEn plumbing run on our own model: a tiny LM trained from scratch on the scripted teacher's
replies, every agent call (generator and judges) served in process; resume does not retrain; replay holds."""

import json
import os

import pytest

from configs.namegen import get_config
from humanai_jax.agents import GenConfig
from humanai_jax.methods.namegen import backends, data

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(data.default_data_dir(), "test_data_500.csv")),
                                reason="CBNames data absent")


def test_default_variant_is_the_distilled_plumbing_run():
    c = get_config()
    assert c.backend.kind == "distilled" and c.plumbing and c.methods == "full" and c.limit == 2
    assert get_config("full").backend.kind == "mock"


@pytest.mark.slow
def test_own_model_run_end_to_end_resume_and_replay(tmp_path):
    from experiments import replay_metrics
    from experiments.run import run_experiment

    config = get_config("plumbing,limit=1")
    config.loop.max_round = 1
    config.distill.update(teacher_limit=1, steps=6, d_model=32, n_layers=1, max_reply_tokens=48,
                          scripted_reference=False)
    res = run_experiment(config, str(tmp_path))
    assert res["plumbing"] is True and "not quality" in res["distill"]["label"]
    assert res["distill"]["resumed"] is False and res["distill"]["final_step"] == 6
    # the distillation data is exactly the scripted teacher's replies to those prompts
    with open(tmp_path / "distill" / "teacher_pairs.jsonl", encoding="utf-8") as f:
        pairs = [json.loads(line) for line in f]
    teacher = backends.mock_backend()
    assert pairs and all(teacher.chat(p["messages"], GenConfig(), tag=p["tag"]).text == p["reply"] for p in pairs)
    # every agent call of the run went to the in-process student, none to the scripted model
    with open(tmp_path / "traces.jsonl", encoding="utf-8") as f:
        calls = [r for r in map(json.loads, f) if r.get("type") == "llm_call"]
    assert calls and {r["backend"] for r in calls} == {"project:distilled-from-scripted(in-process JAX)"}
    outcome = res["distill"]["calls"]
    assert outcome["backends"] == {calls[0]["backend"]: len(calls)}
    first = [r for r in calls if r["attempt"] == 1]
    assert outcome["first_time"] == sum(r["parse_error"] is None and r["parsed"] is not None for r in first)
    assert outcome["first_time"] + outcome["after_repair"] + outcome["gave_up"] + outcome["other"] <= len(calls)
    # replay: the recomputed metrics equal results.json (a 6-step student may give up on every name: then the
    # failure counts are all there is to compare, which is what the default run's replay check then covers)
    out = replay_metrics.replay(str(tmp_path / "traces.jsonl"))
    assert replay_metrics.compare(out["metrics"], res["methods"])[1] == []
    # a re-run resumes: no training step, no repeated query
    res2 = run_experiment(config, str(tmp_path))
    assert res2["distill"]["resumed"] is True and res2["distill"]["final_step"] == 6
    with open(tmp_path / "traces.jsonl", encoding="utf-8") as f:
        assert sum(r.get("type") == "llm_call" for r in map(json.loads, f)) == len(calls)
