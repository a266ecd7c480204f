"""The SaD pipeline (spec sad.md §1): the reference's five manual steps in order, plus its ablations.

  1. W_origin = sparse(X)                         (SLIM by default; EASE, ItemKNN or scikit-learn SLIM by config)
  2. dense model on X + S->D pseudo-positives     (the dense epoch is a selected choice)
  3. Q = X + alpha * M(dense)                     (D->S enrichment)
  4. W_D2S = sparse(Q)
  5. score = beta * (Q_test W_D2S) + dense        (late fusion; beta is a selected choice)

`fit_models` fits every stage and returns row score functions; it never sees a test set. Its choices
(dense epochs, beta, the EASE ridge and the ItemKNN k) are either selected on `select_on` or `fixed`.
`evaluate_stages` is the only place that reads the matrix a protocol reports.

Protocols (docs/sad.md §8):
  * "bars": `select_on` IS the test set (the dense epoch, beta and the baselines' settings are picked on
    test recall), as BARS/UltraGCN do for the "_m1" splits; comparable with the leaderboard, optimistic.
  * "honest": every choice is made on a validation split (the data set's own, or a seeded
    `valid_fraction` of each user's train pairs, carved without reading test); the models are refit on
    train + valid with those choices fixed, and `evaluate_final` then reads test once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import scipy.sparse as sp

from humanai_jax.methods.sad import alignment
from humanai_jax.recsys import data as data_lib, dense as dense_lib, memory, neighbors, ranking, slim

# Stage -> what it is. `sad` is the headline; the rest are its ablations and the simple baselines.
STAGES = {
    "sparse_alone": "sparse view alone on X (SLIM by default; step 1)",
    "dense_alone": "dense model on X only",
    "dense_s2d": "dense model on X + S->D pairs (step 2)",
    "sparse_d2s": "sparse view refit on Q = X + alpha*M, scored with Q_test (step 4)",
    "sad_coded_beta": "full SaD, the reference's coded beta",
    "sad": "full SaD, beta selected on the selection split",
    "ease": "EASE^R, ridge selected on the selection split",
    "itemknn": "cosine ItemKNN, k selected on the selection split",
    "slim_sklearn": "SLIM(X) with scikit-learn's own coordinate order (the reference code path)",
}


def fit_sparse_view(x: sp.csr_matrix, cfg, seed: int, sparse_views: bool = False):
    """The configured item-item model on x [n_users, n_items] -> (W [I, I], info).

    sparse_views=True never builds an I x I array: SLIM is solved over each column's `cfg.candidates` most
    co-occurring items and ItemKNN is computed in item blocks; W is then a scipy CSC matrix."""
    if cfg.model == "slim" and sparse_views:
        return slim.fit_slim_candidates(x, cfg.alpha, cfg.l1_ratio, candidates=cfg.candidates, seed=seed,
                                        max_iter=cfg.max_iter, tol=cfg.tol, topk=cfg.topk,
                                        faithful_topk=cfg.faithful_topk, block=cfg.column_block,
                                        selection=cfg.selection)
    if cfg.model == "slim":
        return slim.fit_slim(x, cfg.alpha, cfg.l1_ratio, seed=seed, max_iter=cfg.max_iter, tol=cfg.tol,
                             topk=cfg.topk, faithful_topk=cfg.faithful_topk, block=cfg.block,
                             selection=cfg.selection)
    if cfg.model == "slim_sklearn":
        return slim.fit_slim_sklearn(x, cfg.alpha, cfg.l1_ratio, seed=seed, max_iter=cfg.max_iter, tol=cfg.tol,
                                     topk=cfg.topk, faithful_topk=cfg.faithful_topk)
    if cfg.model == "ease":
        return neighbors.fit_ease(x, cfg.ease_l2), {}
    if cfg.model == "itemknn" and sparse_views:
        return neighbors.fit_itemknn_sparse(x, cfg.knn_k, block=cfg.column_block), {}
    if cfg.model == "itemknn":
        return neighbors.fit_itemknn(x, cfg.knn_k), {}
    raise ValueError(f"sparse.model={cfg.model!r} is not supported; choose 'slim', 'slim_sklearn', 'ease' or "
                     f"'itemknn'")


def plan_sparse_view(stage: str, n_items: int, model: str, cfg, limit: int) -> None:
    """Prints the memory plan of a sparse-view fit; raises MemoryBudgetError naming the stage if it cannot fit."""
    blocked = cfg.scale.sparse_views and model in ("slim", "itemknn")
    if blocked:
        per_col = cfg.sparse.topk if model == "slim" else cfg.sparse.knn_k
        need = memory.blocked_item_item(n_items, cfg.sparse.column_block, n_items * per_col,
                                        cfg.sparse.candidates if model == "slim" else 0)
    else:
        need = memory.dense_item_item(n_items, model)
    hint = ("set scale.sparse_views=True (candidate SLIM, blocked ItemKNN; EASE has no sparse form) or use a "
            "machine with more memory" if not blocked else "lower sparse.column_block or sparse.candidates")
    memory.check(f"{stage} ({model}, {'blocked' if blocked else 'dense I x I'})", need, limit, hint=hint)


def dense_hparams(cfg) -> dense_lib.DenseHParams:
    fields = dense_lib.DenseHParams.__dataclass_fields__
    values = {k: cfg[k] for k in fields if k in cfg and k != "shuffle"}
    return dense_lib.DenseHParams(shuffle=not cfg.faithful_order, **values)


def check_sizes(n_users: int, n_items: int, cfg) -> None:
    """Every top-K the config asks for must fit the catalogue; a clear error names the field."""
    needs = [("eval.ks", max(cfg.eval.ks), n_items, "items"),
             ("s2d.n_per_item", cfg.s2d.n_per_item, n_users, "users"),
             ("d2s.k_user_train", cfg.d2s.k_user_train, n_items, "items"),
             ("d2s.k_user_test", cfg.d2s.k_user_test, n_items, "items"),
             ("d2s.k_item_train", cfg.d2s.k_item_train, n_users, "users"),
             ("d2s.k_item_test", cfg.d2s.k_item_test, n_users, "users")]
    for field, k, have, what in needs:
        if k > have:
            raise ValueError(f"{field}={k} asks for the top {k} {what}, but the data set has only {have} {what}")


class _Timer:
    """Wall time (summed) and peak resident memory (max, GiB; the process's VmHWM, reset per call) per stage."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self.peak_rss: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable, *args, **kwargs):
        reset = memory.reset_peak_rss()
        start = time.time()
        out = fn(*args, **kwargs)
        if not sp.issparse(out) and not (isinstance(out, tuple) and any(sp.issparse(o) for o in out)):
            jax.block_until_ready(jax.tree_util.tree_leaves(out) if not isinstance(out, np.ndarray) else out)
        self.times[name] = self.times.get(name, 0.0) + time.time() - start
        if reset:
            self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), memory.peak_rss_bytes() / memory.GIB)
        return out


