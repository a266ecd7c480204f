"""The LM loss family: per-token log-probs and masked, packed and chunked next-token cross-entropy.

Every LM loss of the project goes through one label pick, `label_logits`: a one-hot masked sum over
the vocabulary rather than `take_along_axis`. A gather over a vocab sharded on `tensor` has no
output sharding JAX can infer on Explicit meshes (docs/backbone.md, "Explicit mesh axes"); the
one-hot select is elementwise + a reduction with exactly one non-zero term, so it gives the same
value on any mesh. On it stand:

  token_logprobs(logits, labels)            [...]  log p(label)            (RL log-probs, scoring)
  token_nll(logits, labels)                 [...]  -log p(label)           (per-token / per-sample loss)
  cross_entropy(logits, labels, mask)       (sum, count)                   masked
  chunked_cross_entropy(hidden, ..., project, chunk_size)   (sum, count)   [B, T, V] never materialised
  chunked_token_logprobs(hidden, labels, project, chunk_size) [B, T]
  hidden_cross_entropy(hidden, ..., project, chunk_size=0)  (sum, count)   plain or chunked by a knob
  next_token_targets(tokens, mask, segment_ids=)            inputs, labels, label mask (packed rows)
  segment_sums(values, mask, segment_ids, num_segments)     per-segment (sum, count) of packed rows

Every loss returns `(sum, count)` in float32 rather than a mean, so that gradient accumulation over
micro-batches and data-parallel reductions weight every token equally: the caller divides once
(docs/training.md).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def label_logits(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The logit of each label, picked with a one-hot masked sum (sharding-safe, see the module doc).

    Args:
      logits: [..., V] any float dtype (picked in float32).
      labels: [...] int ids; out-of-range ids (e.g. -100 at ignored positions) are clipped into
        [0, V), so they pick a real (meaningless) logit: mask those positions.
    Returns:
      [...] float32.
    """
    logits = logits.astype(jnp.float32)
    safe_labels = jnp.clip(labels, 0, logits.shape[-1] - 1)
    hit = jnp.arange(logits.shape[-1]) == safe_labels[..., None]
    return jnp.sum(jnp.where(hit, logits, 0.0), axis=-1)


