"""Retrieval-triggered forced spans (RecLM-ret inference inside the compiled decode loop).

When a row samples the trigger token (`<SOI>`) and is not already forcing, a retrieval function
of the hidden state that predicted the trigger picks an item; that item's tokens (title + `<EOI>`)
are then forced into the sequence one per step, going through the same cached forward as
sampled tokens, so the KV cache is reused and nothing is re-prefilled. Items a row already
received are excluded from its later retrievals (no repeats within a reply); once a row has received
`max_items` items (or the whole catalogue) the trigger is banned from its sampling.

The reference (RecAI `RecLM-cgen`, `SFT_Embedding_generate`) stops generation at `<SOI>`,
appends the title and re-runs `generate` from scratch each time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

NEG = float(jnp.finfo(jnp.float32).min)


@dataclasses.dataclass(frozen=True)
class Retriever:
    """A jit-friendly retrieval hook.

    params: pytree passed to `score_fn` (e.g. the projection head and the item table).
    item_tokens: [I, F] int32, per item its forced tokens (title ids + EOI), padded.
    item_lens: [I] int32, number of valid tokens in each `item_tokens` row (>= 1).
    score_fn: static `(params, hidden [B, D]) -> scores [B, I]` (float32).
    trigger_id: static, the token that starts a retrieval (`<SOI>`).
    max_items: static R, retrievals remembered per row for exclusion.
    """

    params: Any
    item_tokens: jax.Array
    item_lens: jax.Array
    score_fn: Callable
    trigger_id: int = 0
    max_items: int = 32

    def init_state(self, batch: int) -> ForcingState:
        f = self.item_tokens.shape[1]
        return ForcingState(
            tokens=jnp.zeros((batch, f), jnp.int32),
            length=jnp.zeros((batch,), jnp.int32),
            cursor=jnp.zeros((batch,), jnp.int32),
            picked=jnp.full((batch, self.max_items), -1, jnp.int32),
            n_picked=jnp.zeros((batch,), jnp.int32),
        )

    def block_exhausted_trigger(self, state: ForcingState, logits: jax.Array) -> jax.Array:
        """`logits [B, V]` with the trigger banned in rows whose exclusion buffer is full (or that received every
        item): a further retrieval there could repeat an item, as ItemConstraint bans `<SOI>` in the same case."""
        full = state.n_picked >= min(self.max_items, self.item_tokens.shape[0])
        return logits.at[:, self.trigger_id].set(jnp.where(full, NEG, logits[:, self.trigger_id]))

    def pick(self, hidden: jax.Array, state: ForcingState) -> jax.Array:
        """`hidden [B, D]` -> `[B]` best item not yet picked by the row."""
        scores = self.score_fn(self.params, hidden).astype(jnp.float32)  # [B, I]
        rows = jnp.arange(scores.shape[0])[:, None]
        taken = jnp.where(state.picked >= 0, state.picked, scores.shape[1])
        scores = scores.at[rows, taken].set(NEG, mode="drop")
        return jnp.argmax(scores, axis=-1).astype(jnp.int32)


jax.tree_util.register_dataclass(
    Retriever,
    data_fields=["params", "item_tokens", "item_lens"],
    meta_fields=["score_fn", "trigger_id", "max_items"],
)


@dataclasses.dataclass(frozen=True)
class ForcingState:
    """`tokens [B, F]` the span being forced, `length [B]`, `cursor [B]` (next to emit);
    `picked [B, R]` items retrieved so far (-1 padded), `n_picked [B]`."""

    tokens: jax.Array
    length: jax.Array
    cursor: jax.Array
    picked: jax.Array
    n_picked: jax.Array


jax.tree_util.register_dataclass(
    ForcingState, data_fields=["tokens", "length", "cursor", "picked", "n_picked"], meta_fields=[]
)


def apply_forcing(
    retriever: Retriever, state: ForcingState, sampled: jax.Array, hidden: jax.Array, active: jax.Array
) -> tuple[jax.Array, ForcingState]:
    """One step: a pending forced token overrides `sampled [B]`; a freshly sampled trigger starts a
    retrieval (scored only when some row triggers, via `lax.cond`). Returns (tokens [B], state)."""
    rows = jnp.arange(sampled.shape[0])
    forcing = active & (state.cursor < state.length)
    forced_tok = state.tokens[rows, jnp.minimum(state.cursor, state.tokens.shape[1] - 1)]
    tokens = jnp.where(forcing, forced_tok, sampled)
    trigger = active & ~forcing & (tokens == retriever.trigger_id)

    item = jax.lax.cond(
        jnp.any(trigger),
        lambda: retriever.pick(hidden, state),
        lambda: jnp.zeros(sampled.shape, jnp.int32),
    )
    slot = jnp.where(trigger & (state.n_picked < retriever.max_items), state.n_picked, retriever.max_items)
    new_state = ForcingState(
        tokens=jnp.where(trigger[:, None], retriever.item_tokens[item], state.tokens),
        length=jnp.where(trigger, retriever.item_lens[item], state.length),
        cursor=jnp.where(trigger, 0, state.cursor + forcing.astype(jnp.int32)),
        picked=state.picked.at[rows, slot].set(item, mode="drop"),
        n_picked=state.n_picked + (slot < retriever.max_items).astype(jnp.int32),
    )
    return tokens, new_state
