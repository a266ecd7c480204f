"""The train state pytree and its shardings.

    TrainState = {"step": int32[], "params": <params tree>, "opt_state": <optax state>, "rng": uint32[2]}

A plain dict, so Orbax, `jax.tree` and `jit` handle it unchanged. `step` counts completed optimizer
updates; the batch a step consumes is a function of `step` only (see `humanai_jax.data.batches`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from humanai_jax.sharding import ShardingRules, tree_shardings


def new_train_state(params: Any, tx: optax.GradientTransformation, rng: jax.Array) -> dict[str, Any]:
    """{step: 0, params, opt_state: tx.init(params), rng}. Call inside jit for sharded creation."""
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params), "rng": rng}


def _path_str(path) -> str:
    return jax.tree_util.keystr(path)


def opt_state_shardings(abstract_opt_state: Any, params_abstract: Any, params_shardings: Any, mesh) -> Any:
    """Shardings for an optimizer state: a leaf whose key path ends with a parameter's key path and
    has that parameter's shape (Adam's mu/nu, momentum) takes the parameter's sharding; anything else
    (counts, scalars) is replicated. Derived without running `tx.init`, so it also works abstractly."""
    by_path = {}
    for (path, a), s in zip(
        jax.tree_util.tree_flatten_with_path(params_abstract)[0], jax.tree.leaves(params_shardings)
    ):
        by_path[_path_str(path)] = (tuple(a.shape), s)
    replicated = NamedSharding(mesh, P())

    def pick(path, leaf):
        text = _path_str(path)
        for ppath, (shape, sharding) in by_path.items():
            if text.endswith(ppath) and tuple(leaf.shape) == shape:
                return sharding
        return replicated

    return jax.tree_util.tree_map_with_path(pick, abstract_opt_state)


def train_state_shardings(
    init_params_fn: Callable[[jax.Array], Any],
    param_logical_axes: Any,
    tx: optax.GradientTransformation,
    rules: ShardingRules,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(abstract TrainState with shardings attached, TrainState shardings), with no allocation.

    `init_params_fn(rng) -> params`; `param_logical_axes` is the matching tree of logical-axis tuples.
    """
    mesh = rules.mesh
    rng = jax.ShapeDtypeStruct((2,), jnp.uint32)
    abstract = jax.eval_shape(lambda r: new_train_state(init_params_fn(r), tx, r), rng)
    params_sh = tree_shardings(rules, param_logical_axes, abstract["params"])
    replicated = NamedSharding(mesh, P())
    shardings = {
        "step": replicated,
        "params": params_sh,
        "opt_state": opt_state_shardings(abstract["opt_state"], abstract["params"], params_sh, mesh),
        "rng": replicated,
    }
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    return abstract, shardings


def per_device_bytes(abstract_tree: Any) -> int:
    """Bytes one device holds for a tree of sharded ShapeDtypeStructs (or arrays): sum of shard sizes."""
    total = 0
    for leaf in jax.tree.leaves(abstract_tree):
        sharding = getattr(leaf, "sharding", None)
        shape = sharding.shard_shape(leaf.shape) if sharding is not None else leaf.shape
        n = 1
        for d in shape:
            n *= d
        total += n * jnp.dtype(leaf.dtype).itemsize
    return total
