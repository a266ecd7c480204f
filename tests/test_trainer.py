"""The shared Trainer (humanai_jax/train/trainer.py).

- `configs/lm.py:tiny` on the Trainer gives bit-identical per-step losses to the hand-written loop it
  replaced (values recorded from that loop at commit 4bf2b53 with the same overrides);
- on a toy task whose every step is known in closed form: hooks, metrics.jsonl and TensorBoard events,
  resume (no duplicate steps, equal to an uninterrupted run), a corrupt newest checkpoint (moved aside,
  the run goes past it), and a resume under another fingerprint (refused, naming the keys).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from humanai_jax import experiment
from humanai_jax.train.trainer import CheckpointConfig, ResumeMismatchError, Trainer, TrainerConfig, TrainTask

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Per-step losses of `configs/lm.py:tiny` + test_train_resume.SMALL from the loop in experiments/lm.py
# before it moved onto the Trainer (recorded twice, identical both times).
PINNED_LM_LOSSES = {
    1: 5.964951515197754, 2: 5.944872856140137, 3: 5.926884651184082, 4: 5.830850124359131,
    5: 5.749896049499512, 6: 5.622074127197266, 7: 5.552038192749023, 8: 5.492583751678467,
    9: 5.4384260177612305, 10: 5.409992218017578, 11: 5.354143142700195, 12: 5.370711326599121,
}


def test_lm_tiny_losses_are_bit_identical_to_the_old_loop(tmp_path):
    from test_train_resume import SMALL

    cmd = [sys.executable, "-m", "experiments.run", "--config", "configs/lm.py:tiny", "--workdir", str(tmp_path), *SMALL]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    losses = {r["step"]: r["loss"] for r in experiment.read_metrics(str(tmp_path)) if "loss" in r}
    assert losses == PINNED_LM_LOSSES
    assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*")), "no TensorBoard event file"


# ------------------------------------------------------------------------------------ toy task
# State w (scalar) and step; the batch of step s is x_s = s + 1; the loss is (w - x_s)^2 / 2 and the
# step is plain gradient descent with lr 0.5: w <- w - 0.5 (w - x_s) = (w + x_s) / 2. From w_0 = 0:
# w_1 = 0.5, w_2 = 1.25, w_3 = 2.125, ... every number is exact in float32.
def _toy_task(fingerprint=None) -> TrainTask:
    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    replicated = NamedSharding(mesh, PartitionSpec())
    abstract_state = {"w": jax.ShapeDtypeStruct((), jnp.float32, sharding=replicated),
                      "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated)}

    def step(state, batch):
        x = batch["x"][0]
        loss = 0.5 * (state["w"] - x) ** 2
        return {"w": (state["w"] + x) / 2, "step": state["step"] + 1}, {"loss": loss, "w": state["w"]}

    return TrainTask(
        init=lambda rng: jax.device_put({"w": jnp.float32(0.0), "step": jnp.int32(0)}, replicated),
        abstract_state=abstract_state,
        state_shardings={"w": replicated, "step": replicated},
        step=step,
        batch_at=lambda s: {"x": np.array([s + 1.0], np.float32)},
        abstract_batch={"x": jax.ShapeDtypeStruct((1,), jnp.float32, sharding=replicated)},
        fingerprint=fingerprint or {"seed": 0, "data": {"kind": "toy"}},
        tokens_per_step=1,
    )


def _expected_w(n: int) -> list[float]:
    w, out = 0.0, []
    for s in range(n):
        w = (w + s + 1.0) / 2
        out.append(w)
    return out


def _fit(workdir, steps, *, every=2, fingerprint=None, hooks=()):
    trainer = Trainer(str(workdir), TrainerConfig(steps=steps, log_every=1, progress=False),
                      CheckpointConfig(every=every, async_save=False))
    for fn, n in hooks:
        trainer.add_hook(fn, every=n)
    return trainer.fit(_toy_task(fingerprint))


def _metric(workdir, key) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in experiment.read_metrics(str(workdir)) if key in r]


def test_toy_task_steps_hooks_and_metrics(tmp_path):
    calls = []

    def hook(step, state):
        calls.append((step, float(state["w"])))
        return {"hook_w": float(state["w"])}

    state, summary = _fit(tmp_path, 5, hooks=[(hook, 2)])
    expected = _expected_w(5)
    assert float(state["w"]) == expected[-1] and int(state["step"]) == 5
    assert calls == [(2, expected[1]), (4, expected[3]), (5, expected[4])]  # every 2, and at the end
    assert _metric(tmp_path, "hook_w") == [(2, expected[1]), (4, expected[3]), (5, expected[4])]
    # the logged w is the state *before* each step: 0, then w_1, ...
    assert [w for _, w in _metric(tmp_path, "w")] == [0.0, *expected[:4]]
    times = [r["time"] for r in experiment.read_metrics(str(tmp_path)) if "loss" in r]
    assert times == sorted(times)
    assert summary["final_step"] == 5 and not summary["preempted"]
    assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))


def test_a_hook_can_stop_training_early(tmp_path):
    """A hook returning STOP_TRAINING ends the run after that step: no later step runs, the final checkpoint is
    that step, the flag is not logged as a metric."""
    from humanai_jax.train.trainer import STOP_TRAINING

    def stop_at_3(step, state):
        return {"hook_w": float(state["w"]), STOP_TRAINING: step == 3}

    state, summary = _fit(tmp_path, 10, every=0, hooks=[(stop_at_3, 1)])
    assert summary["stopped_early"] and summary["final_step"] == 3 and int(state["step"]) == 3
    assert float(state["w"]) == _expected_w(3)[-1]
    assert [s for s, _ in _metric(tmp_path, "loss")] == [1, 2, 3]
    assert all(STOP_TRAINING not in r for r in experiment.read_metrics(str(tmp_path)))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3"]


def test_resume_drops_stale_metrics_and_equals_an_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    _fit(whole, 6)
    part = tmp_path / "part"
    _fit(part, 4)
    log = experiment.MetricsLog(str(part), enabled=True)  # a killed run had logged steps 5-6 already
    log.write(5, loss=123.0)
    log.write(6, loss=456.0)
    state, summary = _fit(part, 6)
    assert summary["start_step"] == 4
    assert _metric(part, "loss") == _metric(whole, "loss")  # each step once, same values
    assert float(state["w"]) == _expected_w(6)[-1]


def test_corrupt_newest_checkpoint_is_moved_aside_and_the_run_goes_past_it(tmp_path):
    _fit(tmp_path, 4)  # checkpoints 2 and 4
    for f in glob.glob(str(tmp_path / "checkpoints" / "4" / "state" / "**" / "*"), recursive=True):
        if os.path.isfile(f) and os.path.getsize(f) > 0:
            with open(f, "r+b") as fh:
                fh.truncate(1)
    state, summary = _fit(tmp_path, 6)
    assert summary["start_step"] == 2
    assert float(state["w"]) == _expected_w(6)[-1]
    aside = glob.glob(str(tmp_path / "checkpoints_corrupt" / "4_*"))
    assert len(aside) == 1, "the unreadable checkpoint is kept for inspection"
    assert sorted(int(p) for p in os.listdir(tmp_path / "checkpoints") if p.isdigit())[-1] == 6
    _, again = _fit(tmp_path, 6)  # and a rerun does not trip over it either
    assert again["start_step"] == 6


def test_resume_under_another_fingerprint_is_refused_naming_the_key(tmp_path):
    _fit(tmp_path, 2)
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(ResumeMismatchError, match=r"data\.kind: checkpoint 'toy', this run 'other'"):
        _fit(tmp_path, 4, fingerprint={"seed": 0, "data": {"kind": "other"}})
    assert (tmp_path / "metrics.jsonl").read_text() == before  # nothing was lost


def test_resume_with_another_model_names_the_mismatch_not_unreadable(tmp_path):
    """A workdir written by another model (other shapes) is refused by fingerprint, before any restore."""
    _fit(tmp_path, 2)
    task = _toy_task({"seed": 0, "data": {"kind": "toy"}, "model": {"d_model": 64}})
    task = dataclasses.replace(task, abstract_state={**task.abstract_state, "w": jax.ShapeDtypeStruct(
        (2,), jnp.float32, sharding=task.abstract_state["w"].sharding)})
    trainer = Trainer(str(tmp_path), TrainerConfig(steps=4, progress=False), CheckpointConfig(async_save=False))
    with pytest.raises(ResumeMismatchError, match=r"model: checkpoint '<absent>'"):
        trainer.fit(task)


def test_lm_refuses_an_eval_split_smaller_than_one_batch(tmp_path):
    from test_train_resume import SMALL

    small = [a for a in SMALL if not a.startswith("--config.train.eval_every")]
    cmd = [sys.executable, "-m", "experiments.run", "--config", "configs/lm.py:tiny", "--workdir", str(tmp_path),
           *small, "--config.train.eval_every=2", "--config.train.batch_size=64"]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "fewer than one batch" in proc.stdout + proc.stderr
    assert not os.path.exists(tmp_path / "results.json") or "eval_loss" not in json.loads(
        (tmp_path / "results.json").read_text())


# ------------------------------------------------------------------------------------ kill -9 + resume
def _launch(spec, workdir, *extra):
    cmd = [sys.executable, "-m", "experiments.run", "--config", spec, "--workdir", str(workdir), *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _losses(workdir) -> dict[int, float]:
    try:
        return {r["step"]: r["loss"] for r in experiment.read_metrics(str(workdir)) if "loss" in r}
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_humanllm_kill9_then_resume_equals_an_uninterrupted_run(tmp_path):
    """HumanLLM SFT on the Trainer: SIGKILL after checkpoint 2, rerun: same per-step losses, each step once."""
    import time

    args = ["--config.train.steps=6", "--config.ckpt.every=2", "--config.merge.enabled=False"]
    whole = _launch("configs/humanllm_sft.py:smoke", tmp_path / "whole", *args)
    out, _ = whole.communicate(timeout=600)
    assert whole.returncode == 0, out[-3000:]
    part = tmp_path / "part"
    proc = _launch("configs/humanllm_sft.py:smoke", part, *args, "--config.train.slow_step_s=1.0")
    start = time.time()
    while not (len(_losses(part)) >= 3 and os.path.isdir(part / "checkpoints" / "2")):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() - start < 600, "timed out"
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no cleanup, no final save
    proc.wait()
    again = _launch("configs/humanllm_sft.py:smoke", part, *args)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    assert "Resumed from checkpoint" in out
    steps = [r["step"] for r in experiment.read_metrics(str(part)) if "loss" in r]
    assert steps == sorted(set(steps)), "a step was logged twice"
    assert _losses(part) == _losses(tmp_path / "whole")


def test_lm_with_eval_off_accepts_an_eval_split_smaller_than_one_batch(tmp_path):
    """The refusal above only applies when evaluation is on (its message offers train.eval_every=0)."""
    from test_train_resume import SMALL

    small = [a for a in SMALL if not a.startswith(("--config.train.eval_every", "--config.train.steps"))]
    cmd = [sys.executable, "-m", "experiments.run", "--config", "configs/lm.py:tiny", "--workdir", str(tmp_path),
           *small, "--config.train.eval_every=0", "--config.train.batch_size=64", "--config.train.steps=2"]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
