"""Token selection as pure functions over logits `[batch, vocab]` (float32).

Order of operations (as HF: processors, then warpers): temperature -> constraint mask ->
top-k -> top-p -> categorical sample. Masking commutes with the temperature division, so we
divide first: `finfo.min / t` for `t < 1` would overflow to `-inf`.

Masked logits are set to `finfo(float32).min`, never `-inf`, so a fully masked row cannot turn
into NaNs (the caller's guards make sure at least one token is always allowed).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NEG = float(jnp.finfo(jnp.float32).min)


def greedy(logits: jax.Array) -> jax.Array:
    """`[B, V] -> [B]` int32: the argmax (first index on ties, as torch.argmax; a NaN counts as the maximum,
    as in jnp.argmax).

    Two plain reductions (the max, then the smallest index holding it) instead of `jnp.argmax`, whose
    (value, index) reduction XLA:CPU runs ~6x slower: 0.58 vs 0.10 ms over [16, 8192] logits, ~5% of a
    batch-16 decode step (BENCHMARKS.md, Decoding)."""
    top = jnp.max(logits, axis=-1, keepdims=True)
    is_top = (logits == top) | jnp.isnan(logits)
    index = jnp.arange(logits.shape[-1], dtype=jnp.int32)
    return jnp.min(jnp.where(is_top, index, logits.shape[-1]), axis=-1)


def apply_temperature(logits: jax.Array, temperature) -> jax.Array:
    """`logits / t`; `t <= 0` leaves logits unchanged (the caller then selects greedily)."""
    t = jnp.asarray(temperature, jnp.float32)
    return logits / jnp.where(t > 0, t, 1.0)


def mask_logits(logits: jax.Array, keep: jax.Array) -> jax.Array:
    """Sets logits outside `keep` (bool, same shape) to `finfo.min`."""
    return jnp.where(keep, logits, NEG)


def top_k_keep(logits: jax.Array, k: int) -> jax.Array:
    """`[B, V] -> [B, V]` bool: logits >= the k-th largest. Ties at the threshold keep more than k
    (as HF `TopKLogitsWarper`). `k` is static (it sets the `lax.top_k` shape)."""
    k = min(int(k), logits.shape[-1])
    if k <= 0:
        raise ValueError(f"top_k must be positive, got {k}")
    kth = jax.lax.top_k(logits, k)[0][..., -1:]
    return logits >= kth


def top_p_keep(logits: jax.Array, p) -> jax.Array:
    """`[B, V] -> [B, V]` bool nucleus set: sorted descending, rank i is kept iff the probability
    mass strictly before it is < p (rank 0 always kept); then every logit >= the last kept one.
    Same set as HF `TopPLogitsWarper` (which removes the ascending prefix with mass <= 1-p)."""
    p = jnp.asarray(p, jnp.float32)
    sorted_desc = -jnp.sort(-logits, axis=-1)
    probs = jax.nn.softmax(sorted_desc, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = (mass_before < p).at[..., 0].set(True)
    n_keep = jnp.sum(keep_sorted, axis=-1, keepdims=True)
    threshold = jnp.take_along_axis(sorted_desc, n_keep - 1, axis=-1)
    return logits >= threshold


def warp(logits: jax.Array, *, top_k: int | None = None, top_p=None) -> jax.Array:
    """Applies top-k then top-p (both optional) to already temperature-scaled logits."""
    if top_k is not None:
        logits = mask_logits(logits, top_k_keep(logits, top_k))
    if top_p is not None:
        logits = mask_logits(logits, top_p_keep(logits, top_p))
    return logits


def row_keys(base_key: jax.Array, request_ids: jax.Array, step) -> jax.Array:
    """Per-sequence keys `fold_in(fold_in(base, request_id[b]), step)`: a row's samples depend
    only on its request id and step, never on its batch slot, padding or bucket."""
    return jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(base_key, r), step))(request_ids)


def categorical(keys: jax.Array, logits: jax.Array) -> jax.Array:
    """`keys [B]`, `logits [B, V]` -> `[B]` int32 samples, one key per row."""
    return jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32)


def select_tokens(
    logits: jax.Array,
    keys: jax.Array,
    *,
    allowed: jax.Array | None = None,
    greedy_decode: bool,
    temperature=1.0,
    top_k: int | None = None,
    top_p=None,
) -> jax.Array:
    """One decoding step's token choice. `logits [B, V]` f32, `keys [B]`, `allowed [B, V]` bool or
    None. `greedy_decode` is static: greedy ignores temperature/top-k/top-p (as HF with
    `do_sample=False`)."""
    logits = logits.astype(jnp.float32)
    if greedy_decode:
        if allowed is not None:
            logits = mask_logits(logits, allowed)
        return greedy(logits)
    logits = apply_temperature(logits, temperature)
    if allowed is not None:
        logits = mask_logits(logits, allowed)
    return categorical(keys, warp(logits, top_k=top_k, top_p=top_p))
