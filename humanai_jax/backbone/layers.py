"""Building blocks of one decoder layer, written to match transformers' numerics (spec 4.4).

Axis letters: B batch, T query length, S key length, D model width, H query heads, K kv heads,
G = H / K, h (Dh) head dim, F MLP width.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.sharding import constrain, gather_weight, is_explicit


def dense(
    x: jax.Array, w: jax.Array, n_in: int = 1, preferred_element_type=None, *, out_axes=None, rules=None
) -> jax.Array:
    """Contracts the last `n_in` axes of x [..., *in] with the leading `n_in` axes of w [*in, *out].

    Returns [..., *out]. Written as one 2-D matmul [rows, prod(in)] @ [prod(in), prod(out)]: XLA:CPU
    runs that (and the two matmuls of its backward pass) markedly faster than the equivalent einsum
    with several free axes (BENCHMARKS.md, training throughput), and on accelerators it is the same dot.

    On an Explicit mesh (`rules`), w's FSDP shards are gathered first and the result is sharded by
    the logical `out_axes` of [..., *out]; the dot is one `dot_general` with that `out_sharding`
    (the 2-D reshapes would need shardings of their own).
    """
    in_shape, out_shape = w.shape[:n_in], w.shape[n_in:]
    if x.shape[x.ndim - n_in:] != in_shape:
        raise ValueError(f"dense: x {x.shape} does not end in w's input axes {in_shape}")
    lead = x.shape[: x.ndim - n_in]
    if is_explicit(rules):
        contract = (tuple(range(x.ndim - n_in, x.ndim)), tuple(range(n_in)))
        sharding = None if out_axes is None else rules.sharding(out_axes, (*lead, *out_shape))
        return jax.lax.dot_general(x, gather_weight(w, rules), (contract, ((), ())),
                                   preferred_element_type=preferred_element_type, out_sharding=sharding)
    y = jnp.matmul(x.reshape(-1, math.prod(in_shape)), w.reshape(math.prod(in_shape), -1),
                   preferred_element_type=preferred_element_type)
    return y.reshape(*lead, *out_shape)


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    """`weight * cast_back(x32 * rsqrt(mean(x32^2) + eps))` over the last axis (HF order of casts)."""
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return weight.astype(x.dtype) * normed.astype(x.dtype)


def rope_cos_sin(positions: jax.Array, config: ModelConfig) -> tuple[jax.Array, jax.Array]:
    """cos, sin [B, T, rotary_dim] from float32 angles, cast to the compute dtype (as HF)."""
    inv_freq = jnp.asarray(config.rope_inv_freq())  # [rotary_dim / 2] f32
    angles = positions.astype(jnp.float32)[..., None] * inv_freq
    angles = jnp.concatenate([angles, angles], axis=-1)
    dtype = config.compute_dtype
    return jnp.cos(angles).astype(dtype), jnp.sin(angles).astype(dtype)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate-half RoPE on the first rotary_dim dims of x [B, T, N, h]; cos/sin [B, T, rotary_dim]."""
    rotary_dim = cos.shape[-1]
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    half = rotary_dim // 2
    rotated = jnp.concatenate([-x_rot[..., half:], x_rot[..., :half]], axis=-1)
    out = x_rot * cos[:, :, None, :] + rotated * sin[:, :, None, :]
    return jnp.concatenate([out, x_pass], axis=-1) if x_pass.shape[-1] else out


def project_qkv(layer: dict[str, Any], x: jax.Array, cos, sin, config: ModelConfig, rules=None):
    """x [B, T, D] -> q [B, T, H, h], k, v [B, T, K, h] with biases, q/k norm and RoPE applied."""
    dtype = config.compute_dtype
    q_axes, kv_axes = ("batch", "seq", "q_heads", "head_dim"), ("batch", "seq", "kv_heads", "head_dim")
    q = dense(x, layer["wq"].astype(dtype), out_axes=q_axes, rules=rules)
    k = dense(x, layer["wk"].astype(dtype), out_axes=kv_axes, rules=rules)
    v = dense(x, layer["wv"].astype(dtype), out_axes=kv_axes, rules=rules)
    if config.qkv_bias:
        q = q + gather_weight(layer["bq"].astype(dtype), rules)
        k = k + gather_weight(layer["bk"].astype(dtype), rules)
        v = v + gather_weight(layer["bv"].astype(dtype), rules)
    if config.qk_norm:  # Qwen3: per-head RMSNorm over h, before RoPE
        q = rms_norm(q, layer["q_norm"], config.rms_eps)
        k = rms_norm(k, layer["k_norm"], config.rms_eps)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    q = constrain(q, q_axes, rules)
    k = constrain(k, kv_axes, rules)
    v = constrain(v, kv_axes, rules)
    return q, k, v


