"""Pieces of a training run that every trainer shares: multi-host start-up, mesh and rules from a
config, compiling the step ahead of time with a memory plan, metrics logging and SIGTERM handling.
The run itself reads top to bottom in `experiments/lm.py`."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec as P

from humanai_jax import sharding as shd
from humanai_jax.train.state import per_device_bytes

# Environment variables that mean "this process is one of several" for `jax.distributed.initialize`.
_MULTIHOST_ENV = {
    "SLURM_NTASKS": lambda v: int(v) > 1,
    "OMPI_COMM_WORLD_SIZE": lambda v: int(v) > 1,
    "JAX_COORDINATOR_ADDRESS": lambda v: bool(v),
    "TPU_WORKER_HOSTNAMES": lambda v: "," in v,  # a multi-host TPU slice
    "MEGASCALE_COORDINATOR_ADDRESS": lambda v: bool(v),
}


def multihost_env_detected(environ=os.environ) -> str | None:
    """Name of the first environment variable showing a multi-process launch, or None."""
    for key, test in _MULTIHOST_ENV.items():
        value = environ.get(key)
        if value is not None:
            try:
                if test(value):
                    return key
            except ValueError:
                continue
    return None


def maybe_initialize_distributed(mode: str = "auto", environ=os.environ) -> bool:
    """Calls `jax.distributed.initialize()` (auto-detects TPU pods, SLURM, Open MPI, explicit
    `JAX_COORDINATOR_ADDRESS`/`JAX_NUM_PROCESSES`/`JAX_PROCESS_ID`) when `mode` is "on", or "auto"
    and a multi-host launch is detected. Must run before anything touches a JAX device."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"train.distributed must be auto, on or off; got {mode!r}")
    if jax.distributed.is_initialized():  # the runner (experiments/run.py) may have done it already
        return True
    reason = "forced by config" if mode == "on" else multihost_env_detected(environ) if mode == "auto" else None
    if not reason:
        return False
    kwargs = {}
    if environ.get("JAX_COORDINATOR_ADDRESS"):
        kwargs = dict(
            coordinator_address=environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(environ["JAX_NUM_PROCESSES"]),
            process_id=int(environ["JAX_PROCESS_ID"]),
        )
    jax.distributed.initialize(**kwargs)
    logging.info("jax.distributed initialised (%s): process %d of %d", reason, jax.process_index(), jax.process_count())
    return True


class _DropLibraryInfo:
    """A logging filter dropping INFO/DEBUG records logged from Orbax and TensorStore source files
    (dozens of lines per save, which bury the progress bar); their warnings and errors still show."""

    def filter(self, record) -> bool:
        return record.levelno >= 30 or ("/orbax/" not in record.pathname and "/tensorstore/" not in record.pathname)


def quiet_library_info_logs() -> None:
    """Installs `_DropLibraryInfo` on absl's handler (idempotent)."""
    import logging as std_logging

    handler = logging.get_absl_handler()
    if not any(isinstance(f, _DropLibraryInfo) for f in handler.filters):
        handler.addFilter(_DropLibraryInfo())
    std_logging.getLogger("absl").addFilter(_DropLibraryInfo())


def is_main_process() -> bool:
    return jax.process_index() == 0


def mesh_and_rules(config) -> tuple[jax.sharding.Mesh, shd.ShardingRules]:
    """Mesh from `config.mesh` (data/fsdp/tensor sizes, -1 fills; axis_type) and rules from
    `config.rules` (logical axis -> tuple of mesh axes; absent keys take `DEFAULT_RULES`)."""
    m = config.mesh
    mesh = shd.make_mesh({"data": m.data, "fsdp": m.fsdp, "tensor": m.tensor}, axis_type=m.get("axis_type", "auto"))
    table = dict(shd.DEFAULT_RULES)
    for key, value in (config.get("rules") or {}).items():
        table[key] = (value,) if isinstance(value, str) else tuple(value or ())
    return mesh, shd.ShardingRules.create(mesh, table)