def _select(candidates, fit_rows, evaluate, fixed_value):
    """Fits each candidate setting; returns (chosen, rows_fn, metrics on the selection split or None)."""
    if fixed_value is not None:
        return fixed_value, fit_rows(fixed_value), None
    best = None
    for value in candidates:
        rows = fit_rows(value)
        m = evaluate(rows)
        if best is None or m["recall@20"] > best[2]["recall@20"]:
            best = (value, rows, m)
    return best


def fit_models(
    x: sp.csr_matrix,
    pairs: np.ndarray,
    cfg,
    *,
    select_on: sp.csr_matrix | None = None,
    fixed: dict | None = None,
    log: Callable[..., Any] | None = None,
    tag: str = "",
) -> dict:
    """Fits every stage on train `x` [U, I] with train `pairs` [P, 2] (file order).

    Exactly one of `select_on` ([U, I] held-out matrix: choices are selected on it) or `fixed` (the
    `selected` dict of an earlier call: nothing is selected, nothing held-out is read) is given.
    Returns {"rows": {stage: users [b] -> scores [b, I]}, "selected", "selection_metrics" (metrics on
    `select_on` of each stage; {} when fixed), "info", "beta_sweep", "times", "artifacts"}.
    """
    if (select_on is None) == (fixed is None):
        raise ValueError("fit_models needs exactly one of select_on (select choices) or fixed (reuse choices)")
    timer = _Timer()
    n_users, n_items = x.shape
    check_sizes(n_users, n_items, cfg)
    ks, block = tuple(cfg.eval.ks), cfg.eval.block
    rows, selected, info, sel_metrics = {}, {}, {}, {}
    evaluate = (lambda r: timer("eval", ranking.evaluate, r, x, select_on, ks, block)) if select_on is not None \
        else None
    log = log or (lambda step, **m: None)
    fixed = fixed or {}

    limit = memory.limit_bytes(cfg.scale.memory_limit_gb)
    views = cfg.scale.sparse_views
    plan_eval = lambda stage: memory.check(stage, memory.ranking_block(n_items, block, n_users, max(ks)), limit,
                                           hint="lower eval.block")

    # 1. sparse view on X
    plan_sparse_view("sparse_origin", n_items, cfg.sparse.model, cfg, limit)
    w_origin, info["sparse_origin"] = timer("sparse_origin", fit_sparse_view, x, cfg.sparse, cfg.seed, views)
    rows["sparse_alone"] = neighbors.item_item_rows_fn(x, w_origin)

    # 2. S->D pseudo-positives, then the dense model
    s2d = cfg.s2d
    memory.check("s2d (top users per item)", memory.column_block(n_users, 512), limit)
    aug, info["s2d"] = timer("s2d", alignment.sparse_to_dense_pairs, x, w_origin, s2d.n_per_item,
                             exclude_train_positives=s2d.exclude_train_positives,
                             dedup_augmentation=s2d.dedup_augmentation,
                             prefer_high_index=s2d.numpy_tie_break)
    hp = dense_hparams(cfg.dense)
    graph = dense_lib.build_graph(x, hp.user_weight)  # degrees before augmentation, as released
    select = None if evaluate is None else (lambda eu, ei: evaluate(dense_lib.score_rows_fn(eu, ei)))
    memory.check("dense training", memory.dense_training(n_users, n_items, hp.dim, len(pairs) + len(aug),
                                                         hp.batch_size, hp.num_negatives, hp.negative_group_size),
                 limit, hint="lower dense.dim or dense.num_negatives")
    if evaluate is not None:
        plan_eval("evaluation (selection split)")

    def train(train_pairs, name, seed_offset):
        def log_dense(epoch, **m):
            log(epoch, **{f"{tag}{name}/{k}": v for k, v in m.items()})

        fixed_epochs = fixed.get(f"{name}_epochs")
        return dense_lib.train_dense(
            train_pairs, np.ones(len(train_pairs), np.float32), graph, n_users, n_items, hp,
            key=jax.random.PRNGKey(cfg.seed + seed_offset), max_epochs=cfg.dense.max_epochs, select=select,
            eval_every=cfg.dense.eval_every, eval_every_after=cfg.dense.eval_every_after,
            patience=cfg.dense.patience, log=log_dense,
            fixed_epochs=None if fixed_epochs is None else max(int(fixed_epochs), 1))

    if cfg.stages.dense_alone:
        alone = timer("dense_alone", train, pairs, "dense_alone", 1)
        rows["dense_alone"] = dense_lib.score_rows_fn(alone.user_emb, alone.item_emb)
        selected["dense_alone_epochs"] = alone.best_epoch
    dense = timer("dense", train, np.concatenate([pairs, aug]), "dense_s2d", 0)
    rows["dense_s2d"] = dense_lib.score_rows_fn(dense.user_emb, dense.item_emb)
    selected["dense_s2d_epochs"] = dense.best_epoch
    info["dense_epochs_run"] = dense.epochs_run

    # 3-4. D->S enrichment and the sparse refit on Q
    d2s = cfg.d2s
    memory.check("d2s (dense top-k)", {**memory.column_block(n_users, block),
                                       **memory.ranking_block(n_items, block, n_users, 0)}, limit,
                 hint="lower eval.block")
    m_train = timer("d2s", alignment.dense_enrichment, dense.user_emb, dense.item_emb, d2s.k_user_train,
                    d2s.k_item_train, block=block)
    q = alignment.enriched_matrix(x, m_train, d2s.alpha)
    m_test = timer("d2s", alignment.dense_enrichment, dense.user_emb, dense.item_emb, d2s.k_user_test,
                   d2s.k_item_test, block=block)
    q_test = alignment.enriched_matrix(x, m_test, d2s.alpha)
    info["d2s"] = {"enriched_train_edges": int(m_train.nnz),
                   "new_train_edges": int((m_train - m_train.multiply(x)).nnz),
                   "enriched_test_edges": int(m_test.nnz)}
    plan_sparse_view("sparse_d2s", n_items, cfg.sparse.model, cfg, limit)
    w_d2s, info["sparse_d2s"] = timer("sparse_d2s", fit_sparse_view, q, cfg.sparse, cfg.seed + 1, views)
    rows["sparse_d2s"] = neighbors.item_item_rows_fn(q_test, w_d2s)

    # 5. late fusion: the coded beta, and beta selected on `select_on` (or fixed)
    coded = float(cfg.fusion.beta)
    beta_sweep = {}
    if select_on is not None:
        betas = sorted({float(b) for b in cfg.fusion.beta_grid} | {coded})
        sweep = timer("fusion", alignment.sweep_fusion, rows["sparse_d2s"], rows["dense_s2d"], betas, x, select_on,
                      ks, block)
        selected["beta"] = max(betas, key=lambda b: sweep[b]["recall@20"])
        sel_metrics["sad_coded_beta"], sel_metrics["sad"] = sweep[coded], sweep[selected["beta"]]
        beta_sweep = {str(b): {"recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"]} for b, m in sweep.items()}
    else:
        selected["beta"] = float(fixed["beta"])
    rows["sad_coded_beta"] = alignment.fused_rows_fn(rows["sparse_d2s"], rows["dense_s2d"], coded)
    rows["sad"] = alignment.fused_rows_fn(rows["sparse_d2s"], rows["dense_s2d"], selected["beta"])

    # Baselines on X, their one setting selected like everything else.
    base = cfg.baselines
    if base.ease:
        plan_sparse_view("baseline ease", n_items, "ease", cfg, limit)
        fit = lambda l2: neighbors.item_item_rows_fn(x, neighbors.fit_ease(x, float(l2)))
        start = time.time()
        selected["ease_l2"], rows["ease"], m = _select(base.ease_l2_grid, fit, evaluate, fixed.get("ease_l2"))
        timer.times["ease"] = time.time() - start
        if m is not None:
            sel_metrics["ease"] = m
    if base.itemknn:
        plan_sparse_view("baseline itemknn", n_items, "itemknn", cfg, limit)
        knn = neighbors.fit_itemknn_sparse if views else neighbors.fit_itemknn
        fit = lambda k: neighbors.item_item_rows_fn(x, knn(x, min(int(k), n_items - 1)))
        start = time.time()
        selected["itemknn_k"], rows["itemknn"], m = _select(base.knn_k_grid, fit, evaluate, fixed.get("itemknn_k"))
        timer.times["itemknn"] = time.time() - start
        if m is not None:
            sel_metrics["itemknn"] = m
    if base.slim_sklearn:
        plan_sparse_view("baseline slim_sklearn", n_items, "slim_sklearn", cfg, limit)
        w_sk, info["slim_sklearn"] = timer("slim_sklearn", slim.fit_slim_sklearn, x, cfg.sparse.alpha,
                                           cfg.sparse.l1_ratio, seed=cfg.seed, max_iter=cfg.sparse.max_iter,
                                           tol=cfg.sparse.tol, topk=cfg.sparse.topk,
                                           faithful_topk=cfg.sparse.faithful_topk)
        rows["slim_sklearn"] = neighbors.item_item_rows_fn(x, w_sk)

    if evaluate is not None:  # the remaining stages' metrics on the selection split
        for stage, fn in rows.items():
            if stage not in sel_metrics:
                sel_metrics[stage] = evaluate(fn)
    return {
        "rows": rows,
        "selected": selected,
        "selection_metrics": {k: sel_metrics[k] for k in STAGES if k in sel_metrics},
        "info": info,
        "beta_sweep": beta_sweep,
        "times": timer.times,
        "peak_rss_gib": timer.peak_rss,
        "artifacts": {"w_origin": w_origin, "w_d2s": w_d2s, "q": q, "q_test": q_test,
                      "user_emb": dense.user_emb, "item_emb": dense.item_emb, "dense_history": dense.history,
                      "sparse_rows": rows["sparse_d2s"], "dense_rows": rows["dense_s2d"]},
    }


