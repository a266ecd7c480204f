"""Closed-form and neighbourhood item-item models, alternatives to SLIM as the sparse view.

Both return a dense [I, I] weight matrix W with zero diagonal; the score is S = X W.
  * EASE^R (Steck 2019, arXiv 1905.03375): P = (X^T X + lambda I)^-1, W_ij = -P_ij / P_jj, W_jj = 0.
  * ItemKNN: cosine similarity G_ij / sqrt(G_ii G_jj), top-k neighbours kept per column.
Item-item scoring helpers for sparse X live here too.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from humanai_jax.recsys.slim import gram


@jax.jit
def ease_from_gram(gram_mat, l2):
    """EASE weights from G = X^T X [I, I] and the ridge strength `l2` -> W [I, I] (dense, may be < 0)."""
    n = gram_mat.shape[0]
    p = jnp.linalg.inv(gram_mat + l2 * jnp.eye(n, dtype=gram_mat.dtype))
    w = -p / jnp.diagonal(p)[None, :]
    return w * (1.0 - jnp.eye(n, dtype=w.dtype))


def fit_ease(x: sp.spmatrix, l2: float = 500.0) -> jax.Array:
    return ease_from_gram(jnp.asarray(gram(x)), l2)


def fit_itemknn(x: sp.spmatrix, k: int = 100, shrink: float = 0.0) -> jax.Array:
    """Cosine item-item similarity [I, I], top-k per column, zero diagonal."""
    g = jnp.asarray(gram(x))
    norms = jnp.sqrt(jnp.diagonal(g))
    sim = g / (norms[:, None] * norms[None, :] + shrink + 1e-12)
    sim = sim * (1.0 - jnp.eye(g.shape[0], dtype=g.dtype))
    k = min(k, g.shape[0])
    values, idx = jax.lax.top_k(sim.T, k)  # [I, k] top neighbours of each column
    cols = jnp.broadcast_to(jnp.arange(g.shape[0])[:, None], idx.shape)
    return jnp.zeros_like(sim).at[idx, cols].set(values)


def item_item_rows_fn(x: sp.spmatrix, w) -> Callable[[np.ndarray], jax.Array]:
    """Row score function users [b] -> (X W)[users] [b, I]; the X rows stay sparse (scipy CSR).

    W [I, I] is dense (array) or sparse (scipy, e.g. from `fit_itemknn_sparse`); only the [b, I] block of
    scores is ever dense."""
    x = sp.csr_matrix(x, dtype=np.float32)
    if sp.issparse(w):
        w_csr = sp.csr_matrix(w, dtype=np.float32)
        return lambda users: jnp.asarray((x[users] @ w_csr).toarray())
    w_host = np.asarray(w, np.float32)
    return lambda users: jnp.asarray(x[users] @ w_host)


def item_item_columns_fn(x: sp.spmatrix, w) -> Callable[[np.ndarray], jax.Array]:
    """Column score function items [b] -> (X W)[:, items] [n_users, b] (W dense or scipy sparse)."""
    x = sp.csr_matrix(x, dtype=np.float32)
    if sp.issparse(w):
        w_csc = sp.csc_matrix(w, dtype=np.float32)
        return lambda items: jnp.asarray((x @ w_csc[:, items]).toarray())
    w_host = np.asarray(w, np.float32)
    return lambda items: jnp.asarray(x @ w_host[:, items])


def gram_columns(x_csc: sp.csc_matrix, items: np.ndarray) -> np.ndarray:
    """(X^T X)[:, items] as a dense float32 [I, b] block, from sparse X (never the whole I x I Gram)."""
    return np.asarray((x_csc.T @ x_csc[:, items]).toarray(), np.float32)


def top_per_column(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row ids [k, b] and values [k, b] of the k largest entries of each column of `block` [n, b],
    sorted descending; among ties the lower row id wins, as `lax.top_k` (so blocked and dense fits agree)."""
    n, b = block.shape
    k = min(k, n)
    kth = -np.partition(-block, k - 1, axis=0)[k - 1]  # [b] the k-th largest value of each column
    greater = block > kth[None, :]
    equal = block == kth[None, :]
    room = k - greater.sum(0)  # how many of the tied entries each column still takes, lowest rows first
    chosen = greater | (equal & (np.cumsum(equal, axis=0) <= room[None, :]))
    cols, rows = np.nonzero(chosen.T)  # column-major: exactly k rows per column, ascending
    rows = rows.reshape(b, k).T
    vals = np.take_along_axis(block, rows, 0)
    order = np.lexsort((rows, -vals), axis=0)
    return np.take_along_axis(rows, order, 0), np.take_along_axis(vals, order, 0)


def top_per_column_sparse(mat: sp.spmatrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`top_per_column` of a sparse [n, b] matrix without densifying it: the k largest stored entries of each
    column (ties: lower row first), padded with (row 0, value 0) where a column stores fewer than k.
    Returns rows [k, b], values [k, b]."""
    m = sp.csc_matrix(mat)
    m.sum_duplicates()
    n, b = m.shape
    k = min(k, n)
    counts = np.diff(m.indptr)
    col = np.repeat(np.arange(b), counts)
    order = np.lexsort((m.indices, -m.data, col))  # by column, then value descending, then row ascending
    starts = np.repeat(m.indptr[:-1], counts)
    rank = np.arange(len(order)) - starts  # position within its column after sorting
    keep = rank < k
    rows = np.zeros((k, b), np.int64)
    vals = np.zeros((k, b), m.dtype)
    rows[rank[keep], col[keep]] = m.indices[order][keep]
    vals[rank[keep], col[keep]] = m.data[order][keep]
    return rows, vals


def fit_itemknn_sparse(x: sp.spmatrix, k: int = 100, shrink: float = 0.0, block: int = 1024) -> sp.csc_matrix:
    """`fit_itemknn` without any I x I array: cosine similarities are computed from sparse X one block of
    `block` items at a time ([I, block] floats), and only the top-k per column are kept.

    Returns a scipy CSC [I, I] with <= k non-zeros (all > 0) per column and zero diagonal; equal to
    `fit_itemknn` up to ties and float rounding. Memory: O(I * block + I * k).
    """
    x_csc = sp.csc_matrix(x, dtype=np.float32)
    n_items = x_csc.shape[1]
    norms = np.sqrt(np.asarray(x_csc.multiply(x_csc).sum(0)).ravel()).astype(np.float32)
    rows, cols, vals = [], [], []
    for start in range(0, n_items, block):
        items = np.arange(start, min(start + block, n_items))
        g = sp.csc_matrix(x_csc.T @ x_csc[:, items])  # [I, b], sparse: only co-occurring items
        g.data /= norms[g.indices] * norms[items][np.repeat(np.arange(len(items)), np.diff(g.indptr))] \
            + shrink + 1e-12
        g = g.tocoo()
        off_diag = g.row != items[g.col]
        g = sp.csc_matrix((g.data[off_diag], (g.row[off_diag], g.col[off_diag])), shape=g.shape)
        idx, val = top_per_column_sparse(g, k)
        keep = val > 0
        rows.append(idx[keep])
        cols.append(np.broadcast_to(items[None, :], idx.shape)[keep])
        vals.append(val[keep])
    return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_items, n_items), dtype=np.float32)
