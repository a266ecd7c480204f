"""Constraints for the decode loop: a pytree with three pure functions.

    state = constraint.init_state(batch)                  # per-row state, a pytree of [B, ...]
    state = constraint.init_state_from_prompt(tokens, start)   # optional: the state the prompt leaves
    allowed, empty = constraint.allowed(state)            # [B, V] bool, [B] bool
    state = constraint.update(state, tokens, active)      # tokens [B] i32, active [B] bool

`empty` flags rows where nothing would be allowed; those rows get every token instead (an
all-`finfo.min` row would be sampled silently: huggingface/transformers#22890) and the engine
reports the flag so tests can assert it never fires.

`ItemConstraint` is RecLM-cgen's catalogue constraint over an `ItemTrie` (see `trie.py`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from humanai_jax.decoding.trie import ItemTrie, children_mask, next_node


@dataclasses.dataclass(frozen=True)
class ItemConstraintState:
    """Per-row state. `in_span [B]` bool; `node [B]` i32 (current trie node, valid in a span);
    `emitted [B, R]` i32 ranks of items completed in this reply (-1 padded); `n_emitted [B]` i32."""

    in_span: jax.Array
    node: jax.Array
    emitted: jax.Array
    n_emitted: jax.Array


jax.tree_util.register_dataclass(
    ItemConstraintState, data_fields=["in_span", "node", "emitted", "n_emitted"], meta_fields=[]
)


@dataclasses.dataclass(frozen=True)
class ItemConstraint:
    """RecLM-cgen decode-time mask.

    * Outside a span every token is allowed (the reference), except: `<SOI>` once the reply holds
      `max_items` items (the de-dup buffer is full) or every catalogue item; `<EOI>` if
      `forbid_eoi_outside`.
    * Inside a span: children of the current node, minus children whose items were all emitted.
    * Reaching an EOI leaf records the item and leaves the span; a token off the trie (possible
      only when forced) leaves the span, as in the reference.
    """

    trie: ItemTrie
    max_items: int = 32
    forbid_eoi_outside: bool = False

    def init_state(self, batch: int) -> ItemConstraintState:
        return ItemConstraintState(
            in_span=jnp.zeros((batch,), bool),
            node=jnp.zeros((batch,), jnp.int32),
            emitted=jnp.full((batch, self.max_items), -1, jnp.int32),
            n_emitted=jnp.zeros((batch,), jnp.int32),
        )

    def init_state_from_prompt(self, tokens: jax.Array, start: jax.Array) -> ItemConstraintState:
        """The state after reading the prompts: `tokens [B, T]` i32 left-padded, row b's prompt is
        `tokens[b, start[b]:]`. A prompt that ends inside an open `<SOI>` span (e.g. a reply prefilled up to
        `<SOI> The Ma`) must constrain the first generated tokens from that trie node, not from free text.
        Items completed in the prompt are not recorded: the de-dup buffer is the reply's (the reference).
        """
        batch, length = tokens.shape

        def read(state, t):
            return self.update(state, tokens[:, t], t >= start), None

        state, _ = jax.lax.scan(read, self.init_state(batch), jnp.arange(length))
        return dataclasses.replace(state, emitted=jnp.full_like(state.emitted, -1),
                                   n_emitted=jnp.zeros_like(state.n_emitted))

    def check_stop_ids(self, stop_ids) -> None:
        """Refuses stop tokens that occur inside a catalogue title: sampling one inside a span would end the
        reply mid-title (an item that is neither complete nor out-of-domain by the metrics' count)."""
        import numpy as np

        inside = np.intersect1d(np.asarray(list(stop_ids), np.int64), self.trie.title_tokens())
        if inside.size:
            raise ValueError(
                f"stop token(s) {inside.tolist()} occur inside item titles: a reply would stop in the middle of "
                "an item. Drop them from stop_token_ids, or tokenize titles so they cannot contain them.")

    def _exhausted_children(self, state: ItemConstraintState, node: jax.Array) -> jax.Array:
        """`[B, R]` token ids of children of `node` whose whole subtree was emitted (else V)."""
        t = self.trie
        em = state.emitted  # [B, R]
        r = em.shape[1]
        em_valid = jnp.arange(r)[None, :] < state.n_emitted[:, None]
        in_subtree = em_valid & (t.lo[node][:, None] <= em) & (em < t.hi[node][:, None])
        depth_child = jnp.minimum(t.depth[node] + 1, t.item_path.shape[1] - 1)
        child = t.item_path[jnp.maximum(em, 0), depth_child[:, None]]  # [B, R]
        child = jnp.maximum(child, 0)
        c_lo, c_hi = t.lo[child], t.hi[child]  # [B, R]
        # emitted[r'] falls under child[r]  -> [B, R, R']
        under = em_valid[:, None, :] & (c_lo[:, :, None] <= em[:, None, :]) & (em[:, None, :] < c_hi[:, :, None])
        full = in_subtree & (jnp.sum(under, -1) == c_hi - c_lo)
        return jnp.where(full, t.tok[child], t.vocab_size)

    def allowed(self, state: ItemConstraintState) -> tuple[jax.Array, jax.Array]:
        t = self.trie
        batch = state.node.shape[0]
        rows = jnp.arange(batch)[:, None]
        node = jnp.where(state.in_span, state.node, 0)
        inside = children_mask(t, node)
        inside = inside.at[rows, self._exhausted_children(state, node)].set(False, mode="drop")

        full = state.n_emitted >= min(self.max_items, t.num_items)
        outside = jnp.ones((batch, t.vocab_size), bool)
        outside = outside.at[:, t.soi_id].set(~full)
        if self.forbid_eoi_outside:
            outside = outside.at[:, t.eoi_id].set(False)
        allowed = jnp.where(state.in_span[:, None], inside, outside)
        empty = ~jnp.any(allowed, axis=-1)
        return allowed | empty[:, None], empty

    def update(self, state: ItemConstraintState, tokens: jax.Array, active: jax.Array) -> ItemConstraintState:
        t = self.trie
        node = jnp.where(state.in_span, state.node, 0)
        nxt = next_node(t, node, tokens)
        found = nxt >= 0
        leaf = found & (t.leaf_rank[jnp.maximum(nxt, 0)] >= 0)
        enter = ~state.in_span & (tokens == t.soi_id)

        finish = active & state.in_span & leaf
        can_store = state.n_emitted < self.max_items
        slot = jnp.where(finish & can_store, state.n_emitted, self.max_items)
        rows = jnp.arange(tokens.shape[0])
        emitted = state.emitted.at[rows, slot].set(t.leaf_rank[jnp.maximum(nxt, 0)], mode="drop")
        n_emitted = state.n_emitted + (finish & can_store).astype(jnp.int32)

        in_span = jnp.where(state.in_span, found & ~leaf, enter)
        new_node = jnp.where(enter, 0, jnp.where(state.in_span & found, nxt, state.node))
        return ItemConstraintState(
            in_span=jnp.where(active, in_span, state.in_span),
            node=jnp.where(active, new_node, state.node),
            emitted=emitted,
            n_emitted=n_emitted,
        )

    def emitted_items(self, state: ItemConstraintState) -> list[list[int]]:
        """Host: per row, the caller's item indices completed so far, in order."""
        import numpy as np

        em, n = np.asarray(state.emitted), np.asarray(state.n_emitted)
        rank_to_item = np.asarray(self.trie.rank_to_item)
        return [[int(rank_to_item[r]) for r in em[b, : n[b]]] for b in range(em.shape[0])]


jax.tree_util.register_dataclass(
    ItemConstraint, data_fields=["trie"], meta_fields=["max_items", "forbid_eoi_outside"]
)
