"""Row-wise KV-cache steps for continuous batching (pure functions, jitted with fixed shapes).

`decoding.engine` decodes one batch that starts and ends together: all rows share the cache's write
index. A server instead keeps `R` cache rows ("slots") busy with requests that arrive and leave at
different times, so here every row has its own length: row b's token at slot s has position s (no
left padding), a decode step writes row b's new token at slot `lengths[b]`, and a prefill chunk
writes one row only. Shapes are fixed by (R, S, C), so nothing recompiles per request:

  R rows, S cache slots per row (the context length plus one chunk of headroom: a chunk is always
  written whole, its padded tail masked), C prefill chunk length, V vocabulary, D model width.

Prefill runs one chunk for up to P rows per call (P in 1, 4, 16, ...). A request's prompt is
prefilled *except its last token*; the decode step then feeds that token, so
the first generated token comes out of the same sampling code as all others (`sample_rows`).
Sampling matches `decoding.sampling` operation for operation (temperature -> mask -> top-p ->
categorical) with the engine's per-row keys `fold_in(fold_in(key(seed), choice), step)`, so a seeded
request gives the tokens `decoding.generate(rng=key(seed), request_ids=[choice])` gives.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from humanai_jax.backbone import layers as L
from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.transformer import KVCache, decoder_block, init_cache, logits_from_hidden, unstack_layers
from humanai_jax.decoding import sampling

TOP_LOGPROBS = 20  # OpenAI's maximum `top_logprobs`; computed for every row, cheap next to the model


def _write_rows(buf: jax.Array, update: jax.Array, start: jax.Array, axis: int) -> jax.Array:
    """Per row b: `buf[b]` gets `update[b]` at offset `start[b]` along `axis` (of the row's array)."""

    def one(b, u, s):
        idx = [0] * b.ndim
        idx[axis] = s
        return jax.lax.dynamic_update_slice(b, u, tuple(idx))

    return jax.vmap(one)(buf, update, start)


def forward_rows(params, tokens: jax.Array, start: jax.Array, valid: jax.Array, cache: KVCache,
                 config: ModelConfig):
    """`tokens [B, T]` written at slots `start[b] .. start[b]+T-1` of each row (position = slot).

    `valid [B, T]` marks real tokens (a chunk's padded tail and idle rows are False: written but never
    attended). Query t of row b sees slot s iff mask[b, s] and s <= start[b] + t (and the sliding
    window). The caller keeps start + T <= S. Returns (hidden [B, T, D] after the final norm, cache).
    """
    B, T = tokens.shape
    S = cache.max_len
    positions = start[:, None] + jnp.arange(T, dtype=jnp.int32)[None, :]
    mask = _write_rows(cache.mask, valid, start, 0)
    pos = _write_rows(cache.pos, positions, start, 0)
    allowed = mask[:, None, :] & (jnp.arange(S)[None, None, :] <= positions[:, :, None])
    flags = config.sliding_layers()
    windowed = None
    if flags is not None:
        windowed = allowed & ((positions[:, :, None] - pos[:, None, :]) < config.sliding_window)
    cos, sin = L.rope_cos_sin(positions, config)
    dtype = config.compute_dtype
    x = jnp.take(params["embed"], tokens, axis=0, mode="clip").astype(dtype)
    new_k, new_v = [], []
    for i, layer in enumerate(unstack_layers(params)["layers"]):
        mask_i = windowed if flags is not None and flags[i] else allowed

        def attention(q, k, v, i=i, mask_i=mask_i):
            k_i = _write_rows(cache.k[i], k.transpose(0, 2, 1, 3).astype(cache.k[i].dtype), start, 1)
            v_i = _write_rows(cache.v[i], v.transpose(0, 2, 1, 3).astype(cache.v[i].dtype), start, 1)
            return L.attend(q, k_i.astype(dtype), v_i.astype(dtype), mask_i, config), (k_i, v_i)

        x, (k_i, v_i) = decoder_block(layer, x, cos, sin, config, attention)
        new_k.append(k_i)
        new_v.append(v_i)
    hidden = L.rms_norm(x, params["final_norm"], config.rms_eps)
    return hidden, KVCache(k=tuple(new_k), v=tuple(new_v), mask=mask, pos=pos, index=cache.index)


def new_cache(config: ModelConfig, rows: int, slots: int) -> KVCache:
    return init_cache(config, rows, slots)


def _prefill_rows(params, cache: KVCache, rows: jax.Array, tokens: jax.Array, start: jax.Array, n_valid: jax.Array,
                  config: ModelConfig) -> KVCache:
    """One prompt chunk for each of P rows: `tokens [P, C]` (the first `n_valid[p]` real) written into
    cache row `rows[p]` at slots `start[p]..`. `rows` must be distinct; a padding entry names an unused
    row with n_valid 0 and start S - C (slots no position ever reaches), so it changes nothing visible.
    A chunk starting at slot 0 begins a new request: the row's mask is cleared first.
    """
    take = lambda a: a[rows]  # noqa: E731 - [R, ...] -> [P, ...]
    sub = KVCache(k=tuple(map(take, cache.k)), v=tuple(map(take, cache.v)), mask=take(cache.mask),
                  pos=take(cache.pos), index=cache.index)
    sub = dataclasses.replace(sub, mask=jnp.where((start == 0)[:, None], False, sub.mask))
    valid = jnp.arange(tokens.shape[1])[None, :] < n_valid[:, None]
    _, sub = forward_rows(params, tokens, start, valid, sub, config)
    put = lambda a, b: a.at[rows].set(b)  # noqa: E731
    return KVCache(k=tuple(map(put, cache.k, sub.k)), v=tuple(map(put, cache.v, sub.v)),
                   mask=put(cache.mask, sub.mask), pos=put(cache.pos, sub.pos), index=cache.index)


def prefill_bucket(n: int, rows: int) -> int:
    """Rows per prefill call: 1, 4, 16, ... (capped at `rows`): few compiles, little padding."""
    p = 1
    while p < n:
        p *= 4
    return min(p, rows)


@dataclasses.dataclass(frozen=True)
class RowParams:
    """Per-row sampling settings, all [R]: temperature (0 = greedy), top_p (1 = off), the row's base
    key data (u32 [R, 2], from the request's seed) and its choice index (the engine's request id)."""

    temperature: jax.Array
    top_p: jax.Array
    key_data: jax.Array
    choice: jax.Array


jax.tree_util.register_dataclass(RowParams, data_fields=["temperature", "top_p", "key_data", "choice"],
                                 meta_fields=[])


def sample_rows(logits: jax.Array, rp: RowParams, step: jax.Array, allowed: jax.Array | None) -> jax.Array:
    """`logits [R, V]` -> tokens [R]: per-row greedy or temperature/top-p sampling (see module doc).

    The sampling and nucleus work sit under `lax.cond`s on "any row samples" / "any row uses top-p",
    so an all-greedy batch pays only for the argmax."""
    logits = logits.astype(jnp.float32)
    masked = logits if allowed is None else sampling.mask_logits(logits, allowed)
    greedy_tok = sampling.greedy(masked)

    def sampled():
        scaled = sampling.apply_temperature(logits, rp.temperature[:, None])
        if allowed is not None:
            scaled = sampling.mask_logits(scaled, allowed)
        scaled = jax.lax.cond(
            jnp.any(rp.top_p < 1.0),
            lambda x: sampling.mask_logits(x, sampling.top_p_keep(x, rp.top_p[:, None]) | (rp.top_p >= 1.0)[:, None]),
            lambda x: x, scaled)
        keys = jax.vmap(lambda kd, c, s: jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(kd), c), s))(
            rp.key_data, rp.choice, step)
        return jnp.where(rp.temperature > 0, sampling.categorical(keys, scaled), greedy_tok)

    return jax.lax.cond(jnp.any(rp.temperature > 0), sampled, lambda: greedy_tok)


