"""MotiveBench metrics (docs/motivebench.md §2.5), per source and overall (all scenarios pooled: item-weighted, so
Persona with 100 scenarios counts double against Blog and Amazon with 50 each).

For task k and order π over N scenarios:
  acc_k(π) = (1/N) Σ_s 1[pred = gold]            all(π) = (1/N) Σ_s Π_k 1[pred_k = gold_k]
Reported per metric: `mean` over orders (the paper's number), `var` over orders (np.var, ddof 0),
`per_order`, the pooled counts `hits` / `n` (N x orders trials), `ci95`: the exact Clopper-Pearson
interval of hits/n (`eval.stats.binomial_ci`), and `ci95_scenarios`: a percentile bootstrap over
scenarios of the per-scenario order-mean. The orders of one scenario are correlated, so the exact pooled
interval is narrower than the truth when a model answers consistently; the scenario bootstrap is the
honest one for comparing models. Both are kept. An invalid prediction (None, or any character outside
A-F, which the reference rule can return) counts as wrong and into `invalid_rate`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from humanai_jax.eval import stats
from humanai_jax.methods.motivebench.data import TASKS

__all__ = ["summarize", "score_predictions", "METRICS"]

METRICS = (*TASKS, "all")
_LETTERS = frozenset("ABCDEF")


def _metric(correct: np.ndarray, seed: int, n_resamples: int) -> dict:
    """`correct`: bool [N scenarios, P orders]."""
    n_sc, n_ord = correct.shape
    per_order = correct.mean(axis=0)
    hits, n = int(correct.sum()), int(correct.size)
    lo, hi = stats.binomial_ci(hits, n)
    out = {"mean": float(per_order.mean()), "var": float(np.var(per_order)), "per_order": per_order.tolist(),
           "hits": hits, "n": n, "n_scenarios": n_sc, "ci95": [lo, hi]}
    per_scenario = correct.mean(axis=1)
    if n_sc >= 2 and np.ptp(per_scenario) > 0:
        out["ci95_scenarios"] = list(stats.bootstrap_ci(per_scenario, level=0.95, n_resamples=n_resamples, seed=seed))
    else:  # a constant sample has a degenerate bootstrap: the interval is the point
        out["ci95_scenarios"] = [float(per_scenario.mean())] * 2
    return out


def summarize(records: Sequence[Mapping], n_orders: int, *, seed: int = 0, n_resamples: int = 2000) -> dict:
    """Metrics of one prediction set. `records`: `{source, idx, task, order, pred, gold}` with `order` in
    0..n_orders-1; every (scenario, task, order) must appear exactly once (else ValueError)."""
    scenarios = sorted({(r["source"], r["idx"]) for r in records})
    if not scenarios:
        raise ValueError("no predictions to score")
    row = {s: i for i, s in enumerate(scenarios)}
    correct = {t: np.zeros((len(scenarios), n_orders), bool) for t in TASKS}
    seen = {t: np.zeros((len(scenarios), n_orders), int) for t in TASKS}
    invalid = 0
    for r in records:
        i, k, t = row[(r["source"], r["idx"])], int(r["order"]), r["task"]
        seen[t][i, k] += 1
        correct[t][i, k] = r["pred"] is not None and r["pred"] == r["gold"]
        invalid += r["pred"] is None or r["pred"] not in _LETTERS  # the reference rule can return any character
    for t in TASKS:
        if (seen[t] != 1).any():
            i, k = map(int, np.argwhere(seen[t] != 1)[0])
            raise ValueError(f"task {t}: scenario {scenarios[i]} order {k} has {seen[t][i, k]} predictions, expected 1")
    out = {t: _metric(correct[t], seed, n_resamples) for t in TASKS}
    out["all"] = _metric(correct["MR"] & correct["BR"] & correct["MBR"], seed, n_resamples)
    out["invalid_rate"] = invalid / len(records)
    out["n_predictions"] = len(records)
    return out


def score_predictions(records: Iterable[Mapping], n_orders: int, *, seed: int = 0, n_resamples: int = 2000) -> dict:
    """`{"overall": summary, "by_source": {source: summary}}` (see `summarize`)."""
    records = list(records)
    by_source = defaultdict(list)
    for r in records:
        by_source[r["source"]].append(r)
    return {"overall": summarize(records, n_orders, seed=seed, n_resamples=n_resamples),
            "by_source": {s: summarize(rs, n_orders, seed=seed, n_resamples=n_resamples)
                          for s, rs in by_source.items()}}
