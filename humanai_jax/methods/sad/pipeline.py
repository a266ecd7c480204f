"""The SaD pipeline as one function (spec sad.md §1): the reference's five manual steps in order.

  1. W_origin = sparse(X)                         (SLIM by default; EASE or ItemKNN by config)
  2. dense model on X + S->D pseudo-positives     (model selection on the selection split)
  3. Q = X + alpha * M(dense)                     (D->S enrichment)
  4. W_D2S = sparse(Q)
  5. score = beta * (Q_test W_D2S) + dense        (late fusion)

Protocols (spec §8):
  * "bars": the selection split IS the test set (the dense epoch and beta are picked on test recall),
    as BARS/UltraGCN do for the "_m1" splits; comparable with the leaderboard, optimistic.
  * "honest": everything is selected on a validation split (the data set's own, or 10% of each user's
    train items, seeded); then the pipeline is rerun on train + valid with the chosen dense epoch count
    and beta, and tested once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import scipy.sparse as sp

from humanai_jax.methods.sad import alignment
from humanai_jax.recsys import data as data_lib, dense as dense_lib, neighbors, ranking, slim


def fit_sparse_view(x: sp.csr_matrix, cfg, seed: int):
    """The configured item-item model on x [n_users, n_items] -> (W [I, I], info)."""
    if cfg.model == "slim":
        return slim.fit_slim(x, cfg.alpha, cfg.l1_ratio, seed=seed, max_iter=cfg.max_iter, tol=cfg.tol,
                             topk=cfg.topk, faithful_topk=cfg.faithful_topk, block=cfg.block,
                             selection=cfg.selection)
    if cfg.model == "ease":
        return neighbors.fit_ease(x, cfg.ease_l2), {}
    if cfg.model == "itemknn":
        return neighbors.fit_itemknn(x, cfg.knn_k), {}
    raise ValueError(f"sparse.model={cfg.model!r} is not supported; choose 'slim', 'ease' or 'itemknn'")


def dense_hparams(cfg) -> dense_lib.DenseHParams:
    fields = dense_lib.DenseHParams.__dataclass_fields__
    values = {k: cfg[k] for k in fields if k in cfg and k != "shuffle"}
    return dense_lib.DenseHParams(shuffle=not cfg.faithful_order, **values)


class _Timer:
    def __init__(self):
        self.times: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable, *args, **kwargs):
        start = time.time()
        out = fn(*args, **kwargs)
        jax.block_until_ready(jax.tree_util.tree_leaves(out) if not isinstance(out, np.ndarray) else out)
        self.times[name] = self.times.get(name, 0.0) + time.time() - start
        return out


def run_pipeline(
    x: sp.csr_matrix,
    pairs: np.ndarray,
    target: sp.csr_matrix,
    cfg,
    *,
    fixed: dict | None = None,
    log: Callable[..., Any] | None = None,
    tag: str = "",
) -> dict:
    """Runs steps 1-5 on train `x` [U, I] with train `pairs` [P, 2], evaluating on `target` [U, I].

    Without `fixed`, the dense epoch and beta are selected on `target`; with
    fixed={"dense_epochs": int, "dense_alone_epochs": int, "beta": float} nothing is selected.
    Returns {"metrics": {stage: metrics}, "selected": {...}, "artifacts": {...}, "times": {...}, ...}.
    """
    timer = _Timer()
    n_users, n_items = x.shape
    ks, block = tuple(cfg.eval.ks), cfg.eval.block
    metrics, selected, info = {}, {}, {}
    evaluate = lambda rows: ranking.evaluate(rows, x, target, ks, block)
    log = log or (lambda step, **m: None)

    # 1. sparse view on X
    w_origin, info["sparse_origin"] = timer("sparse_origin", fit_sparse_view, x, cfg.sparse, cfg.seed)
    metrics["sparse_alone"] = timer("eval", evaluate, neighbors.item_item_rows_fn(x, w_origin))

    # 2. S->D pseudo-positives, then the dense model
    s2d = cfg.s2d
    aug, info["s2d"] = timer("s2d", alignment.sparse_to_dense_pairs, x, w_origin, s2d.n_per_item,
                             exclude_train_positives=s2d.exclude_train_positives,
                             dedup_augmentation=s2d.dedup_augmentation,
                             prefer_high_index=s2d.numpy_tie_break)
    hp = dense_hparams(cfg.dense)
    graph = dense_lib.build_graph(x, hp.user_weight)  # degrees before augmentation, as released
    select = lambda eu, ei: evaluate(dense_lib.score_rows_fn(eu, ei))

    def train(train_pairs, name, fixed_epochs, seed_offset):
        def log_dense(epoch, **m):
            log(epoch, **{f"{tag}{name}/{k}": v for k, v in m.items()})

        return dense_lib.train_dense(
            train_pairs, np.ones(len(train_pairs), np.float32), graph, n_users, n_items, hp,
            key=jax.random.PRNGKey(cfg.seed + seed_offset), max_epochs=cfg.dense.max_epochs, select=select,
            eval_every=cfg.dense.eval_every, eval_every_after=cfg.dense.eval_every_after,
            patience=cfg.dense.patience, log=log_dense, fixed_epochs=fixed_epochs)

    if cfg.stages.dense_alone:
        alone = timer("dense_alone", train, pairs, "dense_alone",
                      fixed and fixed.get("dense_alone_epochs"), 1)
        metrics["dense_alone"] = select(alone.user_emb, alone.item_emb)
        selected["dense_alone_epochs"] = alone.best_epoch
    dense = timer("dense", train, np.concatenate([pairs, aug]), "dense_s2d", fixed and fixed["dense_epochs"], 0)
    metrics["dense_s2d"] = timer("eval", select, dense.user_emb, dense.item_emb)
    selected["dense_epochs"] = dense.best_epoch
    info["dense_epochs_run"] = dense.epochs_run

    # 3-4. D->S enrichment and the sparse refit on Q
    d2s = cfg.d2s
    m_train = timer("d2s", alignment.dense_enrichment, dense.user_emb, dense.item_emb, d2s.k_user_train,
                    d2s.k_item_train, block=block)
    q = alignment.enriched_matrix(x, m_train, d2s.alpha)
    m_test = timer("d2s", alignment.dense_enrichment, dense.user_emb, dense.item_emb, d2s.k_user_test,
                   d2s.k_item_test, block=block)
    q_test = alignment.enriched_matrix(x, m_test, d2s.alpha)
    info["d2s"] = {"enriched_train_edges": int(m_train.nnz), "new_train_edges": int((m_train - m_train.multiply(x)).nnz),
                   "enriched_test_edges": int(m_test.nnz)}
    w_d2s, info["sparse_d2s"] = timer("sparse_d2s", fit_sparse_view, q, cfg.sparse, cfg.seed + 1)
    sparse_rows = neighbors.item_item_rows_fn(q_test, w_d2s)
    metrics["sparse_d2s"] = timer("eval", evaluate, sparse_rows)

    # 5. late fusion: the coded beta, and beta selected on `target` (or fixed)
    dense_rows = dense_lib.score_rows_fn(dense.user_emb, dense.item_emb)
    betas = [float(b) for b in cfg.fusion.beta_grid] if fixed is None else []
    betas = sorted(set(betas + [float(cfg.fusion.beta)] + ([float(fixed["beta"])] if fixed else [])))
    sweep = timer("fusion", alignment.sweep_fusion, sparse_rows, dense_rows, betas, x, target, ks, block)
    metrics["sad_coded_beta"] = sweep[float(cfg.fusion.beta)]
    if fixed is None:
        best_beta = max(betas, key=lambda b: sweep[b]["recall@20"])
    else:
        best_beta = float(fixed["beta"])
    metrics["sad"] = sweep[best_beta]
    selected["beta"] = best_beta
    beta_sweep = {str(b): {"recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"]} for b, m in sweep.items()}
    return {
        "metrics": metrics,
        "selected": selected,
        "info": info,
        "beta_sweep": beta_sweep,
        "times": timer.times,
        "artifacts": {"w_origin": w_origin, "w_d2s": w_d2s, "q": q, "q_test": q_test,
                      "user_emb": dense.user_emb, "item_emb": dense.item_emb, "dense_history": dense.history,
                      "sparse_rows": sparse_rows, "dense_rows": dense_rows},
    }


def run_protocol(data: data_lib.Interactions, cfg, log=None) -> dict:
    """Runs the configured protocol; returns run_pipeline's dict for the final (tested) run, plus
    "selection" (the honest protocol's validation-run metrics and choices)."""
    if cfg.protocol == "bars":
        out = run_pipeline(data.train, data.train_pairs, data.test, cfg, log=log)
        out["selection_split"] = "test"
        return out
    if cfg.protocol != "honest":
        raise ValueError(f"protocol={cfg.protocol!r} is not supported; choose 'bars' or 'honest'")
    if data.valid is None:
        split = data_lib.carve_validation(data, cfg.valid_fraction, cfg.seed)
    else:
        split = data
    chosen = run_pipeline(split.train, split.train_pairs, split.valid, cfg, log=log, tag="select/")
    full_train = (split.train + split.valid).tocsr()
    full_train.data[:] = 1.0
    valid_coo = split.valid.tocoo()
    full_pairs = np.concatenate([split.train_pairs, np.stack([valid_coo.row, valid_coo.col], 1).astype(np.int32)])
    fixed = {"dense_epochs": max(chosen["selected"]["dense_epochs"], 1), "beta": chosen["selected"]["beta"],
             "dense_alone_epochs": max(chosen["selected"].get("dense_alone_epochs", 1), 1)}
    out = run_pipeline(full_train, full_pairs, data.test, cfg, fixed=fixed, log=log, tag="final/")
    out["selection_split"] = "valid (given)" if data.valid is not None else f"valid (carved {cfg.valid_fraction})"
    out["selection"] = {"metrics_on_valid": chosen["metrics"], "selected": chosen["selected"],
                        "beta_sweep_on_valid": chosen["beta_sweep"], "times": chosen["times"]}
    out["train_matrix"] = full_train
    return out
