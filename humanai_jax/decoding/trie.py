"""RecLM-cgen's item prefix tree, flattened into arrays for on-device constrained decoding.

Each catalogue item is the path `[SOI] + title_ids + [EOI]`. Inside a span (after `<SOI>`) only
children of the current trie node may be sampled; after a title's last token the only children
are `<EOI>` (and longer titles sharing the prefix), and reaching an EOI leaf closes the span.
Outside spans decoding is free. Items already recommended in the reply are excluded: a child is
blocked once every item below it was emitted (the reference's `visits[c] < c.count` rule, RecAI
`RecLM-cgen/train_utils/processor.py` `Trie_link.constrain_search_list`).

Layout (STATIC-style CSR, youtube/static-constraint-decoding `csr_utils.py`), built once in numpy:

* items are sorted lexicographically by path, so every node's subtree is a contiguous range of
  item *ranks* `[lo[n], hi[n])`; `count[n] = hi[n] - lo[n]`.
* node arrays `[N]`: `tok` (token leading into the node), `depth` (SOI node = 0), `lo`, `hi`,
  `leaf_rank` (rank at EOI nodes, else -1), `heavy_id` (-1 for light nodes).
* CSR children sorted by token: `indptr [N+1]`, `child_tok [E+K]`, `child_node [E+K]` (padded by
  K so a K-wide window read never leaves the array).
* nodes with more than `window` (K) children are *heavy*: dense rows `heavy_allowed [H, V]` bool
  and `heavy_child [H, V]` int32 (-1 = no child). The SOI node is always heavy.
* `item_path [I, Lmax+2]`: node ids along each item's path by depth (-1 padded).
* `rank_to_item [I]` maps sorted rank back to the caller's item index.

Per step: an O(B·K) window gather (light) or a row gather (heavy), an O(B·R²) de-dup over the
reply's emitted items, and the O(B·V) select every logits mask needs. Nothing leaves the device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

_ARRAY_FIELDS = (
    "tok", "depth", "lo", "hi", "leaf_rank", "heavy_id", "indptr", "child_tok", "child_node",
    "heavy_allowed", "heavy_child", "item_path", "rank_to_item",
)


@dataclasses.dataclass(frozen=True)
class ItemTrie:
    """Flattened item trie (see module docstring). Array leaves may be numpy (host) or jax
    (device; `to_device()`); the ints are static."""

    tok: jax.Array
    depth: jax.Array
    lo: jax.Array
    hi: jax.Array
    leaf_rank: jax.Array
    heavy_id: jax.Array
    indptr: jax.Array
    child_tok: jax.Array
    child_node: jax.Array
    heavy_allowed: jax.Array
    heavy_child: jax.Array
    item_path: jax.Array
    rank_to_item: jax.Array
    soi_id: int
    eoi_id: int
    vocab_size: int
    window: int
    num_items: int

    @property
    def num_nodes(self) -> int:
        return int(self.tok.shape[0])

    @property
    def num_heavy(self) -> int:
        return int(self.heavy_allowed.shape[0])

    def nbytes(self) -> dict[str, int]:
        """Bytes per array (and `total`): the memory the trie occupies on the device."""
        sizes = {f: int(np.asarray(getattr(self, f)).nbytes) for f in _ARRAY_FIELDS}
        sizes["total"] = sum(sizes.values())
        return sizes

    def to_device(self) -> ItemTrie:
        return jax.tree.map(jnp.asarray, self)

    def to_host(self) -> ItemTrie:
        return jax.tree.map(np.asarray, self)

    # ------------------------------------------------------------------ host-side navigation
    def child(self, node: int, token: int) -> int:
        """Host lookup: the child of `node` reached by `token`, or -1."""
        a, b = int(self.indptr[node]), int(self.indptr[node + 1])
        toks = np.asarray(self.child_tok[a:b])
        j = int(np.searchsorted(toks, token))
        return int(self.child_node[a + j]) if j < len(toks) and toks[j] == token else -1

    def title_tokens(self) -> np.ndarray:
        """Host: the sorted distinct token ids that occur inside titles (not SOI/EOI)."""
        depth, leaf = np.asarray(self.depth), np.asarray(self.leaf_rank)
        return np.unique(np.asarray(self.tok)[(depth >= 1) & (leaf < 0)])

    def children_tokens(self, node: int) -> np.ndarray:
        a, b = int(self.indptr[node]), int(self.indptr[node + 1])
        return np.asarray(self.child_tok[a:b])


jax.tree_util.register_dataclass(
    ItemTrie,
    data_fields=list(_ARRAY_FIELDS),
    meta_fields=["soi_id", "eoi_id", "vocab_size", "window", "num_items"],
)


def build_item_trie(
    titles: Sequence[Sequence[int]],
    *,
    soi_id: int,
    eoi_id: int,
    vocab_size: int,
    window: int = 64,
) -> ItemTrie:
    """Builds the flattened trie over `[soi] + titles[i] + [eoi]` (host numpy arrays).

    Args:
      titles: per item, its title token ids (`tokenizer(title, add_special_tokens=False)`).
      soi_id, eoi_id: the control tokens; they may not occur inside titles.
      vocab_size: the model's V (rows of the logits), which may exceed `len(tokenizer)`.
      window: K, the widest light node; nodes with more children get a dense row.
    Raises ValueError on empty titles, out-of-vocabulary ids, control tokens inside a title and
    duplicate titles (the reference makes titles unique with " (k)" suffixes).
    """
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    # An out-of-range control id would make the mask writes drop silently (every row unconstrained) or
    # fail deep in numpy; equal ids would make every span close where it opens.
    for name, cid in (("soi_id", soi_id), ("eoi_id", eoi_id)):
        if not 0 <= int(cid) < vocab_size:
            raise ValueError(f"{name} {cid} is outside the vocabulary [0, {vocab_size})")
    if int(soi_id) == int(eoi_id):
        raise ValueError(f"soi_id and eoi_id must differ, both are {soi_id}")
    paths = []
    for i, ids in enumerate(titles):
        ids = [int(t) for t in ids]
        if not ids:
            raise ValueError(f"item {i} has an empty title")
        bad = [t for t in ids if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"item {i} has token ids outside [0, {vocab_size}): {bad}")
        if soi_id in ids or eoi_id in ids:
            raise ValueError(f"item {i} contains the SOI/EOI control token inside its title: {ids}")
        paths.append(tuple([soi_id] + ids + [eoi_id]))
    if not paths:
        raise ValueError("the catalogue is empty")
    order = sorted(range(len(paths)), key=paths.__getitem__)
    for a, b in zip(order, order[1:]):
        if paths[a] == paths[b]:
            raise ValueError(f"items {a} and {b} have the same title tokens {list(paths[a][1:-1])}")

    num_items = len(paths)
    max_len = max(len(p) for p in paths)
    item_path = np.full((num_items, max_len), -1, np.int32)
    tok, depth, lo, hi, leaf_rank, parent = [], [], [], [], [], []

    def new_node(token, d, rank, par):
        tok.append(token), depth.append(d), lo.append(rank), hi.append(rank + 1)
        leaf_rank.append(-1), parent.append(par)
        return len(tok) - 1

    prev: tuple[int, ...] = ()
    stack: list[int] = []  # node ids along the previous path
    for rank, item in enumerate(order):
        path = paths[item]
        common = 0
        while common < min(len(prev), len(path)) and prev[common] == path[common]:
            common += 1
        del stack[common:]
        for d in range(common):
            hi[stack[d]] = rank + 1
        for d in range(common, len(path)):
            stack.append(new_node(path[d], d, rank, stack[-1] if stack else -1))
        leaf_rank[stack[-1]] = rank
        item_path[rank, : len(path)] = stack
        prev = path

    tok = np.asarray(tok, np.int32)
    parent = np.asarray(parent, np.int64)
    n = len(tok)
    # Nodes were created in depth-first, token-sorted order, so children of a node appear in
    # increasing token order when grouped by parent with a stable sort.
    child_ids = np.nonzero(parent >= 0)[0]
    by_parent = child_ids[np.argsort(parent[child_ids], kind="stable")]
    fanout = np.bincount(parent[child_ids], minlength=n)
    indptr = np.concatenate([[0], np.cumsum(fanout)]).astype(np.int32)
    pad = np.full(window, -1, np.int32)
    child_tok = np.concatenate([tok[by_parent], pad]).astype(np.int32)
    child_node = np.concatenate([by_parent.astype(np.int32), pad])

    heavy_nodes = np.nonzero((fanout > window) | (np.arange(n) == 0))[0]
    heavy_id = np.full(n, -1, np.int32)
    heavy_id[heavy_nodes] = np.arange(len(heavy_nodes), dtype=np.int32)
    heavy_allowed = np.zeros((len(heavy_nodes), vocab_size), bool)
    heavy_child = np.full((len(heavy_nodes), vocab_size), -1, np.int32)
    for h, node in enumerate(heavy_nodes):
        kids = by_parent[indptr[node]: indptr[node + 1]]
        heavy_allowed[h, tok[kids]] = True
        heavy_child[h, tok[kids]] = kids

    return ItemTrie(
        tok=tok,
        depth=np.asarray(depth, np.int32),
        lo=np.asarray(lo, np.int32),
        hi=np.asarray(hi, np.int32),
        leaf_rank=np.asarray(leaf_rank, np.int32),
        heavy_id=heavy_id,
        indptr=indptr,
        child_tok=child_tok,
        child_node=child_node,
        heavy_allowed=heavy_allowed,
        heavy_child=heavy_child,
        item_path=item_path,
        rank_to_item=np.asarray(order, np.int32),
        soi_id=int(soi_id),
        eoi_id=int(eoi_id),
        vocab_size=int(vocab_size),
        window=int(window),
        num_items=num_items,
    )


# ---------------------------------------------------------------------------- device lookups
def child_window(trie: ItemTrie, node: jax.Array):
    """`node [...]` -> (`tokens [..., K]`, `nodes [..., K]`, `valid [..., K]`): a light node's
    children (a heavy node's first K children; use the dense row for those)."""
    slots = trie.indptr[node][..., None] + jnp.arange(trie.window, dtype=jnp.int32)
    valid = slots < trie.indptr[node + 1][..., None]
    return trie.child_tok[slots], trie.child_node[slots], valid


def children_mask(trie: ItemTrie, node: jax.Array) -> jax.Array:
    """`node [B]` -> `[B, V]` bool: the tokens of the node's children."""
    toks, _, valid = child_window(trie, node)
    batch = node.shape[0]
    rows = jnp.arange(batch)[:, None]
    light = jnp.zeros((batch, trie.vocab_size), bool).at[rows, jnp.where(valid, toks, trie.vocab_size)].set(
        True, mode="drop"
    )
    hid = trie.heavy_id[node]
    heavy = trie.heavy_allowed[jnp.maximum(hid, 0)]
    return jnp.where((hid >= 0)[:, None], heavy, light)


def next_node(trie: ItemTrie, node: jax.Array, token: jax.Array) -> jax.Array:
    """`node [B]`, `token [B]` -> `[B]` the child reached by `token`, or -1 (off the trie)."""
    toks, nodes, valid = child_window(trie, node)
    match = valid & (toks == token[:, None])
    light = jnp.where(jnp.any(match, -1), jnp.take_along_axis(nodes, jnp.argmax(match, -1)[:, None], -1)[:, 0], -1)
    hid = trie.heavy_id[node]
    heavy = trie.heavy_child[jnp.maximum(hid, 0), token]
    return jnp.where(hid >= 0, heavy, light)
