"""Orbax checkpoints of the train state (orbax-checkpoint V0 API), behind one small class.

    ckpt = Checkpointer(dir, max_to_keep=3, save_interval_steps=100)
    ckpt.save(step, state, meta)                  # async; returns once arrays are copied to host
    step, state, meta = ckpt.restore_latest(abstract_state)   # or (None, None, None)
    ckpt.wait(); ckpt.close()

Each checkpoint `dir/<step>/` holds two items: `state` (StandardSave of the TrainState pytree
{step, params, opt_state, rng}) and `meta` (JSON: data position, config, git hash, the step).

Safety rules:
- Orbax writes to a temporary directory and renames it when the save is complete, so a save cut off
  by a crash is never listed as a step. `_check_complete` additionally requires both items and
  the commit marker before restoring.
- Orbax does not notice every corruption (a flipped byte in a data file restores silently as wrong
  numbers), so `save` also stores a content fingerprint of every leaf in `meta` (a position-weighted
  wrapping uint32 sum of the raw bits: exact, independent of sharding, changed by any single bit
  flip) and `restore` recomputes and compares it.
- A checkpoint that fails to restore (missing or corrupt files, a meta/step mismatch) is never used
  silently: `restore_latest` logs an error naming it and falls back to the next older readable
  checkpoint. If checkpoints exist but none is readable it raises, so a run never restarts from
  step 0 over them without a person deciding to.
- `abstract_state` is a tree of `jax.ShapeDtypeStruct(shape, dtype, sharding=...)`; restoring onto a
  different mesh or sharding than the one saved works (Orbax reshards).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

STATE, META = "state", "meta"


class CheckpointError(RuntimeError):
    """Raised when checkpoints exist but none can be restored."""


class Checkpointer:
    """A `ocp.CheckpointManager` over `{state, meta}` items with fall-back-on-corruption restore."""

    def __init__(
        self,
        directory: str,
        *,
        max_to_keep: int | None = 3,
        save_interval_steps: int = 1,
        async_save: bool = True,
        fingerprint: bool = True,
    ):
        self.fingerprint = fingerprint
        # Local paths are made absolute; remote ones (gs://bucket/run, shared by all hosts) pass through.
        self.directory = directory if "://" in str(directory) else os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            save_interval_steps=save_interval_steps,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=(STATE, META))

    # ---------------------------------------------------------------- saving
    def should_save(self, step: int) -> bool:
        return self.manager.should_save(step)

    def save(self, step: int, state: Any, meta: dict | None = None, *, force: bool = False) -> bool:
        """Saves `state` (and JSON `meta`) as checkpoint `step` if the interval policy says so, or
        always with `force=True`. Async: returns after the device->host copy, so the caller may donate
        `state` to the next step straight away. Returns whether a save was started."""
        meta = dict(meta or {}, step=int(step))
        if self.fingerprint:
            meta["fingerprint"] = state_fingerprint(state)
        return self.manager.save(
            int(step),
            args=ocp.args.Composite(**{STATE: ocp.args.StandardSave(state), META: ocp.args.JsonSave(meta)}),
            force=force,
        )

    def wait(self) -> None:
        """Blocks until pending async saves are committed to disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

    # ---------------------------------------------------------------- reading
    def all_steps(self) -> list[int]:
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def read_meta(self, step: int) -> dict | None:
        """The JSON meta of checkpoint `step` without touching its arrays (None if absent/unreadable):
        lets a caller compare what wrote the checkpoint before restoring onto possibly other shapes."""
        import json

        path = epath.Path(self.directory) / str(step) / META / "metadata"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def _check_complete(self, step: int) -> None:
        step_dir = epath.Path(self.directory) / str(step)
        for item in (STATE, META):
            if not (step_dir / item).is_dir():
                raise CheckpointError(f"checkpoint {step_dir} is incomplete: item {item!r} is missing")

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """Restores checkpoint `step` onto the shapes/dtypes/shardings of `abstract_state`.

        Raises `CheckpointError` if the checkpoint is incomplete, unreadable, or its contents do not
        match `abstract_state` (tree structure, shapes, dtypes) or its own step number.
        """
        self.wait()
        self._check_complete(step)
        try:
            restored = self.manager.restore(
                int(step),
                args=ocp.args.Composite(
                    **{STATE: ocp.args.StandardRestore(abstract_state), META: ocp.args.JsonRestore()}
                ),
            )
        except Exception as e:  # Orbax/tensorstore raise many types for unreadable files.
            raise CheckpointError(f"checkpoint {step} in {self.directory} is unreadable: {type(e).__name__}: {e}") from e
        state, meta = restored[STATE], dict(restored[META] or {})
        _check_matches(state, abstract_state, step)
        if meta.get("step") != step:
            raise CheckpointError(f"checkpoint {step}: meta says step {meta.get('step')!r}")
        if "fingerprint" in meta:
            found = state_fingerprint(state)
            bad = [k for k in meta["fingerprint"] if found.get(k) != meta["fingerprint"][k]]
            if bad or set(found) != set(meta["fingerprint"]):
                raise CheckpointError(f"checkpoint {step}: content fingerprint mismatch (corrupt data) in {bad[:5]}")
        else:
            logging.warning("checkpoint %d has no content fingerprint; trusting Orbax's own checks", step)
        if isinstance(state, dict) and "step" in state and int(np.asarray(state["step"])) != step:
            raise CheckpointError(f"checkpoint {step}: state.step is {int(np.asarray(state['step']))}")
        return state, meta

    def restore_latest(self, abstract_state: Any) -> tuple[int | None, Any, dict | None]:
        """Restores the newest *readable* checkpoint: `(step, state, meta)`, or `(None, None, None)`
        when there are no checkpoints. Unreadable newer ones are skipped with a loud error log."""
        steps = self.all_steps()
        failures, failed_steps = [], []
        for step in reversed(steps):
            try:
                state, meta = self.restore(step, abstract_state)
            except CheckpointError as e:
                logging.error("SKIPPING UNREADABLE CHECKPOINT %d: %s", step, e)
                print(f"WARNING: skipping unreadable checkpoint {step}: {e}", flush=True)
                failures.append(f"{step}: {e}")
                failed_steps.append(step)
                continue
            if failures:
                logging.error("Restored checkpoint %d after skipping unreadable newer ones: %s", step, failures)
                self._move_aside(failed_steps)
            return step, state, meta
        if failures:
            raise CheckpointError(
                f"All {len(steps)} checkpoints in {self.directory} are unreadable; refusing to start from step 0 "
                "over them (move them away to start afresh):\n  " + "\n  ".join(failures)
            )
        return None, None, None


    def _move_aside(self, steps) -> None:
        """Moves skipped unreadable checkpoints to DIR_corrupt/<step> (kept for inspection): left in
        place, the run would later try to save the same step number over them and fail."""
        if jax.process_index() != 0 or "://" in self.directory:
            return
        aside = self.directory.rstrip("/") + "_corrupt"
        os.makedirs(aside, exist_ok=True)
        for step in steps:
            target = os.path.join(aside, f"{step}_{int(time.time())}")
            os.replace(os.path.join(self.directory, str(step)), target)
            print(f"WARNING: moved unreadable checkpoint {step} to {target}", flush=True)
        self.manager.reload()


