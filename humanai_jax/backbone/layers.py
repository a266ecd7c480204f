"""Building blocks of one decoder layer, written to match transformers' numerics (spec 4.4).

Axis letters: B batch, T query length, S key length, D model width, H query heads, K kv heads,
G = H / K, h (Dh) head dim, F MLP width.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.sharding import constrain


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
    q = jnp.einsum("btd,dnh->btnh", x, layer["wq"].astype(dtype))
    k = jnp.einsum("btd,dkh->btkh", x, layer["wk"].astype(dtype))
    v = jnp.einsum("btd,dkh->btkh", x, layer["wv"].astype(dtype))
    if config.qkv_bias:
        q = q + layer["bq"].astype(dtype)
        k = k + layer["bk"].astype(dtype)
        v = v + layer["bv"].astype(dtype)
    if config.qk_norm:  # Qwen3: per-head RMSNorm over h, before RoPE
        q = rms_norm(q, layer["q_norm"], config.rms_eps)
        k = rms_norm(k, layer["k_norm"], config.rms_eps)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    q = constrain(q, ("batch", "seq", "q_heads", "head_dim"), rules)
    k = constrain(k, ("batch", "seq", "kv_heads", "head_dim"), rules)
    v = constrain(v, ("batch", "seq", "kv_heads", "head_dim"), rules)
    return q, k, v


def attend(q: jax.Array, k: jax.Array, v: jax.Array, allowed: jax.Array, config: ModelConfig) -> jax.Array:
    """Grouped-query attention.

    q [B, T, H, h]; k, v [B, S, K, h]; allowed [B, T, S] bool. Returns [B, T, H, h].
    Query head n uses kv head n // G (contiguous groups). Scores and softmax in float32; masked
    scores are finfo.min (not -inf) so a row with no visible key gives no NaN.
    """
    B, T, H, h = q.shape
    K = k.shape[2]
    qg = q.reshape(B, T, K, H // K, h)
    scores = jnp.einsum("btkgh,bskh->bkgts", qg, k, preferred_element_type=jnp.float32)
    scores = scores * jnp.float32(config.head_dim**-0.5)
    scores = jnp.where(allowed[:, None, None, :, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgts,bskh->btkgh", probs, v)
    return out.reshape(B, T, H, h)


def attention_out(layer: dict[str, Any], attn: jax.Array, config: ModelConfig) -> jax.Array:
    """[B, T, H, h] -> [B, T, D] through o_proj (+ bias)."""
    dtype = config.compute_dtype
    out = jnp.einsum("btnh,nhd->btd", attn, layer["wo"].astype(dtype))
    if config.o_bias:
        out = out + layer["bo"].astype(dtype)
    return out


def mlp(layer: dict[str, Any], x: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """SwiGLU: w_down(silu(w_gate x) * (w_up x)); x [B, T, D] -> [B, T, D]."""
    dtype = config.compute_dtype
    gate = jnp.einsum("btd,df->btf", x, layer["w_gate"].astype(dtype))
    up = jnp.einsum("btd,df->btf", x, layer["w_up"].astype(dtype))
    hidden = constrain(jax.nn.silu(gate) * up, ("batch", "seq", "mlp"), rules)
    return jnp.einsum("btf,fd->btd", hidden, layer["w_down"].astype(dtype))