@dataclasses.dataclass(frozen=True)
class StepOut:
    """One decode step per row: token [R], its logprob [R], the top logprobs (ids, values [R, K]) under
    the model's raw distribution, and `emitted [R]` (the row was active, so the token is real)."""

    token: jax.Array
    logprob: jax.Array
    top_ids: jax.Array
    top_logprobs: jax.Array
    emitted: jax.Array


jax.tree_util.register_dataclass(StepOut, data_fields=["token", "logprob", "top_ids", "top_logprobs", "emitted"],
                                 meta_fields=[])


def _decode(params, cache: KVCache, last_tok, lengths, active, step, budget, stop_ids, rp: RowParams,
            allowed, want_logprobs, config: ModelConfig, n_steps: int):
    """`n_steps` decode steps for all rows (a `lax.scan`; the host sees tokens after the last one).

    Inputs [R]: last_tok (the token to feed), lengths (slots filled), active, step (tokens generated so
    far: the RNG's step), budget (tokens the row may still emit); stop_ids [M] (-1 padded) end a row on
    device; allowed [R, V] bool or None (only with n_steps == 1: host-computed masks change per token);
    want_logprobs [] bool: compute log-probabilities (else zeros; skipped under a `lax.cond`).
    Returns (cache, StepOut with a leading [n_steps] axis, last_tok, lengths, active, step, budget).
    """
    k = min(TOP_LOGPROBS, config.vocab_size)

    def body(carry, _):
        cache, tok, lengths, active, step, budget = carry
        hidden, cache = forward_rows(params, tok[:, None], lengths, active[:, None], cache, config)
        logits = logits_from_hidden(params, hidden[:, 0], config)
        new = sample_rows(logits, rp, step, allowed)

        def logprobs():
            logp = jax.nn.log_softmax(logits, axis=-1)
            top_lp, top_ids = jax.lax.top_k(logp, k)
            return jnp.take_along_axis(logp, new[:, None], axis=-1)[:, 0], top_ids.astype(jnp.int32), top_lp

        r = logits.shape[0]
        none = (jnp.zeros((r,), jnp.float32), jnp.zeros((r, k), jnp.int32), jnp.zeros((r, k), jnp.float32))
        chosen, top_ids, top_lp = jax.lax.cond(want_logprobs, logprobs, lambda: none)
        out = StepOut(new, chosen, top_ids, top_lp, active)
        live = active.astype(jnp.int32)
        budget = budget - live
        stopped = jnp.any(new[:, None] == stop_ids[None, :], axis=-1)
        carry = (cache, jnp.where(active, new, tok), lengths + live, active & ~stopped & (budget > 0),
                 step + live, budget)
        return carry, out

    params = unstack_layers(params)
    carry, outs = jax.lax.scan(body, (cache, last_tok, lengths, active, step, budget), None, length=n_steps)
    return (carry[0], outs, *carry[1:])


prefill_rows = jax.jit(_prefill_rows, static_argnames=("config",), donate_argnames=("cache",))
decode = jax.jit(_decode, static_argnames=("config", "n_steps"), donate_argnames=("cache",))
