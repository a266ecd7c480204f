"""RecLM-cgen's scope-mask cross-entropy (Liao et al., arXiv 2505.03336): at title positions the
softmax runs over the trie children only (the reference implementation's default scope mask,
applied as -inf-masked logits before CE).

Convention: `logits [B, T, V]` at position t predict `targets [B, T]` at t (already shifted);
targets < 0 are ignored. A target is *inside a span* if it lies strictly between a `<SOI>` target
and the next `<EOI>` target (the EOI itself too with `scope_mask_eoi=True`). Its scope is the
children of the trie node reached by the span's earlier tokens; no [B, T, V] mask is built for
light nodes (a K-wide gather), heavy nodes use their dense row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax.decoding.trie import ItemTrie, child_window
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


def scope_masked_cross_entropy(
    logits: jax.Array, targets: jax.Array, span_node: jax.Array, trie: ItemTrie
) -> jax.Array:
    """Per-token CE `[B, T]` f32 (0 at ignored targets): `logsumexp(scope) - z[target]` where the
    scope is the trie children of `span_node` (>= 0), else the whole vocabulary; outside spans it
    equals `humanai_jax.train.losses.token_nll`.

    logits [B, T, V]; targets, span_node [B, T] int. The target logit is the LM loss family's
    one-hot pick (`train.losses.label_logits`); the light-node scope is still a K-wide gather of
    the children's logits (`take_along_axis` over V), untried on a vocab-sharded Explicit mesh."""
    z = logits.astype(jnp.float32)
    z_target = label_logits(z, targets)  # the shared sharding-safe pick (ignored targets clipped, then zeroed)
    full = jax.nn.logsumexp(z, axis=-1)

    node = jnp.maximum(span_node, 0)
    toks, _, valid = child_window(trie, node)  # [B, T, K]
    z_kids = jnp.take_along_axis(z, jnp.where(valid, toks, 0), axis=-1)
    light = jax.nn.logsumexp(jnp.where(valid, z_kids, -jnp.inf), axis=-1)
    hid = trie.heavy_id[node]
    heavy = jax.nn.logsumexp(jnp.where(trie.heavy_allowed[jnp.maximum(hid, 0)], z, -jnp.inf), axis=-1)
    scoped = jnp.where(hid >= 0, heavy, light)
    lse = jnp.where(span_node >= 0, scoped, full)
    return jnp.where(targets >= 0, lse - z_target, 0.0)
