"""The trainer as users run it (`python -m experiments.run` in a subprocess): killed mid-run with
SIGKILL, or sent SIGTERM, it resumes from its newest checkpoint and reproduces the uninterrupted
run's per-step losses exactly (data position included)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 12
SMALL = [
    "--config.model.d_model=32", "--config.model.n_layers=2", "--config.model.n_heads=4",
    "--config.model.n_kv_heads=2", "--config.model.mlp_dim=64",
    "--config.data.num_docs=300", "--config.data.vocab_size=300", "--config.data.seq_len=32",
    "--config.train.batch_size=8", f"--config.train.steps={STEPS}", "--config.train.log_every=1",
    "--config.train.eval_every=0", "--config.train.progress=False",
    "--config.train.peak_flops=1e10", "--config.ckpt.every=3", "--config.ckpt.keep=10",
    "--config.optim.warmup_steps=2",
]


# Every single-process run here compiles the same programs: a persistent XLA compilation cache
# shared by the runs (set up by `_compile_cache`) makes the later ones skip compilation. Cached
# executables are the same programs, so the exact-equality checks are unaffected.
_CACHE_ENV: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def _compile_cache(tmp_path_factory):
    _CACHE_ENV.update(
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("xla_cache")),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    yield
    _CACHE_ENV.clear()


def _launch(workdir, *extra):
    cmd = [sys.executable, "-m", "experiments.run", "--config", "configs/lm.py:tiny", "--workdir", str(workdir), *SMALL, *extra]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO, **_CACHE_ENV)
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _losses(workdir) -> dict[int, float]:
    """Last logged training loss per step (a resumed run re-logs the steps after its checkpoint)."""
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "loss" in r:
                out[r["step"]] = r["loss"]
    return out


def _wait_for(predicate, proc, timeout=600):
    start = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early ({proc.returncode}):\n{proc.stdout.read()[-3000:]}")
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the trainer")
        time.sleep(0.05)


def _steps_logged(workdir) -> int:
    try:
        return len(_losses(workdir))
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.fixture(scope="module")
def uninterrupted_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    rc, out = _finish(_launch(workdir, "--config.ckpt.export_hf=True"))
    assert rc == 0, out[-3000:]
    results = json.load(open(workdir / "results.json"))
    assert results["final_step"] == STEPS and not results["preempted"]
    assert os.path.exists(workdir / "loss.png") and os.path.isdir(workdir / "checkpoints" / str(STEPS))
    return workdir


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_workdir):
    losses = _losses(uninterrupted_workdir)
    assert sorted(losses) == list(range(1, STEPS + 1))
    return losses


def test_sigkill_mid_run_then_resume_reproduces_losses(uninterrupted, tmp_path):
    proc = _launch(tmp_path, "--config.train.slow_step_s=0.4")
    ckpt6 = tmp_path / "checkpoints" / "6"
    _wait_for(lambda: (ckpt6 / "commit_success.txt").exists() or (ckpt6 / "_CHECKPOINT_METADATA").exists(), proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _steps_logged(tmp_path)
    assert 6 <= killed_at < STEPS, killed_at
    rc, out = _finish(_launch(tmp_path))
    assert rc == 0, out[-3000:]
    assert "Resumed from checkpoint" in out
    assert _losses(tmp_path) == uninterrupted  # exact equality, every step


def test_sigterm_saves_then_resume_reproduces_losses(uninterrupted, tmp_path):
    proc = _launch(tmp_path, "--config.train.slow_step_s=0.4")
    _wait_for(lambda: _steps_logged(tmp_path) >= 4, proc)
    proc.send_signal(signal.SIGTERM)
    rc, out = _finish(proc)
    assert rc == 0, out[-3000:]
    results = json.load(open(tmp_path / "results.json"))
    stopped = results["final_step"]
    assert results["preempted"] and 4 <= stopped < STEPS
    assert f"Preempted: saved checkpoint {stopped}" in out
    assert (tmp_path / "checkpoints" / str(stopped)).is_dir()  # saved off the every-3 schedule if need be
    rc, out = _finish(_launch(tmp_path))
    assert rc == 0, out[-3000:]
    assert f"Resumed from checkpoint {stopped}" in out
    assert _losses(tmp_path) == uninterrupted


def test_misspelled_config_key_errors_and_lists_valid_keys(tmp_path):
    proc = _launch(tmp_path, "--config.train.stepz=5")
    rc, out = _finish(proc)
    assert rc != 0
    assert "stepz" in out and "steps" in out and "batch_size" in out  # the valid keys are listed
    assert not (tmp_path / "metrics.jsonl").exists()


def test_two_process_run_matches_single_process(uninterrupted, uninterrupted_workdir, tmp_path):
    """A real multi-host launch on one machine: 2 processes x 2 CPU devices, joined by
    `jax.distributed.initialize()` (explicit coordinator env vars), each feeding its own rows of the
    batch. Same 4-device FSDP mesh as the single-process run, so the losses agree; only process 0
    writes metrics; all processes take part in the checkpoint and in the HF export, which equals
    the single-process run's export."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for pid in range(2):
        env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                   JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(pid),
                   XLA_FLAGS="--xla_force_host_platform_device_count=2")
        cmd = [sys.executable, "-m", "experiments.run", "--config", "configs/lm.py:tiny", "--workdir", str(tmp_path), *SMALL,
               "--config.ckpt.export_hf=True"]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [_finish(p) for p in procs]
    for rc, out in outs:
        assert rc == 0, out[-3000:]
    assert "process 0 of 2" in outs[0][1] and "process 1 of 2" in outs[1][1]
    assert "Wrote " in outs[0][1] and "results.json" not in outs[1][1]  # results: process 0 only
    assert "Mesh {'data': 1, 'fsdp': 4, 'tensor': 1} on 4 cpu devices, 2 process(es)" in outs[0][1]
    losses = _losses(tmp_path)
    assert sorted(losses) == sorted(uninterrupted)  # one metrics line per step: process 0 only
    for step, loss in uninterrupted.items():
        assert abs(losses[step] - loss) <= 1e-5 * abs(loss), (step, losses[step], loss)
    assert (tmp_path / "checkpoints" / str(STEPS) / "state").is_dir()
    # save_pretrained gathered each tensor across the 2 processes; process 0 wrote the files.
    from safetensors.numpy import load_file

    ours, single = (load_file(d / "hf_export" / "model.safetensors") for d in (tmp_path, uninterrupted_workdir))
    assert sorted(ours) == sorted(single)
    for name, value in single.items():
        np.testing.assert_allclose(ours[name], value, atol=1e-5, err_msg=name)
