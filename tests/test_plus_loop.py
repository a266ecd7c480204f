"""PLUS loop end to end on the tiny config: results/metrics/curves, exact resume of every model and
optimizer state from an Orbax checkpoint, and an RM-only baseline of the same config family."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from configs.plus import get_config
from experiments.run import run_experiment
from humanai_jax.experiment import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def step_rows(workdir):
    """metrics.jsonl merged by step (the Trainer logs a step's train metrics and its eval hook separately)."""
    merged = {}
    for r in read_metrics(workdir):
        if r["step"] > 0:
            merged.setdefault(r["step"], {}).update(r)
    return [merged[s] for s in sorted(merged)]


TRAIN_KEYS = ("rollout_reward", "rollout_accuracy", "policy_loss", "value_loss", "rm_loss", "kl", "kl_coef")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, run_experiment(get_config("tiny"), workdir)


def test_plus_run_writes_results_metrics_curves(straight):
    workdir, results = straight
    assert results["complete"] and results["method"] == "plus"
    for population in ("seen", "unseen"):
        assert 0.0 <= results[f"{population}_accuracy"] <= 1.0
        assert results[f"{population}_mean_log_sigmoid"] < 0.0
        assert results[f"{population}_num_pairs"] == 16
    assert os.path.exists(os.path.join(workdir, "curves.png"))
    assert json.load(open(os.path.join(workdir, "results.json")))["seen_accuracy"] == results["seen_accuracy"]
    rows = step_rows(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in TRAIN_KEYS:
        assert all(np.isfinite(r[key]) for r in rows), key
    assert all(r["rollout_reward"] <= 0.0 for r in rows)  # R = log σ(·) <= 0
    assert "eval_test_ood_accuracy" in rows[1] and "eval_test_ood_accuracy" not in rows[0]
    assert all(len(s["summary"]) >= 0 for s in results["example_summaries"])


def test_resume_reproduces_the_uninterrupted_run(straight, tmp_path):
    _, _ = straight
    straight_rows = {r["step"]: r for r in step_rows(straight[0])}
    config = get_config("tiny")
    config.stop_after = 2
    partial = run_experiment(config, str(tmp_path))
    partial.pop("provenance")  # the runner's stamp (commit, date, machine): checked in tests/test_runner.py
    assert partial == {"method": "plus", "stopped_at": 2, "complete": False, "wall_time_s": partial["wall_time_s"]}
    resumed = run_experiment(get_config("tiny"), str(tmp_path))
    rows = step_rows(str(tmp_path))
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for row in rows[2:]:  # steps 3-4 ran after the restore: actor, critic, RM, optimizers, ref and RNG all restored
        for key in TRAIN_KEYS:
            np.testing.assert_allclose(row[key], straight_rows[row["step"]][key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert resumed["seen_accuracy"] == straight[1]["seen_accuracy"]


def test_kill9_then_resume_equals_the_uninterrupted_run(straight, tmp_path):
    """PLUS on the Trainer: SIGKILL a subprocess run after checkpoint 2 (no cleanup, no final save), resume
    in-process: every model, optimizer, the reference, RNG and KL state come back; each step logged once."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.run", "--config", "configs/plus.py:tiny", "--workdir", str(tmp_path),
         "--config.checkpoint_every=1", "--config.slow_step_s=2.0"],
        cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = time.time()
    while not os.path.isdir(tmp_path / "checkpoints" / "2"):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() - start < 600, "timed out"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = {r["step"] for r in read_metrics(str(tmp_path)) if "rollout_reward" in r}
    assert 2 <= max(done) < 4, done  # killed mid-run
    config = get_config("tiny")
    config.checkpoint_every = 1
    resumed = run_experiment(config, str(tmp_path))
    steps = [r["step"] for r in read_metrics(str(tmp_path)) if "rollout_reward" in r]
    assert steps == [1, 2, 3, 4], "a step was logged twice or lost"
    straight_rows = {r["step"]: r for r in step_rows(straight[0])}
    for row in step_rows(str(tmp_path))[2:]:
        for key in TRAIN_KEYS:
            np.testing.assert_allclose(row[key], straight_rows[row["step"]][key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert resumed["seen_accuracy"] == straight[1]["seen_accuracy"]
    assert resumed["unseen_accuracy"] == straight[1]["unseen_accuracy"]


def test_adaptive_kl_controller_follows_the_update_rule(straight):
    """The tiny config runs the adaptive controller (target 1e-3, horizon 16, 8 samples per batch): each
    batch's β is the previous β times 1 + clip(kl/target - 1, ±0.2)·8/16, from the previous batch's KL."""
    rows = step_rows(straight[0])
    config = get_config("tiny")
    beta = config.ppo.kl_coef
    for row in rows:
        np.testing.assert_allclose(row["kl_coef"], beta, rtol=1e-5)
        error = min(max(row["kl"] / config.ppo.kl_target - 1.0, -0.2), 0.2)
        beta *= 1.0 + error * config.ppo.rollout_batch / config.ppo.kl_horizon
    assert rows[-1]["kl_coef"] != config.ppo.kl_coef  # it moved


def test_rm_warmup_then_coadaptation(tmp_path):
    """rm_warmup_steps=W: batches 1..W train the RM only (no PPO), then PLUS co-adapts; W+R RM passes."""
    config = get_config("tiny,rollouts=2")
    config.rm_warmup_steps = 1
    results = run_experiment(config, str(tmp_path))
    rows = step_rows(str(tmp_path))
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[0]["phase_rm_warmup"] == 1.0 and "policy_loss" not in rows[0] and "rm_loss" in rows[0]
    assert rows[1]["phase_rm_warmup"] == 0.0 and np.isfinite(rows[1]["policy_loss"])
    assert results["rm_updates"] == 3 * config.ppo.rollout_batch // config.ppo.rm_batch


def test_oracle_baseline_trains_reward_model_only(tmp_path):
    config = get_config("tiny,method=oracle")  # same settings as `straight`: reuses its compiled steps
    results = run_experiment(config, str(tmp_path))
    rows = step_rows(str(tmp_path))
    assert results["method"] == "oracle" and "example_summaries" not in results
    assert "rm_loss" in rows[0] and "policy_loss" not in rows[0]


def test_diagnostic_reward_needs_plus_on_attributes(tmp_path):
    config = get_config("tiny")  # Pets: no per-attribute summary score
    config.ppo.reward = "summary_score"
    with pytest.raises(ValueError, match="PPO diagnosis for method 'plus' on a task with summary scores"):
        run_experiment(config, str(tmp_path / "a"))
    config.ppo.reward = "labels"
    with pytest.raises(ValueError, match="ppo.reward must be 'rm'"):
        run_experiment(config, str(tmp_path / "b"))


def test_unknown_method_is_rejected():
    config = get_config("tiny")
    config.method = "dpl"
    with pytest.raises(ValueError, match="Unknown method 'dpl'"):
        run_experiment(config, "/tmp/never_written_plus")


def test_sharded_run_matches_single_device(straight, tmp_path):
    """fsdp=2 over the simulated CPU devices: parameters, optimizer states and the decoding engine's
    reads are sharded; the deterministic SFT losses must match the single-device run."""
    config = get_config("tiny,rollouts=1")
    config.mesh.fsdp = 2
    results = run_experiment(config, str(tmp_path))
    assert results["complete"] and np.isfinite(results["seen_accuracy"])
    sharded = [r for r in read_metrics(str(tmp_path)) if r["step"] < 0]
    single = [r for r in read_metrics(straight[0]) if r["step"] < 0]
    assert len(sharded) == len(single) == 2
    for a, b in zip(sharded, single):
        np.testing.assert_allclose(a["sft_loss"], b["sft_loss"], rtol=1e-4)
    rows = step_rows(str(tmp_path))
    assert np.isfinite(rows[0]["policy_loss"]) and np.isfinite(rows[0]["rm_loss"])
