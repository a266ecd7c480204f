"""SLIM on ML1M_m1: our JAX coordinate descent vs the reference's per-item scikit-learn loop.

  python experiments/benchmarks/sad_slim.py [--data ../shared/data/recsys/ml1m_m1] [--skip-sklearn]

Both use the reference settings (alpha=0.01, l1_ratio=1e-4, positive, max_iter=100, tol=1.0,
selection='random', top-100 per column with the off-by-one). Prints wall time, non-zeros, sweeps and
Recall/NDCG@20 (train items masked, all users) side by side with ratios. The reference figure
(scikit-learn 1.5.2, spec sad.md §2) is 0.2558 / 0.2494 with 304,081 non-zeros.
Reads ../shared/data/recsys/ml1m_m1/{train,test}.txt.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from humanai_jax import host  # noqa: E402
from humanai_jax.recsys import data, neighbors, ranking, slim  # noqa: E402


def sklearn_slim(x, alpha, l1_ratio, topk=100):
    """The daisyRec/BARS SLIM loop (as in SaD's slimtest.py), with `.toarray()` for SciPy >= 1.14."""
    from sklearn.linear_model import ElasticNet

    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, positive=True, fit_intercept=False, copy_X=False,
                       precompute=True, selection="random", max_iter=100, tol=1.0)
    x = x.tocsc(copy=True)
    n_items = x.shape[1]
    w = np.zeros((n_items, n_items), np.float32)
    for j in range(n_items):
        y = x[:, j].toarray()
        start, end = x.indptr[j], x.indptr[j + 1]
        saved = x.data[start:end].copy()
        x.data[start:end] = 0.0
        model.fit(x, y)
        x.data[start:end] = saved
        idx, val = model.sparse_coef_.indices, model.sparse_coef_.data
        keep = min(len(val) - 1, topk)
        if keep > 0:
            top = (-val).argpartition(keep)[:keep]
            w[idx[top], j] = val[top]
    return w


def evaluate(d, w):
    return ranking.evaluate(neighbors.item_item_rows_fn(d.train, w), d.train, d.test, ks=(20,))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/recsys/ml1m_m1"))
    ap.add_argument("--skip-sklearn", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.data, "train.txt")):
        raise SystemExit(f"{args.data}/train.txt not found (see ../shared/data/README.md)")
    d = data.load_lightgcn_text(args.data)
    print(f"data: {d.summary()}  load average: {os.getloadavg()}  cpus: {os.cpu_count()}")
    start = time.time()
    w, info = slim.fit_slim(d.train, 0.01, 1e-4)
    w.block_until_ready()
    ours_t = time.time() - start
    ours = evaluate(d, w)
    print(f"ours (JAX, incl. compile): {ours_t:.1f} s, {info}, recall@20 {ours['recall@20']:.4f}, "
          f"ndcg@20 {ours['ndcg@20']:.4f}")
    if args.skip_sklearn:
        return
    import sklearn

    start = time.time()
    w_ref = sklearn_slim(d.train, 0.01, 1e-4)
    ref_t = time.time() - start
    ref = evaluate(d, w_ref)
    print(f"scikit-learn {sklearn.__version__}: {ref_t:.1f} s, nnz {int((w_ref > 0).sum())}, "
          f"recall@20 {ref['recall@20']:.4f}, ndcg@20 {ref['ndcg@20']:.4f}")
    print(f"ratios ours/sklearn: time {ours_t / ref_t:.2f}x, recall@20 {ours['recall@20'] / ref['recall@20']:.4f}, "
          f"ndcg@20 {ours['ndcg@20'] / ref['ndcg@20']:.4f}; load average now {os.getloadavg()}")


if __name__ == "__main__":
    host.reexec_with_malloc_tunables()  # before any work: see humanai_jax/host.py
    main()
