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
    """Row score function users [b] -> (X W)[users] [b, I]; the X rows stay sparse (scipy CSR)."""
    x = sp.csr_matrix(x, dtype=np.float32)
    w_host = np.asarray(w, np.float32)
    return lambda users: jnp.asarray(x[users] @ w_host)


def item_item_columns_fn(x: sp.spmatrix, w) -> Callable[[np.ndarray], jax.Array]:
    """Column score function items [b] -> (X W)[:, items] [n_users, b]."""
    x = sp.csr_matrix(x, dtype=np.float32)
    w_host = np.asarray(w, np.float32)
    return lambda items: jnp.asarray(x @ w_host[:, items])
