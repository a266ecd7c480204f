"""The decoder: full-sequence forward (training, scoring) and cached forward (decoding).

Block (pre-norm): x += attn(rms_norm(x)); x += mlp(rms_norm(x)), written once in `decoder_block`;
both forwards call it and differ only in the attention they pass in (masked or fused attention over
the sequence; KV-cache write + attention over the cache). In the full forward the layers are
stacked on a leading axis and run with `lax.scan` (or a Python loop when `config.scan_layers` is
False), each wrapped in `jax.checkpoint` when `config.remat` asks for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from humanai_jax.backbone import layers as L
from humanai_jax.backbone.config import ModelConfig
from humanai_jax.sharding import constrain, gather_weight, is_explicit

_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


# ------------------------------------------------------------------------------------ layer stack
def _run_layers(body: Callable, carry: Any, xs: Any, config: ModelConfig):
    """Applies `body(carry, layer_slice) -> (carry, y)` over the leading (layer) axis of xs.

    Returns (carry, ys) with ys stacked on a leading layer axis (like `lax.scan`).
    """
    if config.remat != "none":
        body = jax.checkpoint(body, policy=_REMAT_POLICIES[config.remat])
    if config.scan_layers:
        return jax.lax.scan(body, carry, xs)
    ys = []
    for i in range(config.n_layers):
        carry, y = body(carry, jax.tree.map(lambda a, i=i: a[i], xs))
        ys.append(y)
    return carry, jax.tree.map(lambda *a: jnp.stack(a), *ys) if ys and ys[0] is not None else None


def _check_shapes(tokens, **arrays) -> None:
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [batch, seq], got shape {tokens.shape}")
    for name, a in arrays.items():
        if a is not None and tuple(a.shape) != tuple(tokens.shape):
            raise ValueError(f"{name} must have the tokens' shape {tuple(tokens.shape)}, got {tuple(a.shape)}")


def _embed(params, tokens: jax.Array, config: ModelConfig, rules) -> jax.Array:
    # mode="clip": an out-of-range id (e.g. a -1 pad) must not become a NaN row, which would
    # leak into real tokens through 0 * NaN in the attention of masked keys.
    axes = ("batch", "seq", "act_embed")
    if is_explicit(rules):  # a gather's output sharding must be named; the table's FSDP shards gathered
        table = gather_weight(params["embed"], rules)
        sharding = rules.sharding(axes, (*tokens.shape, table.shape[1]))
        x = table.at[tokens].get(mode="clip", out_sharding=sharding).astype(config.compute_dtype)
    else:
        x = jnp.take(params["embed"], tokens, axis=0, mode="clip").astype(config.compute_dtype)
    return constrain(x, axes, rules)


def _kv_head_major(x: jax.Array) -> jax.Array:
    """[B, T, K, h] -> [B, K, T, h], the layout `layers.attend` and the KV cache use."""
    return x.transpose(0, 2, 1, 3)


def decoder_block(layer, x: jax.Array, cos: jax.Array, sin: jax.Array, config: ModelConfig, attention: Callable,
                  rules=None):
    """One pre-norm decoder layer, the body shared by `hidden_states` and `forward_cached`.

    x += attn(rms_norm(x)); x += mlp(rms_norm(x)) (docs/backbone.md). The two paths differ only in
    how attention reads keys and values, so that part is passed in:
    `attention(q [B, T, H, h], k [B, T, K, h], v [B, T, K, h]) -> (out [B, T, H, h], aux)`, with q and
    k already rotated (RoPE at `cos`, `sin` [B, T, rotary_dim]); the full forward attends over k, v
    themselves, the cached forward first writes them into its KV-cache buffers and returns the
    updated buffers as `aux`.

    Args:
      layer: one layer's params (a slice of the stacked `params["layers"]`).
      x: [B, T, D] residual stream in the compute dtype.
    Returns:
      (x [B, T, D], aux).
    """
    h = L.rms_norm(x, layer["attn_norm"], config.rms_eps)
    q, k, v = L.project_qkv(layer, h, cos, sin, config, rules)
    attn, aux = attention(q, k, v)
    x = x + L.attention_out(layer, attn, config, rules)
    x = constrain(x, ("batch", "seq", "act_embed"), rules)
    x = x + L.mlp(layer, L.rms_norm(x, layer["mlp_norm"], config.rms_eps), config, rules)
    return constrain(x, ("batch", "seq", "act_embed"), rules), aux


# ------------------------------------------------------------------------------------ positions/masks
def default_positions(
    batch: int, seq: int, *, segment_ids: jax.Array | None = None, attention_mask: jax.Array | None = None
) -> jax.Array:
    """Position ids [B, T] int32.

    Counts real tokens (attention_mask, default all ones) from 0, restarting at each new segment:
    left padding gives `cumsum(mask) - 1` with pads clipped to 0 (as HF `generate`); packed rows
    give 0, 1, 2, ... per segment.
    """
    real = jnp.ones((batch, seq), jnp.int32) if attention_mask is None else attention_mask.astype(jnp.int32)
    count = jnp.cumsum(real, axis=1)
    if segment_ids is not None:
        # ones_like, not ones: on an Explicit mesh both concatenated parts must share the rows' sharding
        starts = jnp.concatenate(
            [jnp.ones_like(segment_ids[:, :1], bool), segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1
        )
        # Real tokens seen before the current segment began; nondecreasing, so cummax propagates it.
        before = jax.lax.cummax(jnp.where(starts, count - real, 0), axis=1)
        count = count - before
    return jnp.maximum(count - 1, 0).astype(jnp.int32)


def full_attention_mask(
    batch: int,
    seq: int,
    config: ModelConfig,
    *,
    segment_ids: jax.Array | None = None,
    attention_mask: jax.Array | None = None,
    windowed: bool | None = None,
) -> jax.Array:
    """allowed [B, T, T] bool: causal, same segment, real key, and (sliding window) 0 <= q - k < W.

    The window is measured in slots, as transformers does (equal to positions within a segment).
    windowed: apply the window (default: when every layer of the config is a sliding layer).
    """
    q = jnp.arange(seq)[:, None]
    k = jnp.arange(seq)[None, :]
    allowed = k <= q
    if windowed is None:
        flags = config.sliding_layers()
        windowed = flags is not None and bool(flags.all())
    if windowed:
        allowed &= (q - k) < config.sliding_window
    allowed = jnp.broadcast_to(allowed, (batch, seq, seq))
    if segment_ids is not None:
        allowed &= segment_ids[:, :, None] == segment_ids[:, None, :]
    if attention_mask is not None:
        allowed &= attention_mask.astype(bool)[:, None, :]
    return allowed


def _layer_masks(config: ModelConfig, full: jax.Array, windowed: jax.Array | None):
    """(per-layer scan input, pick(xs_flag) -> allowed): one mask for all layers, or a choice
    between the full and the windowed mask when only some layers slide (Qwen `layer_types`)."""
    flags = config.sliding_layers()
    if flags is None:
        return jnp.zeros(config.n_layers, bool), lambda flag: full
    if flags.all():
        return jnp.ones(config.n_layers, bool), lambda flag: windowed
    return jnp.asarray(flags), lambda flag: jnp.where(flag, windowed, full)


# ------------------------------------------------------------------------------------ full forward
def hidden_states(
    params,
    tokens: jax.Array,
    config: ModelConfig,
    *,
    positions: jax.Array | None = None,
    segment_ids: jax.Array | None = None,
    attention_mask: jax.Array | None = None,
    rules=None,
) -> jax.Array:
    """tokens [B, T] int -> post-final-norm hidden [B, T, D] (compute dtype; HF's last hidden state).

    segment_ids [B, T]: packed sequences; attention never crosses segments and, when positions is
    None, positions restart per segment. attention_mask [B, T] (1 = real token; left padding OK).
    rules: a `humanai_jax.sharding.ShardingRules` adding sharding hints on activations, or None.
    """
    _check_shapes(tokens, positions=positions, segment_ids=segment_ids, attention_mask=attention_mask)
    B, T = tokens.shape
    if positions is None:
        positions = default_positions(B, T, segment_ids=segment_ids, attention_mask=attention_mask)
    kw = dict(segment_ids=segment_ids, attention_mask=attention_mask)
    full = full_attention_mask(B, T, config, windowed=False, **kw)
    windowed = full_attention_mask(B, T, config, windowed=True, **kw) if config.sliding_window else None
    flags, pick_mask = _layer_masks(config, full, windowed)
    cos, sin = L.rope_cos_sin(positions, config)
    # A fused kernel takes plain causality only; packing, padding and windows keep our masked path.
    fused = (config.attention_impl != "xla" and segment_ids is None and attention_mask is None
             and config.sliding_window is None and not is_explicit(rules))

    def body(x, xs):
        layer, flag = xs

        def attention(q, k, v):
            if fused:
                return L.fused_causal_attend(q, k, v, config), None
            k, v = _kv_head_major(k), _kv_head_major(v)
            attn = L.attend(q, k, v, pick_mask(flag), config, causal_block=config.attention_block, rules=rules)
            return attn, None

        return decoder_block(layer, x, cos, sin, config, attention, rules)

    x, _ = _run_layers(body, _embed(params, tokens, config, rules), (params["layers"], flags), config)
    return L.rms_norm(x, params["final_norm"], config.rms_eps)


def logits_from_hidden(params, hidden: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """hidden [..., D] -> logits [..., V] float32 (tied: hidden @ embed.T; else hidden @ lm_head)."""
    dtype = config.compute_dtype
    hidden = hidden.astype(dtype)
    head = params["embed"].T if config.tie_embeddings else params["lm_head"]  # [D, V]
    lead_axes = {0: (), 1: ("batch",), 2: ("batch", "seq")}.get(hidden.ndim - 1)  # axes before D
    out_axes = None if lead_axes is None else (*lead_axes, "vocab")
    logits = L.dense(hidden, head.astype(dtype), preferred_element_type=jnp.float32, out_axes=out_axes, rules=rules)
    if logits.ndim == 3:
        logits = constrain(logits, ("batch", "seq", "vocab"), rules)
    return logits.astype(jnp.float32)


def forward(
    params,
    tokens: jax.Array,
    config: ModelConfig,
    *,
    positions: jax.Array | None = None,
    segment_ids: jax.Array | None = None,
    attention_mask: jax.Array | None = None,
    return_hidden: bool = False,
    rules=None,
):
    """tokens [B, T] -> logits [B, T, V] float32, or (logits, hidden [B, T, D]) with return_hidden."""
    hidden = hidden_states(
        params, tokens, config, positions=positions, segment_ids=segment_ids,
        attention_mask=attention_mask, rules=rules,
    )
    logits = logits_from_hidden(params, hidden, config, rules)
    return (logits, hidden) if return_hidden else logits


# ------------------------------------------------------------------------------------ KV cache
@jax.tree_util.register_dataclass
@dataclasses.dataclass
class KVCache:
    """Decoding cache, one slot per token; all rows share the write index (left-padded prompts).

    k, v:  tuples of L arrays [B, K, S_max, h] in the compute dtype: one buffer per layer
           (kv-head-major, each head's keys contiguous), so a decode step writes its new slot into
           each in place and attention reads it directly; a stacked [L, ...] buffer would be sliced,
           i.e. copied, per layer and step on XLA:CPU.
    mask:  [B, S_max] bool, the slot holds a real token.
    pos:   [B, S_max] int32, the position id of the token in each slot.
    index: int32 scalar, the next slot to write.
    """

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
    mask: jax.Array
    pos: jax.Array
    index: jax.Array

    @property
    def max_len(self) -> int:
        return self.mask.shape[1]


def init_cache(config: ModelConfig, batch: int, max_len: int, dtype=None) -> KVCache:
    """An empty cache (mask False, index 0) for `batch` rows of up to `max_len` tokens."""
    dtype = config.compute_dtype if dtype is None else jnp.dtype(dtype)
    shape = (batch, config.n_kv_heads, max_len, config.head_dim)
    return KVCache(
        k=tuple(jnp.zeros(shape, dtype) for _ in range(config.n_layers)),
        v=tuple(jnp.zeros(shape, dtype) for _ in range(config.n_layers)),
        mask=jnp.zeros((batch, max_len), bool),
        pos=jnp.zeros((batch, max_len), jnp.int32),
        index=jnp.zeros((), jnp.int32),
    )


CACHE_KV_AXES = ("cache_batch", "kv_heads", "cache_seq", "head_dim")


def cache_logical_axes(config: ModelConfig) -> KVCache:
    """Logical axis names for each KVCache leaf (for `humanai_jax.sharding.tree_shardings`)."""
    kv = (CACHE_KV_AXES,) * config.n_layers
    return KVCache(k=kv, v=kv, mask=("cache_batch", "cache_seq"), pos=("cache_batch", "cache_seq"), index=())


def _write_slots(buf: jax.Array, update: jax.Array, start: tuple, rules) -> jax.Array:
    """`dynamic_update_slice(buf, update, start)`; on an Explicit mesh the update first takes buf's
    sharding, which the op requires of its two operands."""
    if is_explicit(rules):
        update = jax.sharding.reshard(update, jax.typeof(buf).sharding)
    return jax.lax.dynamic_update_slice(buf, update, start)


def unstack_layers(params):
    """params with `layers` as a tuple of L per-layer dicts instead of one dict of [L, ...] arrays.

    `forward_cached` accepts either; decoding loops call this once, outside the loop, because
    XLA:CPU copies a layer's slice of a stacked weight on every use (per layer, per token). The
    price is one extra copy of the layer weights while the unstacked tree lives.
    """
    layers = params["layers"]
    if isinstance(layers, (tuple, list)):
        return params
    n = jax.tree.leaves(layers)[0].shape[0]
    return {**params, "layers": tuple(jax.tree.map(lambda a, i=i: a[i], layers) for i in range(n))}


def forward_cached(
    params,
    tokens: jax.Array,
    config: ModelConfig,
    cache: KVCache,
    *,
    positions: jax.Array,
    token_mask: jax.Array | None = None,
    rules=None,
):
    """Runs T new tokens [B, T] against the cache; returns (logits [B,T,V] f32, hidden [B,T,D], cache).

    Writes the new K/V at slots index .. index+T-1 (the caller keeps index + T <= S_max:
    `dynamic_update_slice` clamps out-of-range writes). Query t of row b sees slot s iff
    mask[b, s] and s <= index + t, and (in sliding-window layers) pos_q - pos[b, s] < W.
    Works under jit for a prefill bucket (T = prompt length) and decode steps (T = 1). The layers
    run as an unrolled Python loop (each has its own cache buffers); params may hold stacked or
    unstacked (`unstack_layers`) layers.
    """
    _check_shapes(tokens, positions=positions, token_mask=token_mask)
    B, T = tokens.shape
    S = cache.max_len
    if T > S or cache.mask.shape[0] != B or len(cache.k) != config.n_layers:
        raise ValueError(
            f"tokens {tokens.shape} do not fit a cache of batch {cache.mask.shape[0]}, {S} slots and "
            f"{len(cache.k)} layers (the model has {config.n_layers})"
        )
    index = cache.index.astype(jnp.int32)
    token_mask = jnp.ones((B, T), bool) if token_mask is None else token_mask.astype(bool)
    positions = positions.astype(jnp.int32)
    mask = _write_slots(cache.mask, token_mask, (0, index), rules)
    pos = _write_slots(cache.pos, positions, (0, index), rules)

    query_slot = index + jnp.arange(T)
    full = mask[:, None, :] & (jnp.arange(S)[None, None, :] <= query_slot[None, :, None])
    flags = config.sliding_layers()  # None when no layer slides
    windowed = None
    if flags is not None:
        windowed = full & ((positions[:, :, None] - pos[:, None, :]) < config.sliding_window)
    cos, sin = L.rope_cos_sin(positions, config)
    dtype = config.compute_dtype

    x = _embed(params, tokens, config, rules)
    new_k, new_v = [], []
    for i, layer in enumerate(unstack_layers(params)["layers"]):
        allowed = windowed if flags is not None and flags[i] else full

        def attention(q, k, v, i=i, allowed=allowed):
            # Write the T new slots in place (the cache buffers are donated by the decoding loop).
            k_i = _write_slots(cache.k[i], _kv_head_major(k).astype(cache.k[i].dtype), (0, 0, index, 0), rules)
            v_i = _write_slots(cache.v[i], _kv_head_major(v).astype(cache.v[i].dtype), (0, 0, index, 0), rules)
            k_i, v_i = constrain(k_i, CACHE_KV_AXES, rules), constrain(v_i, CACHE_KV_AXES, rules)
            return L.attend(q, k_i.astype(dtype), v_i.astype(dtype), allowed, config, rules=rules), (k_i, v_i)

        x, (k_i, v_i) = decoder_block(layer, x, cos, sin, config, attention, rules)
        new_k.append(k_i)
        new_v.append(v_i)
    hidden = L.rms_norm(x, params["final_norm"], config.rms_eps)
    logits = logits_from_hidden(params, hidden, config, rules)
    cache = KVCache(k=tuple(new_k), v=tuple(new_v), mask=mask, pos=pos, index=index + T)
    return logits, hidden, cache