def _check_matches(state: Any, abstract_state: Any, step: int) -> None:
    """Restored leaves must have the structure, shapes and dtypes that were asked for."""
    got, want = jax.tree.structure(state), jax.tree.structure(abstract_state)
    if got != want:
        raise CheckpointError(f"checkpoint {step}: tree structure {got} != expected {want}")
    for path, x, a in zip(
        (jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(abstract_state)[0]),
        jax.tree.leaves(state),
        jax.tree.leaves(abstract_state),
    ):
        if tuple(x.shape) != tuple(a.shape) or x.dtype != a.dtype:
            raise CheckpointError(f"checkpoint {step}: {path} is {x.dtype}{list(x.shape)}, expected {a.dtype}{list(a.shape)}")


def _leaf_fingerprint(x: jax.Array) -> jax.Array:
    """Wrapping uint32 sum of bits(x[i]) * odd_weight(i). Integer addition is associative, so the value
    does not depend on how the array is sharded; any single flipped bit changes it (2^k * odd != 0)."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        bits = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{x.dtype.itemsize * 8}"))
    else:
        bits = x
    bits = bits.astype(jnp.uint32)
    index = jnp.zeros(x.shape, jnp.uint32)
    stride = 1
    for dim in reversed(range(x.ndim)):  # flat index from broadcasted iotas: no reshape, no resharding
        index = index + jax.lax.broadcasted_iota(jnp.uint32, x.shape, dim) * jnp.uint32(stride % 2**32)
        stride *= x.shape[dim]
    weight = index * jnp.uint32(2 * 0x9E3779B1 % 2**32) + jnp.uint32(1)
    return jnp.sum(bits * weight, dtype=jnp.uint32)


@jax.jit
def _tree_fingerprint(tree):
    return jax.tree.map(_leaf_fingerprint, tree)


def state_fingerprint(state: Any) -> dict[str, int]:
    """{leaf path: uint32 fingerprint} of a pytree of arrays (see `_leaf_fingerprint`)."""
    values = jax.device_get(_tree_fingerprint(state))
    flat, _ = jax.tree_util.tree_flatten_with_path(values)
    return {jax.tree_util.keystr(path): int(v) for path, v in flat}


def abstract_like(tree: Any) -> Any:
    """ShapeDtypeStructs (with shardings) of a concrete tree: the target for `restore`."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), tree)
