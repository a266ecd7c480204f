"""Losses as pure functions of (logits or hidden states, labels, masks).

Every loss returns `(sum, count)` in float32 rather than a mean, so that gradient accumulation over
micro-batches and data-parallel reductions weight every token equally: the caller divides once.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Masked token cross-entropy.

    Args:
      logits: [..., V] any float dtype (computed in float32).
      labels: [...] int token ids; entries where `mask` is 0 may hold anything (e.g. -100).
      mask:   [...] 0/1 (or bool) weights.
    Returns:
      (sum of -log p(label) over masked-in tokens, number of masked-in tokens), both float32 scalars.
    """
    if logits.shape[:-1] != labels.shape or labels.shape != mask.shape:
        raise ValueError(
            f"cross_entropy: logits {logits.shape} must be labels {labels.shape} + [V], mask {mask.shape} = labels"
        )
    logits = logits.astype(jnp.float32)
    safe_labels = jnp.clip(labels, 0, logits.shape[-1] - 1)
    # A one-hot select rather than take_along_axis: a gather over a vocab sharded on `tensor` has no
    # output sharding JAX can infer on Explicit meshes; this is elementwise + a reduction (one term).
    hit = jnp.arange(logits.shape[-1]) == safe_labels[..., None]
    label_logit = jnp.sum(jnp.where(hit, logits, 0.0), axis=-1)
    nll = jax.nn.logsumexp(logits, axis=-1) - label_logit
    mask = mask.astype(jnp.float32)
    return jnp.sum(nll * mask), jnp.sum(mask)


def chunked_cross_entropy(
    hidden: jax.Array,
    labels: jax.Array,
    mask: jax.Array,
    project: Callable[[jax.Array], jax.Array],
    *,
    chunk_size: int,
) -> tuple[jax.Array, jax.Array]:
    """Cross-entropy from hidden states without materialising the full [B, T, V] logits.

    The sequence axis is cut into chunks of `chunk_size`; `lax.scan` projects one chunk at a time
    (`project: [B, C, D] -> [B, C, V]`, e.g. the LM head) and accumulates the masked sum and count.
    Each chunk is rematerialised (`jax.checkpoint`), so the backward pass also holds one chunk's
    logits at a time: peak logits memory is B·C·V floats instead of B·T·V. The batch axis is kept
    whole, so a batch-sharded `hidden` stays sharded.

    Args:
      hidden: [B, T, D] final (post-norm) hidden states.
      labels: [B, T] int target ids.
      mask:   [B, T] 0/1 loss weights.
    Returns:
      (loss sum, token count), float32 scalars; equal to `cross_entropy(project(hidden), labels, mask)`.
    """
    b, t, d = hidden.shape
    if labels.shape != (b, t) or mask.shape != (b, t):
        raise ValueError(f"chunked_cross_entropy: hidden {hidden.shape}, labels {labels.shape}, mask {mask.shape}")
    chunk_size = min(chunk_size, t)
    n_chunks = -(-t // chunk_size)
    pad = n_chunks * chunk_size - t
    if pad:  # padded positions carry mask 0, so they add nothing
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        labels = jnp.pad(labels, ((0, 0), (0, pad)))
        mask = jnp.pad(mask, ((0, 0), (0, pad)))

    def to_chunks(x):  # [B, n*C, ...] -> [n, B, C, ...]
        return jnp.moveaxis(x.reshape(b, n_chunks, chunk_size, *x.shape[2:]), 1, 0)

    @jax.checkpoint
    def chunk_loss(h, y, m):
        return cross_entropy(project(h), y, m)

    def body(carry, xs):
        s, c = chunk_loss(*xs)
        return (carry[0] + s, carry[1] + c), None

    zero = jnp.zeros((), jnp.float32)
    (total, count), _ = jax.lax.scan(body, (zero, zero), (to_chunks(hidden), to_chunks(labels), to_chunks(mask)))
    return total, count


def next_token_targets(tokens: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Splits [B, T+1] tokens into inputs [B, T], labels [B, T] (shifted by one) and the label mask."""
    inputs, labels = tokens[:, :-1], tokens[:, 1:]
    label_mask = jnp.ones_like(labels, jnp.float32) if mask is None else mask[:, 1:].astype(jnp.float32)
    return inputs, labels, label_mask
