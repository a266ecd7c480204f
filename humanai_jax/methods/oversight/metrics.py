"""Oversight metrics as plain numpy arithmetic (tested against hand values).

  pgr(acc_weak, acc_strong, acc_w2s)       performance gap recovered; NaN (with a warning) when the gap < 1 point
  summarize_seeds(values)                  {mean, std, median, per_seed, n} over seeds (NaNs kept in per_seed)
  expected_calibration_error(conf, hit)    10 equal-width bins over [0, 1]
  gap_closed(acc_assisted, acc_alone)      (acc_c - acc_a) / (acc_expert - acc_a), acc_expert = 1
  brier(p_correct)                         mean (1 - p)^2 of the probability given to the correct answer
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

MIN_GAP = 0.01


def pgr(acc_weak: float, acc_strong: float, acc_w2s: float, *, min_gap: float = MIN_GAP) -> float:
    """(acc_w2s - acc_weak) / (acc_strong - acc_weak); NaN with a warning when the gap is below `min_gap`
    (zero or negative gaps included: PGR is undefined there, not 0 or ±inf)."""
    gap = acc_strong - acc_weak
    if not gap >= min_gap:
        warnings.warn(f"PGR undefined: strong ceiling {acc_strong:.4f} - weak {acc_weak:.4f} = {gap:.4f} "
                      f"< {min_gap}", stacklevel=2)
        return math.nan
    return (acc_w2s - acc_weak) / gap


def summarize_seeds(values: Sequence[float]) -> dict:
    """{mean, std (ddof 1), median, per_seed, n} over the defined (non-NaN) values; all-NaN gives NaNs."""
    x = np.asarray(values, dtype=np.float64)
    ok = x[~np.isnan(x)]
    return {"mean": float(ok.mean()) if ok.size else math.nan,
            "std": float(ok.std(ddof=1)) if ok.size > 1 else math.nan,
            "median": float(np.median(ok)) if ok.size else math.nan,
            "per_seed": [float(v) for v in x], "n": int(ok.size)}


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE = sum_b |B_b|/n · |acc(B_b) - mean conf(B_b)| over `n_bins` equal-width bins of confidence in
    [0, 1]; bin b holds (b/n, (b+1)/n], bin 0 also holds 0. Confidences outside [0, 1] raise."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.shape != hit.shape or conf.ndim != 1 or conf.size == 0:
        raise ValueError(f"confidence {conf.shape} and correct {hit.shape} must be equal non-empty 1-D")
    if np.any((conf < 0) | (conf > 1)):
        raise ValueError("confidences must lie in [0, 1] (divide a 0-100 confidence by 100)")
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(hit[sel].mean() - conf[sel].mean())
    return float(ece)


def gap_closed(acc_assisted: float, acc_alone: float, acc_expert: float = 1.0) -> float:
    """(acc_assisted - acc_alone) / (acc_expert - acc_alone); NaN when the non-expert already matches the expert."""
    denom = acc_expert - acc_alone
    return (acc_assisted - acc_alone) / denom if denom > 0 else math.nan


def brier(p_correct: Sequence[float]) -> float:
    """Mean squared error of the probability given to the correct answer: mean (1 - p)^2."""
    p = np.asarray(p_correct, dtype=np.float64)
    return float(np.mean((1.0 - p) ** 2))
