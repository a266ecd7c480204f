"""One Trainer for every gradient-step experiment (in the style of Levanter's `Trainer` and Tunix's
`PeftTrainer`; docs/training.md, docs/architecture.md).

A method describes *what* to train as a `TrainTask` (pure functions and shapes); the `Trainer` owns
*how*: restore-or-init with a resume check, ahead-of-time compilation with the printed memory plan,
the loop (progress bar, tokens/s, MFU), metrics to `metrics.jsonl` and TensorBoard, periodic and final
Orbax checkpoints, the SIGTERM save, hooks (eval, export, plots) and process-0-only file writes.

    task = TrainTask(init=..., abstract_state=..., state_shardings=..., step=..., batch_at=...,
                     abstract_batch=..., fingerprint={"seed": 0, "data_seed": 0, "model": ...})
    trainer = Trainer(workdir, TrainerConfig(steps=200, log_every=10), CheckpointConfig(every=50))
    trainer.add_hook(evaluate, every=50)            # evaluate(step, state) -> dict of metrics
    state, summary = trainer.fit(task)

A hook that returns `{STOP_TRAINING: True, ...}` ends the run after that step (early stopping): the final
checkpoint is written and `summary["stopped_early"]` is True.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from humanai_jax import checkpoint as ckpt_lib, experiment
from humanai_jax.train import runtime

State = Any
Batch = Mapping[str, Any]
STOP_TRAINING = "stop_training"  # a hook result key: end the run after this step


@dataclasses.dataclass(frozen=True)
class TrainTask:
    """What to train. Every callable is pure in its arguments.

    init(rng) -> state: a fresh state placed with `state_shardings` (born sharded: jit with
        out_shardings, or a checkpoint loaded onto the mesh).
    abstract_state: the state's tree of `jax.ShapeDtypeStruct` (restore target, memory plan).
    state_shardings: the state's tree of `NamedSharding`.
    step(state, batch) -> (state, metrics): one optimizer step; jitted here with the state donated.
    batch_at(step) -> {name: host array}: this process's rows of step `step`'s global batch, a pure
        function of (data seed, step), so a resumed run sees exactly the batches it would have seen.
    abstract_batch: {name: ShapeDtypeStruct} of the *global* batch, with its sharding.
    fingerprint: JSON values that must match to resume (seeds, model and data config): a checkpoint
        written under another fingerprint is refused, naming the keys that differ.
    tokens_per_step, flops_per_step: for tokens/s and MFU (0 = not reported).
    python_step: `step` is a Python function calling jitted pieces itself (RL iterations); the
        Trainer then neither jits nor AOT-compiles it, and hands it `batch_at(step)` as returned (host
        objects such as examples; `abstract_batch` and `state_shardings` may be empty).
    """

    init: Callable[[jax.Array], State]
    abstract_state: Any
    state_shardings: Any
    step: Callable[[State, Batch], tuple[State, dict]]
    batch_at: Callable[[int], dict[str, np.ndarray]]
    abstract_batch: dict[str, jax.ShapeDtypeStruct]
    fingerprint: dict = dataclasses.field(default_factory=dict)
    tokens_per_step: int = 0
    flops_per_step: float = 0.0
    python_step: bool = False


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    steps: int
    seed: int = 0
    log_every: int = 10
    progress: bool = True
    peak_flops: float | None = None  # total FLOP/s of the job for MFU (None: not reported)
    slow_step_s: float = 0.0  # sleeps after each step: lets tests interrupt a run mid-way
    tensorboard: bool = True
    wandb_project: str = ""  # log to Weights & Biases too, when set and wandb is importable


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    dir: str = ""  # "" = WORKDIR/checkpoints
    every: int = 0  # 0 = only the final (and the SIGTERM) checkpoint
    keep: int = 3
    async_save: bool = True
    resume: bool = True

    @classmethod
    def from_config(cls, block) -> CheckpointConfig:
        """From a config's `ckpt` block (extra keys such as export_hf are the experiment's own)."""
        return cls(dir=block.dir, every=block.every, keep=block.keep, async_save=block.async_save, resume=block.resume)


@dataclasses.dataclass
class Hook:
    fn: Callable[[int, State], Mapping[str, Any] | None]
    every: int
    at_end: bool = True


class ResumeMismatchError(ValueError):
    """A checkpoint was written by a run with another data position, seed or config."""


def _fingerprint_diff(saved: Mapping, expected: Mapping, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON trees."""
    diffs = []
    for key in sorted(set(saved) | set(expected), key=str):
        a, b = saved.get(key, "<absent>"), expected.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += _fingerprint_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: checkpoint {a!r}, this run {b!r}")
    return diffs


