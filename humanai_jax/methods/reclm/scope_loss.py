"""RecLM-cgen's scope-mask cross-entropy (Liao et al., arXiv 2505.03336): at title positions the
softmax runs over the trie children only (the reference implementation's default scope mask,
applied as -inf-masked logits before CE).

Convention: `logits [B, T, V]` at position t predict `targets [B, T]` at t (already shifted);
targets < 0 are ignored. A target is *inside a span* if it lies strictly between a `<SOI>` target
and the next `<EOI>` target (the EOI itself too with `scope_mask_eoi=True`). Its scope is the
children of the trie node reached by the span's earlier tokens: a light node's K child tokens as a
membership mask over V, a heavy node's dense row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, PartitionSpec as P

from humanai_jax.decoding.trie import ItemTrie
from humanai_jax.train.losses import label_logits


def span_nodes(targets: np.ndarray, trie: ItemTrie, *, scope_mask_eoi: bool = False) -> np.ndarray:
    """Host side (data pipeline): `[B, T]` int32 trie node whose children are the scope of each
    target, -1 where plain CE applies (outside spans, off-trie titles)."""
    trie = trie.to_host()
    targets = np.asarray(targets)
    out = np.full(targets.shape, -1, np.int32)
    for b in range(targets.shape[0]):
        node = -1  # current node inside a span, -1 outside / fell off
        in_span = False
        for t, tok in enumerate(targets[b]):
            tok = int(tok)
            if not in_span:
                if tok == trie.soi_id:
                    in_span, node = True, 0
                continue
            if tok == trie.eoi_id:
                if scope_mask_eoi and node >= 0:
                    out[b, t] = node
                in_span, node = False, -1
                continue
            if node >= 0:
                nxt = trie.child(node, tok)
                # A title token off the trie (a title not in the catalogue) gets plain CE from here
                # on, as the reference's `next_tokens` returning None leaves the row unmasked.
                out[b, t] = node if nxt >= 0 else -1
                node = nxt
    return out


def _explicit_spec(x: jax.Array):
    """x's PartitionSpec (padded to its rank) when x lives on an Explicit mesh, else None."""
    sharding = jax.typeof(x).sharding
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or AxisType.Explicit not in getattr(mesh, "axis_types", ()):
        return None
    spec = tuple(sharding.spec)
    return spec + (None,) * (x.ndim - len(spec))


def _take(table: jax.Array, index: jax.Array, trailing=None) -> jax.Array:
    """`table[index]` for a replicated trie table: on an Explicit mesh the gather's output sharding is
    spelt out (index's spec on the leading dims, `trailing` on the table's own dims), as JAX cannot infer it."""
    spec = _explicit_spec(index)
    if spec is None:
        return table[index]
    trailing = trailing or (None,) * (table.ndim - 1)
    return table.at[index].get(out_sharding=P(*spec, *trailing))


def scope_masked_cross_entropy(
    logits: jax.Array, targets: jax.Array, span_node: jax.Array, trie: ItemTrie
) -> jax.Array:
    """Per-token CE `[B, T]` f32 (0 at ignored targets): `logsumexp(scope) - z[target]` where the
    scope is the trie children of `span_node` (>= 0), else the whole vocabulary; outside spans it
    equals `humanai_jax.train.losses.token_nll`.

    logits [B, T, V]; targets, span_node [B, T] int. Sharding-safe like the LM loss family: the target
    logit is the one-hot pick (`train.losses.label_logits`) and a light node's scope is a membership
    mask over V built from its K child tokens (K compares fused into the reduction, no gather over V),
    so the loss runs with the vocabulary sharded on an Explicit mesh (tests/test_reclm_scope_loss.py).
    """
    z = logits.astype(jnp.float32)
    z_target = label_logits(z, targets)  # the shared sharding-safe pick (ignored targets clipped, then zeroed)
    full = jax.nn.logsumexp(z, axis=-1)

    node = jnp.maximum(span_node, 0)
    slots = _take(trie.indptr, node)[..., None] + jnp.arange(trie.window, dtype=jnp.int32)  # [B, T, K]
    valid = slots < _take(trie.indptr, node + 1)[..., None]
    toks = jnp.where(valid, _take(trie.child_tok, slots), -1)
    vocab = jnp.arange(z.shape[-1], dtype=jnp.int32)
    is_child = jnp.any(toks[..., None] == vocab, axis=-2)  # [B, T, V]
    light = jax.nn.logsumexp(jnp.where(is_child, z, -jnp.inf), axis=-1)
    hid = _take(trie.heavy_id, node)
    z_spec = _explicit_spec(z)
    heavy_rows = _take(trie.heavy_allowed, jnp.maximum(hid, 0), trailing=None if z_spec is None else z_spec[-1:])
    heavy = jax.nn.logsumexp(jnp.where(heavy_rows, z, -jnp.inf), axis=-1)
    scoped = jnp.where(hid >= 0, heavy, light)
    lse = jnp.where(span_node >= 0, scoped, full)
    return jnp.where(targets >= 0, lse - z_target, 0.0)
