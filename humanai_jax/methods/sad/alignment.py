"""The two alignment steps of SaD and the late fusion (spec sad.md §3, §5, §6).

  S->D: B = X W_origin (train positives NOT masked, as released); for each item the `n_per_item` users
        with the largest B[:, i] become extra (user, item) training pairs for the dense model,
        appended after the real pairs.
  D->S: P = E_U E_I^T (not masked); M = top-K1 items per user OR top-K2 users per item;
        Q = X + alpha * M (entries in {0, alpha, 1, 1 + alpha}); the sparse model is refit on Q.
  Fusion: score = beta * (Q_test W_D2S) + E_U E_I^T, train items masked at ranking time.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from humanai_jax.recsys import ranking
from humanai_jax.recsys.neighbors import item_item_columns_fn


def sparse_to_dense_pairs(
    x: sp.csr_matrix,
    w_origin,
    n_per_item: int = 5,
    *,
    exclude_train_positives: bool = False,
    dedup_augmentation: bool = False,
    prefer_high_index: bool = True,
    block: int = 512,
) -> tuple[np.ndarray, dict]:
    """Pseudo-positive pairs [n_items * n_per_item (fewer if dedup), 2] ordered by item, then by
    ascending SLIM score (the reference's `argsort(...)[-5:]`).

    exclude_train_positives: mask train pairs before picking (all picks are new pairs).
    dedup_augmentation: drop picked pairs that are already train positives (the released code keeps
      them: about 90% of its pairs on ML1M_m1 duplicate a positive, docs/sad.md §7 #4).
    """
    n_users, n_items = x.shape
    columns = item_item_columns_fn(x, w_origin)
    x_csc = sp.csc_matrix(x)

    def scores(items):
        s = columns(items)
        if exclude_train_positives:
            s = jnp.where(jnp.asarray(x_csc[:, items].toarray()) > 0, -jnp.inf, s)
        return s

    top = ranking.top_users_per_item(scores, n_items, n_per_item, block, prefer_high_index)  # [I, k] desc
    users = top[:, ::-1].reshape(-1)  # ascending score, as argsort(...)[-k:] lists them
    items = np.repeat(np.arange(n_items), n_per_item)
    is_positive = np.asarray(x[users, items]).ravel() > 0
    stats = {"added": int(len(users)), "duplicates_of_train": int(is_positive.sum())}
    if dedup_augmentation:
        users, items = users[~is_positive], items[~is_positive]
    stats["kept"] = int(len(users))
    return np.stack([users, items], 1).astype(np.int32), stats


def dense_enrichment(eu: jax.Array, ei: jax.Array, k_user: int, k_item: int, *, block: int = 1024,
                     prefer_high_index: bool = False) -> sp.csr_matrix:
    """M [n_users, n_items] 0/1 CSR: top-`k_user` items per user OR top-`k_item` users per item of
    P = eu ei^T (eu [U, D], ei [I, D]); K = 0 contributes nothing."""
    n_users, n_items = eu.shape[0], ei.shape[0]
    rows, cols = [], []
    if k_user > 0:
        mm = jax.jit(lambda u: eu[u] @ ei.T)
        top = ranking.rank_users(lambda u: mm(jnp.asarray(u)), n_users, n_items, None, k_user, block,
                                 prefer_high_index)
        rows.append(np.repeat(np.arange(n_users), k_user))
        cols.append(top.reshape(-1))
    if k_item > 0:
        mm_t = jax.jit(lambda i: eu @ ei[i].T)
        top = ranking.top_users_per_item(lambda i: mm_t(jnp.asarray(i)), n_items, k_item, block,
                                         prefer_high_index)
        rows.append(top.reshape(-1))
        cols.append(np.repeat(np.arange(n_items), k_item))
    if not rows:
        return sp.csr_matrix((n_users, n_items), dtype=np.float32)
    r, c = np.concatenate(rows), np.concatenate(cols)
    m = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def enriched_matrix(x: sp.csr_matrix, m: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Q = X + alpha * M [n_users, n_items] (CSR, float32)."""
    return sp.csr_matrix(x + alpha * m, dtype=np.float32)


def fused_rows_fn(sparse_rows: Callable, dense_rows: Callable, beta: float) -> Callable:
    """Row score function beta * sparse + dense."""
    return lambda users: beta * sparse_rows(users) + dense_rows(users)


def sweep_fusion(sparse_rows: Callable, dense_rows: Callable, betas, train: sp.csr_matrix,
                 target: sp.csr_matrix, ks=(20, 50), block: int = 1024) -> dict[float, dict]:
    """Metrics of beta * sparse + dense on `target` for every beta, computing each block's two score
    matrices once. Returns {beta: metrics}."""
    n_users, n_items = train.shape
    k = max(ks)
    tops = {b: np.empty((n_users, k), np.int32) for b in betas}
    for start in range(0, n_users, block):
        users = np.arange(start, min(start + block, n_users))
        padded = np.concatenate([users, np.full(block - len(users), users[-1])])
        s, d = sparse_rows(padded), dense_rows(padded)
        masked = jnp.asarray(ranking.padded_rows(train, padded, n_items))
        for b in betas:
            _, idx = ranking.masked_top_k(b * s + d, masked, k)
            tops[b][users] = np.asarray(idx)[: len(users)]
    return {b: ranking.ranking_metrics(tops[b], target, ks) for b in betas}