def evaluate_stages(rows: dict, train: sp.csr_matrix, target: sp.csr_matrix, cfg) -> dict:
    """{stage: full-ranking metrics on `target`}, `train` items masked, for every stage in `rows`."""
    ks, block = tuple(cfg.eval.ks), cfg.eval.block
    return {k: ranking.evaluate(rows[k], train, target, ks, block) for k in STAGES if k in rows}


def evaluate_final(rows: dict, train: sp.csr_matrix, test: sp.csr_matrix, cfg) -> dict:
    """The honest protocol's one read of the test set, after every model is fit and every choice made."""
    return evaluate_stages(rows, train, test, cfg)


def run_protocol(data: data_lib.Interactions, cfg, log=None) -> dict:
    """Runs the configured protocol. Returns {"metrics": {stage: test metrics}, "selected", "info",
    "beta_sweep", "times", "artifacts", "selection_split", "train_matrix"} and, for "honest", "selection"
    (the validation-run metrics and choices)."""
    if cfg.protocol == "bars":
        out = fit_models(data.train, data.train_pairs, cfg, select_on=data.test, log=log)
        out["metrics"] = out.pop("selection_metrics")  # selected on test: the same numbers
        out["selection_split"] = "test (BARS convention: test-selected, optimistic)"
        out["train_matrix"] = data.train
        return out
    if cfg.protocol != "honest":
        raise ValueError(f"protocol={cfg.protocol!r} is not supported; choose 'bars' or 'honest'")
    n_users, n_items = data.n_users, data.n_items
    if data.valid is None:
        train_pairs, valid_pairs = data_lib.holdout_pairs(data.train_pairs, cfg.valid_fraction, cfg.seed)
        split_name = f"valid (carved: {cfg.valid_fraction} of each user's train pairs, seed {cfg.seed})"
        train = data_lib.pairs_to_csr(train_pairs[:, 0], train_pairs[:, 1], n_users, n_items)
        valid = data_lib.pairs_to_csr(valid_pairs[:, 0], valid_pairs[:, 1], n_users, n_items)
    else:
        train_pairs, train, valid = data.train_pairs, data.train, data.valid
        coo = valid.tocoo()
        valid_pairs = np.stack([coo.row, coo.col], 1).astype(np.int32)
        split_name = "valid (the data set's own)"
    chosen = fit_models(train, train_pairs, cfg, select_on=valid, log=log, tag="select/")
    full_train = (train + valid).tocsr()
    full_train.data[:] = 1.0
    full_pairs = np.concatenate([train_pairs, valid_pairs]).astype(np.int32)
    out = fit_models(full_train, full_pairs, cfg, fixed=chosen["selected"], log=log, tag="final/")
    start = time.time()
    out["metrics"] = evaluate_final(out.pop("rows"), full_train, data.test, cfg)
    out["times"]["final_eval"] = time.time() - start
    out.pop("selection_metrics")
    out["selection_split"] = split_name
    out["selection"] = {"metrics_on_valid": chosen["selection_metrics"], "selected": chosen["selected"],
                        "beta_sweep_on_valid": chosen["beta_sweep"], "times": chosen["times"]}
    out["train_matrix"] = full_train
    return out