def attend(
    q: jax.Array, k: jax.Array, v: jax.Array, allowed: jax.Array, config: ModelConfig, *, causal_block: int = 0,
    rules=None,
) -> jax.Array:
    """Grouped-query attention.

    q [B, T, H, h]; k, v [B, K, S, h] (kv-head-major, the KV cache's layout); allowed [B, T, S] bool.
    Returns [B, T, H, h]. Query head n uses kv head n // G (contiguous groups). Scores and softmax
    in float32; masked scores are finfo.min (not -inf) so a row with no visible key gives no NaN.

    causal_block > 0 promises that `allowed` is causal with T == S (query t never sees key s > t),
    as in the full forward: queries then run in blocks of that many rows, each against only the keys
    up to its last row, which skips the masked upper triangle (about half the score FLOPs and memory
    traffic at long T) and keeps each block's scores small enough to stay in cache.

    rules on an Explicit mesh: q is first sharded like k's kv heads, so that splitting its H heads
    into (K, G) is well defined (heads replicated when K does not divide the tensor axes).
    """
    B, T, H, h = q.shape
    K = k.shape[1]
    G = H // K
    if is_explicit(rules):
        q = jax.sharding.reshard(q, rules.sharding(("batch", "seq", "kv_heads", "head_dim"), (B, T, K, h)))
    # [B, K, G, T, h]: the kv head and the group lead, so every matmul below is a plain batched
    # matmul over (B, K) with the G query heads of a group stacked on its rows.
    qg = q.reshape(B, T, K, G, h).transpose(0, 2, 3, 1, 4)
    if causal_block and T > causal_block:
        if k.shape[2] != T:
            raise ValueError(f"causal_block needs as many keys as queries, got T={T}, S={k.shape[2]}")
        ends = list(range(causal_block, T, causal_block)) + [T]
        starts = [0] + ends[:-1]
        out = jnp.concatenate(
            [_attend_block(qg[:, :, :, a:e], k[:, :, :e], v[:, :, :e], allowed[:, a:e, :e], config)
             for a, e in zip(starts, ends)],
            axis=3,
        )
    else:
        out = _attend_block(qg, k, v, allowed, config)
    return out.transpose(0, 3, 1, 2, 4).reshape(B, T, H, h)


def fused_causal_attend(q: jax.Array, k: jax.Array, v: jax.Array, config: ModelConfig) -> jax.Array:
    """Plain causal grouped-query attention through `jax.nn.dot_product_attention`.

    q [B, T, H, h]; k, v [B, T, K, h] (sequence-major, before `_kv_head_major`). Returns [B, T, H, h].
    config.attention_impl "cudnn" runs cuDNN's fused flash attention (NVIDIA GPUs, bf16/fp16): the
    [T, T] scores never reach HBM. "jax" runs the same call on XLA, so CPU tests can check that the
    call's conventions (scale, causality, head groups) equal `attend`.
    """
    implementation = "cudnn" if config.attention_impl == "cudnn" else "xla"
    out = jax.nn.dot_product_attention(q, k, v, is_causal=True, scale=config.head_dim**-0.5,
                                       implementation=implementation)
    return out.astype(q.dtype)


def _attend_block(qg: jax.Array, k: jax.Array, v: jax.Array, allowed: jax.Array, config: ModelConfig) -> jax.Array:
    """qg [B, K, G, t, h] against k, v [B, K, s, h] with allowed [B, t, s] -> [B, K, G, t, h]."""
    B, K, G, t, h = qg.shape
    s = k.shape[2]
    scores = jnp.einsum("bkqh,bksh->bkqs", qg.reshape(B, K, G * t, h), k, preferred_element_type=jnp.float32)
    scores = scores.reshape(B, K, G, t, s) * jnp.float32(config.head_dim**-0.5)
    scores = jnp.where(allowed[:, None, None, :, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype).reshape(B, K, G * t, s)
    return jnp.einsum("bkqs,bksh->bkqh", probs, v).reshape(B, K, G, t, h)


def attention_out(layer: dict[str, Any], attn: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """[B, T, H, h] -> [B, T, D] through o_proj (+ bias)."""
    dtype = config.compute_dtype
    out = dense(attn, layer["wo"].astype(dtype), n_in=2, out_axes=("batch", "seq", "act_embed"), rules=rules)
    if config.o_bias:
        out = out + gather_weight(layer["bo"].astype(dtype), rules)
    return out


def mlp(layer: dict[str, Any], x: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """SwiGLU: w_down(silu(w_gate x) * (w_up x)); x [B, T, D] -> [B, T, D]."""
    dtype = config.compute_dtype
    hidden_axes = ("batch", "seq", "mlp")
    gate = dense(x, layer["w_gate"].astype(dtype), out_axes=hidden_axes, rules=rules)
    up = dense(x, layer["w_up"].astype(dtype), out_axes=hidden_axes, rules=rules)
    hidden = constrain(jax.nn.silu(gate) * up, hidden_axes, rules)
    return dense(hidden, layer["w_down"].astype(dtype), out_axes=("batch", "seq", "act_embed"), rules=rules)
