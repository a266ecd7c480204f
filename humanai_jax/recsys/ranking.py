"""Blocked top-k over score matrices that are never materialised, and full-ranking metrics.

A "row score function" maps a block of user ids [b] to scores [b, n_items]; a "column score function"
maps a block of item ids [b] to scores [n_users, b]. The helpers here loop over blocks, so a
U x I score matrix (1e9+ entries on Gowalla/Amazon) is never held at once.

Metrics follow the BARS/UltraGCN convention (spec sad.md §8): full ranking over all items, the user's
training items masked with -inf, averaged over ALL users (users without test items count as 0).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

RowScoreFn = Callable[[np.ndarray], jax.Array]  # [b] user ids -> [b, n_items]
ColumnScoreFn = Callable[[np.ndarray], jax.Array]  # [b] item ids -> [n_users, b]


def top_k(x: jax.Array, k: int, prefer_high_index: bool = False) -> tuple[jax.Array, jax.Array]:
    """`lax.top_k` over the last axis with an explicit tie rule.

    Default: score descending, lower index first among ties (what `lax.top_k` does).
    `prefer_high_index=True` mimics the reference's `numpy.argsort(x)[-k:]`, which takes the highest
    indices among ties: run top_k on the reversed axis and map indices back with n-1-idx.
    """
    if not prefer_high_index:
        return jax.lax.top_k(x, k)
    n = x.shape[-1]
    values, idx = jax.lax.top_k(x[..., ::-1], k)
    return values, n - 1 - idx


def check_k(k: int, n: int, what: str) -> None:
    """A top-k over n candidates needs 1 <= k <= n: a clear error instead of a deep `top_k` failure."""
    if not 1 <= k <= n:
        raise ValueError(f"top-{k} asked for, but there are only {n} {what} to rank (need 1 <= k <= {n})")


def padded_rows(mat: sp.csr_matrix, rows: np.ndarray, pad_value: int, min_width: int = 1) -> np.ndarray:
    """The column indices of CSR `rows` as a [len(rows), width] int32 array padded with `pad_value`.

    The width is rounded up to a power of two so that jitted consumers see few distinct shapes.
    """
    lengths = np.diff(mat.indptr)[rows]
    width = max(min_width, int(lengths.max(initial=0)))
    width = 1 << (width - 1).bit_length()
    out = np.full((len(rows), width), pad_value, np.int32)
    for r, row in enumerate(rows):
        cols = mat.indices[mat.indptr[row] : mat.indptr[row + 1]]
        out[r, : len(cols)] = cols
    return out


@functools.partial(jax.jit, static_argnames=("k", "prefer_high_index"))
def masked_top_k(scores, masked_items, k: int, prefer_high_index: bool = False):
    """scores [b, n_items]; masked_items [b, w] int32 (pad = n_items, dropped) -> top-k ([b, k], [b, k])."""
    rows = jnp.arange(scores.shape[0])[:, None]
    scores = scores.at[rows, masked_items].set(-jnp.inf, mode="drop")
    return top_k(scores, k, prefer_high_index)


def _user_blocks(n_users: int, block: int):
    for start in range(0, n_users, block):
        users = np.arange(start, min(start + block, n_users))
        # Pad the last block to the full size so the jitted kernels compile once.
        padded = np.concatenate([users, np.full(block - len(users), users[-1])]) if len(users) < block else users
        yield users, padded


def rank_users(
    score_rows: RowScoreFn,
    n_users: int,
    n_items: int,
    mask: sp.csr_matrix | None,
    k: int,
    block: int = 1024,
    prefer_high_index: bool = False,
) -> np.ndarray:
    """Top-k item ids per user [n_users, k], items in `mask` (e.g. train) excluded. Blocked over users."""
    check_k(k, n_items, "items")
    out = np.empty((n_users, k), np.int32)
    for users, padded in _user_blocks(n_users, block):
        scores = score_rows(padded)
        if mask is not None:
            masked = padded_rows(mask, padded, n_items)
        else:
            masked = np.full((len(padded), 1), n_items, np.int32)
        _, idx = masked_top_k(scores, jnp.asarray(masked), k, prefer_high_index)
        out[users[0] : users[-1] + 1] = np.asarray(idx)[: len(users)]
    return out


def top_users_per_item(
    score_columns: ColumnScoreFn,
    n_items: int,
    k: int,
    block: int = 512,
    prefer_high_index: bool = False,
) -> np.ndarray:
    """Top-k user ids per item [n_items, k] of a U x I score matrix, blocked over items."""
    out = np.empty((n_items, k), np.int32)
    topk = jax.jit(lambda s: top_k(s.T, k, prefer_high_index)[1])
    for start in range(0, n_items, block):
        items = np.arange(start, min(start + block, n_items))
        padded = np.concatenate([items, np.full(block - len(items), items[-1])]) if len(items) < block else items
        scores = score_columns(padded)
        check_k(k, scores.shape[0], "users")
        out[start : start + len(items)] = np.asarray(topk(scores))[: len(items)]
    return out


# ----------------------------------------------------------------------------- metrics


def hit_matrix(top_items: np.ndarray, test: sp.csr_matrix) -> np.ndarray:
    """[n_users, k] bool: whether the item at each rank is a test item of that user."""
    n_users, k = top_items.shape
    n_items = test.shape[1]
    coo = test.tocoo()
    test_keys = coo.row.astype(np.int64) * n_items + coo.col
    keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + top_items
    return np.isin(keys, test_keys)


def ranking_metrics(top_items: np.ndarray, test: sp.csr_matrix, ks: Sequence[int] = (20, 50)) -> dict[str, float]:
    """Recall, NDCG, Precision, HitRate @k averaged over all users (no-test users contribute 0).

    Recall@k = |top_k ∩ T_u| / max(|T_u|, 1); NDCG@k uses binary gains 1/log2(rank+1) and an IDCG
    over min(|T_u|, k) slots (IDCG = 0 gives 0).
    """
    hits = hit_matrix(top_items, test).astype(np.float64)
    n_test = np.diff(test.indptr).astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    out = {}
    for k in ks:
        if k > hits.shape[1]:
            raise ValueError(f"metric @{k} needs top-{k} lists, got top-{hits.shape[1]}")
        h = hits[:, :k]
        n_hit = h.sum(1)
        dcg = h @ discounts[:k]
        ideal = np.cumsum(discounts[:k])
        n_ideal = np.minimum(n_test, k).astype(int)
        idcg = np.where(n_ideal > 0, ideal[np.maximum(n_ideal - 1, 0)], 0.0)
        out[f"recall@{k}"] = float(np.mean(n_hit / np.maximum(n_test, 1)))
        out[f"ndcg@{k}"] = float(np.mean(np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1), 0.0)))
        out[f"precision@{k}"] = float(np.mean(n_hit / k))
        out[f"hitrate@{k}"] = float(np.mean(n_hit > 0))
    return out


def evaluate(
    score_rows: RowScoreFn,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    ks: Sequence[int] = (20, 50),
    block: int = 1024,
) -> dict[str, float]:
    """Full-ranking evaluation: masks `train`, ranks all items, averages over all users."""
    top = rank_users(score_rows, train.shape[0], train.shape[1], train, max(ks), block)
    return ranking_metrics(top, test, ks)