class Trainer:
    """Runs a `TrainTask` in `workdir` (see the module docstring)."""

    def __init__(self, workdir: str, config: TrainerConfig, ckpt: CheckpointConfig):
        self.workdir, self.config, self.ckpt = workdir, config, ckpt
        self.hooks: list[Hook] = []
        self.main = runtime.is_main_process()
        self.metrics = experiment.MetricsLog(workdir, enabled=self.main)
        self.ckpt_dir = ckpt.dir or os.path.join(workdir, "checkpoints")

    def add_hook(self, fn: Callable[[int, State], Mapping[str, Any] | None], *, every: int, at_end: bool = True):
        """Calls `fn(step, state)` after every `every`-th step (and after the last one when at_end);
        a returned dict is logged to metrics.jsonl at that step. every=0: only at the end."""
        self.hooks.append(Hook(fn, every, at_end))

    def log(self, msg: str) -> None:
        if self.main:
            print(msg, flush=True)

    # ------------------------------------------------------------------------------ state
    def _restore_or_init(self, task: TrainTask, checkpointer: ckpt_lib.Checkpointer) -> tuple[int, State]:
        start, state, meta = None, None, None
        if self.ckpt.resume:
            self._check_fingerprint(task, checkpointer)  # before restoring onto possibly other shapes
            start, state, meta = checkpointer.restore_latest(task.abstract_state)
        if state is None:
            state = task.init(jax.random.PRNGKey(self.config.seed))
            return 0, state
        problems = []
        if meta.get("data_position") != start:
            problems.append(f"data_position: checkpoint {meta.get('data_position')!r}, this run {start}")
        # the restored step may be older than the one checked before restoring (a corrupt one was skipped)
        problems += _fingerprint_diff(meta.get("run_fingerprint", {}), _jsonable(task.fingerprint))
        self._refuse_if(start, problems)
        self.log(f"Resumed from checkpoint {start} in {self.ckpt_dir}")
        return start, state

    def _check_fingerprint(self, task: TrainTask, checkpointer: ckpt_lib.Checkpointer) -> None:
        """A workdir written by another model/data/seed is named as such, not reported as unreadable."""
        latest = checkpointer.latest_step()
        meta = checkpointer.read_meta(latest) if latest is not None else None
        if not meta or "run_fingerprint" not in meta:
            return
        self._refuse_if(latest, _fingerprint_diff(meta["run_fingerprint"], _jsonable(task.fingerprint)))

    def _refuse_if(self, step: int, problems: list[str]) -> None:
        if problems:
            raise ResumeMismatchError(
                f"checkpoint {step} in {self.ckpt_dir} was written by a different run; refusing to resume "
                f"(use a new workdir, or ckpt.resume=False to start over):\n  " + "\n  ".join(problems))

    def _save(self, checkpointer, step: int, state: State, task: TrainTask) -> None:
        meta = {"data_position": step, "run_fingerprint": _jsonable(task.fingerprint)}
        checkpointer.save(step, state, meta, force=True)

    # ------------------------------------------------------------------------------ compile
    def _compile(self, task: TrainTask):
        """The jitted step, compiled ahead of time so its memory plan prints before step 1."""
        if task.python_step:
            return task.step, {}
        batch_sh = jax.tree.map(lambda a: a.sharding, task.abstract_batch)
        step = jax.jit(task.step, in_shardings=(task.state_shardings, batch_sh),
                       out_shardings=(task.state_shardings, None), donate_argnums=0)
        compiled = step.lower(task.abstract_state, task.abstract_batch).compile()
        plan = runtime.memory_plan(task.abstract_state, compiled)
        self.log(runtime.format_memory_plan(plan))
        return compiled, plan

    def _global_batch(self, task: TrainTask, step: int) -> dict[str, jax.Array]:
        local = task.batch_at(step)
        if task.python_step:
            return local
        return {k: jax.make_array_from_process_local_data(task.abstract_batch[k].sharding, np.asarray(v))
                for k, v in local.items()}

    # ------------------------------------------------------------------------------ fit
    def fit(self, task: TrainTask) -> tuple[State, dict]:
        """Trains to `config.steps`; returns (final state, summary). Stops early, after saving, on
        SIGTERM (summary["preempted"])."""
        runtime.quiet_library_info_logs()
        cfg = self.config
        checkpointer = ckpt_lib.Checkpointer(self.ckpt_dir, max_to_keep=self.ckpt.keep,
                                             save_interval_steps=max(self.ckpt.every, 1),
                                             async_save=self.ckpt.async_save)
        start, state = self._restore_or_init(task, checkpointer)
        if self.main:  # a resumed run re-logs the steps after its checkpoint: drop the stale records
            self.metrics.truncate_after(start)
        step_fn, plan = self._compile(task)
        writers = _Writers(self.workdir, cfg, enabled=self.main)
        throughput = runtime.Throughput(task.flops_per_step, task.tokens_per_step, cfg.peak_flops)
        bar = _progress(cfg, start, self.main)
        pending: list[tuple[int, float, dict]] = []  # (step, wall time it finished, device metrics)
        last: dict = {}

        def flush() -> dict:
            """One host sync per log interval: every pending step's metrics, stamped when it ran."""
            speed = throughput.read()
            values = jax.device_get([m for _, _, m in pending])
            record = {}
            for i, ((s, t, _), m) in enumerate(zip(pending, values)):
                record = {k: float(v) for k, v in m.items()}
                if i == len(pending) - 1:
                    record.update(speed)
                self.metrics.write(s, time=t, **record)
                writers.write(s, record)
            if bar is not None and record and "loss" in record:
                bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{speed.get('tokens_per_s', 0):.0f}")
            pending.clear()
            return record

        def run_hooks(step: int, final: bool) -> bool:
            """Runs the due hooks; True when one of them asked to stop training."""
            stop = False
            for hook in self.hooks:
                due = (hook.every and step % hook.every == 0) or (final and hook.at_end)
                if due:
                    out = dict(hook.fn(step, state) or {})
                    stop |= bool(out.pop(STOP_TRAINING, False))
                    if out:
                        self.metrics.write(step, **out)
                        writers.write(step, out)
            return stop

        step, preempted, stopped_early = start, False, False
        with runtime.PreemptionGuard() as guard:
            while step < cfg.steps:
                state, metrics = step_fn(state, self._global_batch(task, step))  # donates the old state
                step += 1
                pending.append((step, time.time(), metrics))
                throughput.tick()
                if bar is not None:
                    bar.update(1)
                if cfg.slow_step_s:
                    time.sleep(cfg.slow_step_s)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    last = flush()
                stopped_early = run_hooks(step, final=step == cfg.steps) and step < cfg.steps
                if stopped_early:
                    if pending:
                        last = flush()
                    break
                if self.ckpt.every and step % self.ckpt.every == 0:
                    self._save(checkpointer, step, state, task)
                if guard.should_stop(step, checkpointer):
                    if pending:
                        last = flush()
                    self._save(checkpointer, step, state, task)
                    checkpointer.wait()
                    self.log(f"Preempted: saved checkpoint {step}, exiting")
                    preempted = True
                    break
            checkpointer.wait()  # an async save of this very step may still be finalising
            if step not in checkpointer.all_steps() and not preempted:
                self._save(checkpointer, step, state, task)
            checkpointer.close()
        if bar is not None:
            bar.close()
        writers.close()
        summary = {"start_step": start, "final_step": step, "preempted": preempted, "stopped_early": stopped_early,
                   "last_metrics": last,
                   "memory_plan": plan, "checkpoint_dir": self.ckpt_dir}
        return state, summary


# ---------------------------------------------------------------------------------- helpers
def _jsonable(tree: Any) -> Any:
    """JSON round trip, so a fingerprint compares equal to the one read back from a checkpoint."""
    import json

    return json.loads(json.dumps(experiment.to_jsonable(tree)))


def _progress(cfg: TrainerConfig, start: int, enabled: bool):
    if not enabled or not cfg.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.steps, initial=start, desc="train", dynamic_ncols=True)


class _Writers:
    """Scalar metrics to TensorBoard event files (tensorboardX) under WORKDIR/tb, and to wandb when a
    project is configured and wandb is installed. Process 0 only."""

    def __init__(self, workdir: str, cfg: TrainerConfig, enabled: bool):
        self.tb = self.wandb = None
        if not enabled:
            return
        if cfg.tensorboard:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(os.path.join(workdir, "tb"))
        if cfg.wandb_project:
            try:
                import wandb
            except ImportError:
                print("wandb_project is set but wandb is not installed: logging to metrics.jsonl and tb/ only")
            else:
                self.wandb = wandb.init(project=cfg.wandb_project, dir=workdir, resume="allow")

    def write(self, step: int, record: Mapping[str, Any]) -> None:
        scalars = {k: float(v) for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