def batch_sharding(rules: shd.ShardingRules, ndim: int = 2) -> NamedSharding:
    """Rows over the `batch` rule's mesh axes (default data×fsdp), other dims replicated."""
    axes = rules.mesh_axes("batch")
    axes = tuple(a for a in axes if rules.mesh.shape[a] > 1)
    lead = None if not axes else axes[0] if len(axes) == 1 else axes
    return NamedSharding(rules.mesh, P(lead, *([None] * (ndim - 1))))


def global_batch(local: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """This host's rows -> one global jax.Array per key (`make_array_from_process_local_data`)."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def _gib(n: float) -> str:
    return f"{n / 2**30:.3f} GiB"


def memory_plan(abstract_state: dict[str, Any], compiled=None) -> dict[str, float]:
    """Per-device memory of a run in bytes: params and optimizer state from their shardings, and
    (if given a compiled step) XLA's own numbers: arguments, outputs, temporaries (activations and
    workspace), generated code; plus the compiled step's FLOPs from `cost_analysis`."""
    if isinstance(abstract_state, dict) and {"params", "opt_state"} <= set(abstract_state):
        plan = {
            "params_bytes_per_device": per_device_bytes(abstract_state["params"]),
            "opt_state_bytes_per_device": per_device_bytes(abstract_state["opt_state"]),
        }
    else:  # another state layout (several models in RL, a toy task): its total
        plan = {"state_bytes_per_device": per_device_bytes(abstract_state)}
    if compiled is not None:
        mem = compiled.memory_analysis()
        if mem is not None:
            for field in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
                          "alias_size_in_bytes", "generated_code_size_in_bytes"):
                plan[field.replace("_size_in_bytes", "_bytes")] = int(getattr(mem, field, 0) or 0)
            plan["peak_estimate_bytes"] = plan["argument_bytes"] + plan["output_bytes"] - plan["alias_bytes"] + plan["temp_bytes"]
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        if cost and "flops" in cost:
            plan["compiled_flops_per_step_per_device"] = float(cost["flops"])
    return plan


def format_memory_plan(plan: dict[str, float]) -> str:
    lines = ["Memory plan per device:"]
    for key, value in plan.items():
        shown = _gib(value) if key.endswith(("bytes", "bytes_per_device")) else f"{value:.4g}"
        lines.append(f"  {key:<40s} {shown}")
    return "\n".join(lines)


class PreemptionGuard:
    """Turns SIGTERM (what schedulers and TPU maintenance send before killing) into a flag the
    loop checks after each step, so it can save a checkpoint and exit cleanly."""

    def __init__(self):
        self.requested = threading.Event()
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        logging.warning("SIGTERM received: will save a checkpoint after the current step and exit")
        self.requested.set()

    def should_stop(self, step: int, checkpointer=None) -> bool:
        """True once SIGTERM arrived here, or (multi-host) when JAX's preemption sync point says so."""
        if self.requested.is_set():
            return True
        if checkpointer is not None and jax.process_count() > 1:
            return bool(checkpointer.manager.reached_preemption(step))
        return False

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False


class Throughput:
    """Wall-clock tokens/s and MFU over a logging interval (host time between metric reads)."""

    def __init__(self, step_flops: float, tokens_per_step: int, peak_flops: float | None):
        self.step_flops, self.tokens_per_step, self.peak = step_flops, tokens_per_step, peak_flops
        self.start, self.steps = time.perf_counter(), 0

    def tick(self, n: int = 1):
        self.steps += n

    def read(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        out = {"step_time_s": elapsed / max(self.steps, 1), "tokens_per_s": self.tokens_per_step * self.steps / elapsed}
        if self.peak:
            out["mfu"] = self.step_flops * self.steps / (elapsed * self.peak)
        self.start, self.steps = time.perf_counter(), 0
        return out