def token_nll(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-token negative log-likelihood `logsumexp(z) - z[label]`, [...] float32 (logits [..., V])."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"token_nll: logits {logits.shape} must be labels {labels.shape} + [V]")
    logits = logits.astype(jnp.float32)
    label_logit = label_logits(logits, labels)
    return jax.nn.logsumexp(logits, axis=-1) - label_logit


def token_logprobs(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-token log-probability of the label, `log softmax(z)[label]`, [...] float32.

    For next-token log-probs of a causal LM pass `logits[:, :-1]` and `tokens[:, 1:]`.
    Equals `-token_nll(logits, labels)` exactly.
    """
    return -token_nll(logits, labels)


def cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Masked token cross-entropy.

    Args:
      logits: [..., V] any float dtype (computed in float32).
      labels: [...] int token ids; entries where `mask` is 0 may hold anything (e.g. -100).
      mask:   [...] 0/1 (or bool, or float) weights.
    Returns:
      (sum of -log p(label) · mask, sum of mask), both float32 scalars.
    """
    if logits.shape[:-1] != labels.shape or labels.shape != mask.shape:
        raise ValueError(
            f"cross_entropy: logits {logits.shape} must be labels {labels.shape} + [V], mask {mask.shape} = labels"
        )
    nll = token_nll(logits, labels)
    mask = mask.astype(jnp.float32)
    return jnp.sum(nll * mask), jnp.sum(mask)


def _to_chunks(chunk_size: int, *arrays: jax.Array) -> tuple[int, list[jax.Array]]:
    """Pads [B, T, ...] arrays along T to a multiple of the chunk and reshapes to [n, B, C, ...]."""
    b, t = arrays[0].shape[:2]
    chunk_size = min(chunk_size, t)
    n_chunks = -(-t // chunk_size)
    pad = n_chunks * chunk_size - t
    out = []
    for x in arrays:
        if pad:  # padded positions carry mask 0 (and are sliced off per-token outputs)
            x = jnp.pad(x, ((0, 0), (0, pad)) + ((0, 0),) * (x.ndim - 2))
        out.append(jnp.moveaxis(x.reshape(b, n_chunks, chunk_size, *x.shape[2:]), 1, 0))
    return chunk_size, out


def _check_hidden(name: str, hidden: jax.Array, **arrays: jax.Array) -> None:
    b, t = hidden.shape[:2]
    if hidden.ndim != 3 or any(a.shape != (b, t) for a in arrays.values()):
        shapes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
        raise ValueError(f"{name}: hidden {hidden.shape} must be [B, T, D] with {shapes} = [B, T]")


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
    _check_hidden("chunked_cross_entropy", hidden, labels=labels, mask=mask)
    _, chunks = _to_chunks(chunk_size, hidden, labels, mask)

    @jax.checkpoint
    def chunk_loss(h, y, m):
        return cross_entropy(project(h), y, m)

    def body(carry, xs):
        s, c = chunk_loss(*xs)
        return (carry[0] + s, carry[1] + c), None

    zero = jnp.zeros((), jnp.float32)
    (total, count), _ = jax.lax.scan(body, (zero, zero), tuple(chunks))
    return total, count


def chunked_token_logprobs(
    hidden: jax.Array, labels: jax.Array, project: Callable[[jax.Array], jax.Array], *, chunk_size: int
) -> jax.Array:
    """`token_logprobs(project(hidden), labels)` [B, T] float32, one sequence chunk of logits at a time.

    Same chunking and per-chunk rematerialisation as `chunked_cross_entropy` (peak logits memory
    B·C·V); for scoring long sequences (RL log-probs of a policy and its reference).
    Args: hidden [B, T, D]; labels [B, T] int; project [B, C, D] -> [B, C, V].
    """
    _check_hidden("chunked_token_logprobs", hidden, labels=labels)
    b, t = labels.shape
    _, chunks = _to_chunks(chunk_size, hidden, labels)

    @jax.checkpoint
    def chunk_logprobs(h, y):
        return token_logprobs(project(h), y)

    _, out = jax.lax.scan(lambda carry, xs: (carry, chunk_logprobs(*xs)), None, tuple(chunks))  # [n, B, C]
    return jnp.moveaxis(out, 0, 1).reshape(b, -1)[:, :t]


def hidden_cross_entropy(
    hidden: jax.Array,
    labels: jax.Array,
    mask: jax.Array,
    project: Callable[[jax.Array], jax.Array],
    *,
    chunk_size: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """(loss sum, token count) from hidden states [B, T, D]: `chunked_cross_entropy` when
    `chunk_size > 0` (the `train.loss_chunk` knob, docs/training.md), else `cross_entropy` of the
    full logits `project(hidden)`."""
    if chunk_size:
        return chunked_cross_entropy(hidden, labels, mask, project, chunk_size=chunk_size)
    return cross_entropy(project(hidden), labels, mask)


def next_token_targets(
    tokens: jax.Array, mask: jax.Array | None = None, *, segment_ids: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Splits [B, T+1] token rows into inputs [B, T], labels [B, T] (shifted by one) and the label mask.

    mask [B, T+1]: loss weight of each token *as a target* (default all ones); the label mask is
    `mask[:, 1:]` in float32.
    segment_ids [B, T+1] (packed rows, 0 = padding): additionally zero where the label starts
    another segment than its input, or is padding, so no segment predicts its neighbour's first token.
    Pass `segment_ids[:, :-1]` (and the matching positions) to the model with the inputs.
    """
    inputs, labels = tokens[:, :-1], tokens[:, 1:]
    label_mask = jnp.ones_like(labels, jnp.float32) if mask is None else mask[:, 1:].astype(jnp.float32)
    if segment_ids is not None:
        same = (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] > 0)
        label_mask = label_mask * same
    return inputs, labels, label_mask


def segment_sums(
    values: jax.Array, mask: jax.Array, segment_ids: jax.Array, num_segments: int
) -> tuple[jax.Array, jax.Array]:
    """Per-segment masked sums of packed rows: (sum of values · mask [B, S], sum of mask [B, S]) for
    segments 1..S (`num_segments`); segment id 0 (padding) and ids above S contribute nothing.

    values, mask, segment_ids: [B, T] (e.g. `token_nll` and the label mask of `next_token_targets`,
    with the inputs' `segment_ids[:, :-1]`).
    """
    onehot = jax.nn.one_hot(segment_ids - 1, num_segments, dtype=jnp.float32)  # padding (0) -> all zeros
    return jnp.einsum("bt,bts->bs", values * mask, onehot), jnp.einsum("bt,bts->bs", mask, onehot)
