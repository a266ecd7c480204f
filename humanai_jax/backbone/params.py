"""Parameter tree layout: shapes, logical axes and random init, all derived from one table.

The tree is a plain dict (works unchanged with jit, grad, optax, Orbax):

    {"embed": [V, D],
     "layers": {"attn_norm": [L, D], "wq": [L, D, H, Dh], "wk"/"wv": [L, D, K, Dh],
                "wo": [L, H, Dh, D], "mlp_norm": [L, D], "w_gate"/"w_up": [L, D, F],
                "w_down": [L, F, D],
                optional "bq": [L, H, Dh], "bk"/"bv": [L, K, Dh], "bo": [L, D],
                optional "q_norm"/"k_norm": [L, Dh]},
     "final_norm": [D],
     "lm_head": [D, V]            # absent when embeddings are tied
    }
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp

from humanai_jax.backbone.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    """One leaf: its shape, logical axis names and initializer kind ("normal" | "ones" | "zeros")."""

    shape: tuple[int, ...]
    logical_axes: tuple[str, ...]
    init: str


def param_info(config: ModelConfig) -> dict[str, Any]:
    """The parameter tree with a `ParamInfo` at every leaf."""
    c = config
    L, D, H, K, Dh, F, V = c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.mlp_dim, c.vocab_size
    layers = {
        "attn_norm": ParamInfo((L, D), ("layers", "norm"), "ones"),
        "wq": ParamInfo((L, D, H, Dh), ("layers", "embed", "q_heads", "head_dim"), "normal"),
        "wk": ParamInfo((L, D, K, Dh), ("layers", "embed", "kv_heads", "head_dim"), "normal"),
        "wv": ParamInfo((L, D, K, Dh), ("layers", "embed", "kv_heads", "head_dim"), "normal"),
        "wo": ParamInfo((L, H, Dh, D), ("layers", "q_heads", "head_dim", "embed"), "normal"),
        "mlp_norm": ParamInfo((L, D), ("layers", "norm"), "ones"),
        "w_gate": ParamInfo((L, D, F), ("layers", "embed", "mlp"), "normal"),
        "w_up": ParamInfo((L, D, F), ("layers", "embed", "mlp"), "normal"),
        "w_down": ParamInfo((L, F, D), ("layers", "mlp", "embed"), "normal"),
    }
    if c.qkv_bias:
        layers["bq"] = ParamInfo((L, H, Dh), ("layers", "q_heads", "head_dim"), "zeros")
        layers["bk"] = ParamInfo((L, K, Dh), ("layers", "kv_heads", "head_dim"), "zeros")
        layers["bv"] = ParamInfo((L, K, Dh), ("layers", "kv_heads", "head_dim"), "zeros")
    if c.o_bias:
        layers["bo"] = ParamInfo((L, D), ("layers", "embed"), "zeros")
    if c.qk_norm:
        layers["q_norm"] = ParamInfo((L, Dh), ("layers", "head_dim"), "ones")
        layers["k_norm"] = ParamInfo((L, Dh), ("layers", "head_dim"), "ones")
    tree = {
        "embed": ParamInfo((V, D), ("vocab", "embed"), "normal"),
        "layers": layers,
        "final_norm": ParamInfo((D,), ("norm",), "ones"),
    }
    if not c.tie_embeddings:
        tree["lm_head"] = ParamInfo((D, V), ("embed", "vocab"), "normal")
    return tree


def _is_info(x) -> bool:
    return isinstance(x, ParamInfo)


def param_logical_axes(config: ModelConfig) -> dict[str, Any]:
    """Tree of logical-axis tuples matching `init_params(config, rng)`."""
    return jax.tree.map(lambda i: i.logical_axes, param_info(config), is_leaf=_is_info)


def param_shapes(config: ModelConfig) -> dict[str, Any]:
    """Tree of `jax.ShapeDtypeStruct` (param dtype) matching `init_params(config, rng)`."""
    dtype = config.params_dtype
    return jax.tree.map(lambda i: jax.ShapeDtypeStruct(i.shape, dtype), param_info(config), is_leaf=_is_info)


@functools.partial(jax.jit, static_argnames=("config",))
def init_params(config: ModelConfig, rng: jax.Array) -> dict[str, Any]:
    """HF-like random init: normal(0, initializer_range) matrices, ones norms, zero biases.

    Jitted (one compile instead of one per leaf shape when called eagerly). Wrap it to create
    the parameters already sharded (no full copy on one device):
    `jax.jit(functools.partial(init_params, config), out_shardings=shardings)(rng)`.
    """
    infos, treedef = jax.tree.flatten(param_info(config), is_leaf=_is_info)
    keys = jax.random.split(rng, len(infos))
    dtype = config.params_dtype

    def make(info: ParamInfo, key):
        if info.init == "ones":
            return jnp.ones(info.shape, dtype)
        if info.init == "zeros":
            return jnp.zeros(info.shape, dtype)
        return (config.initializer_range * jax.random.normal(key, info.shape, jnp.float32)).astype(dtype)

    return jax.tree.unflatten(treedef, [make(i, k) for i, k in zip(infos, keys)])


def count_params(params_or_shapes: Any) -> int:
    """Number of scalars in a params (or `eval_shape`) tree."""
    return sum(int(x.size) for x in jax.tree.leaves(params_or_shapes))
