"""Per-popularity-bucket diagnostics: recall and the signal-to-noise ratio SaD argues about.

Items are split into `n_buckets` groups of equal size by train degree (bucket 0 = the long tail).
For each score function (sparse, dense, fused):
  * recall_b = (top-k hits on bucket-b test items) / (test interactions on bucket-b items),
  * SNR_b = E[d] / sqrt(Var d), d = s(u, i+) - s(u, j), over test pairs (u, i+) with i+ in bucket b and
    one negative j per pair drawn uniformly from the items u has neither in train nor in test.
SNR is invariant to scaling a model's scores, so sparse, dense and fused values are comparable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from humanai_jax.recsys import ranking


def popularity_buckets(train: sp.csr_matrix, n_buckets: int = 5) -> np.ndarray:
    """[n_items] bucket id in 0..n_buckets-1 by ascending train degree (ties by item id)."""
    degree = np.asarray(train.sum(0)).ravel()
    order = np.lexsort((np.arange(len(degree)), degree))
    bucket = np.empty(len(degree), np.int32)
    bucket[order] = np.arange(len(degree)) * n_buckets // len(degree)
    return bucket


def sample_negatives(train: sp.csr_matrix, test: sp.csr_matrix, users: np.ndarray, seed: int = 0,
                     rounds: int = 8) -> np.ndarray:
    """One uniform negative per entry of `users` [n], avoiding that user's train and test items."""
    rng = np.random.default_rng(seed)
    n_items = train.shape[1]
    known = (train + test).tocsr()
    known_keys = np.sort(known.tocoo().row.astype(np.int64) * n_items + known.tocoo().col)
    neg = rng.integers(0, n_items, len(users))
    for _ in range(rounds):
        bad = np.isin(users.astype(np.int64) * n_items + neg, known_keys)
        if not bad.any():
            break
        neg[bad] = rng.integers(0, n_items, int(bad.sum()))
    return neg


def bucket_diagnostics(score_fns: Mapping[str, Callable], train: sp.csr_matrix, test: sp.csr_matrix,
                       n_buckets: int = 5, k: int = 20, block: int = 1024, seed: int = 0) -> dict:
    """{"buckets": {...}, <model>: {"recall": [n_buckets], "snr": [n_buckets], "mean_d", "std_d"}}."""
    n_users, n_items = train.shape
    bucket = popularity_buckets(train, n_buckets)
    coo = test.tocoo()
    pair_users, pair_items = coo.row, coo.col
    pair_neg = sample_negatives(train, test, pair_users, seed)
    test_per_bucket = np.bincount(bucket[pair_items], minlength=n_buckets)
    out = {"buckets": {"n_items": np.bincount(bucket, minlength=n_buckets).tolist(),
                       "test_pairs": test_per_bucket.tolist(),
                       "max_train_degree": [int(np.asarray(train.sum(0)).ravel()[bucket == b].max(initial=0))
                                            for b in range(n_buckets)]}}
    for name, rows_fn in score_fns.items():
        hits = np.zeros(n_buckets)
        d_all = np.empty(len(pair_users))
        for start in range(0, n_users, block):
            users = np.arange(start, min(start + block, n_users))
            padded = np.concatenate([users, np.full(block - len(users), users[-1])])
            scores = rows_fn(padded)
            _, top = ranking.masked_top_k(scores, jnp.asarray(ranking.padded_rows(train, padded, n_items)), k)
            top = np.asarray(top)[: len(users)]
            hit = ranking.hit_matrix(top, test[users])
            hits += np.bincount(bucket[top[hit]], minlength=n_buckets)
            sel = (pair_users >= users[0]) & (pair_users <= users[-1])
            s = np.asarray(scores)[: len(users)]
            local = pair_users[sel] - users[0]
            d_all[sel] = s[local, pair_items[sel]] - s[local, pair_neg[sel]]
        recall, snr, mean_d, std_d = [], [], [], []
        for b in range(n_buckets):
            d = d_all[bucket[pair_items] == b]
            recall.append(float(hits[b] / max(test_per_bucket[b], 1)))
            mean_d.append(float(d.mean()) if len(d) else 0.0)
            std_d.append(float(d.std()) if len(d) else 0.0)
            snr.append(mean_d[-1] / std_d[-1] if len(d) and std_d[-1] > 0 else 0.0)
        out[name] = {"recall": recall, "snr": snr, "mean_d": mean_d, "std_d": std_d,
                     "snr_all": float(d_all.mean() / max(d_all.std(), 1e-30))}
    return out


def plot_diagnostics(diag: dict, path: str, k: int = 20) -> str:
    """Two panels (recall@k per bucket, SNR per bucket) as a PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in diag if m != "buckets"]
    n_buckets = len(diag["buckets"]["n_items"])
    x = np.arange(n_buckets)
    width = 0.8 / max(len(models), 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for j, m in enumerate(models):
        axes[0].bar(x + j * width, diag[m]["recall"], width, label=m)
        axes[1].bar(x + j * width, diag[m]["snr"], width, label=m)
    labels = [f"B{b}\n<= {d}" for b, d in enumerate(diag["buckets"]["max_train_degree"])]
    for ax, title in zip(axes, (f"recall@{k} of test items per bucket", "SNR = E[d] / std(d)")):
        ax.set_xticks(x + 0.4 - width / 2, labels)
        ax.set_xlabel("item popularity bucket (max train degree)")
        ax.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
