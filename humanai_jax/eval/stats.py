"""Statistics for reported results: exact binomial CIs, bootstrap CIs, mean ± std over seeds and paired
tests. Numerics come from scipy; these functions fix the conventions the project reports with
(docs/agents.md, "Evaluation"):

- `binomial_ci`: exact (Clopper-Pearson) two-sided interval, the same as
  `scipy.stats.binomtest(k, n).proportion_ci(confidence_level, method="exact")`; `(0, 1)` for n = 0.
- `binomial_test`: exact binomial p-value of k successes in n against a rate `p0`.
- `bootstrap_ci`: percentile bootstrap of a statistic over the resamples of a seeded
  `numpy.random.Generator` (`scipy.stats.bootstrap` with `method="percentile"`).
- `mean_std`: mean and sample standard deviation (ddof = 1) over seeds, with n.
- `mcnemar_exact` (exact sign test on discordant pairs) and `paired_bootstrap` (CI of a mean difference)
  compare two systems on the same items.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["binomial_ci", "binomial_test", "bootstrap_ci", "mean_std", "MeanStd", "mcnemar_exact",
           "paired_bootstrap", "accuracy_with_ci"]


def binomial_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided `level` confidence interval of the proportion k/n.

    The bounds are Beta quantiles, `lo = B(a/2; k, n-k+1)`, `hi = B(1-a/2; k+1, n-k)`, with `lo = 0` at
    k = 0 and `hi = 1` at k = n. Returns `(0.0, 1.0)` when n = 0 (nothing observed).
    """
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"binomial_ci needs 0 <= k <= n, got k={k}, n={n}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def binomial_test(k: int, n: int, p0: float, alternative: str = "greater") -> float:
    """Exact binomial test p-value of k successes in n trials against rate `p0` (1.0 when n = 0)."""
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(int(k), int(n), p0, alternative=alternative).pvalue)


def accuracy_with_ci(hits: Sequence[bool], level: float = 0.95, chance: float | None = None) -> dict:
    """`{accuracy, n, hits, ci95 (or ci<level>), [p_value_vs_chance]}` of binary outcomes."""
    n, k = len(hits), int(sum(bool(h) for h in hits))
    out = {"accuracy": k / n if n else 0.0, "n": n, "hits": k,
           f"ci{round(level * 100)}": list(binomial_ci(k, n, level))}
    if chance is not None:
        out["chance"] = chance
        out["p_value_vs_chance"] = binomial_test(k, n, chance, "greater")
    return out


def bootstrap_ci(data: Sequence[float] | np.ndarray, statistic: Callable[[np.ndarray], float] = np.mean, *,
                 level: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of `statistic(data)` (1-D data; resampled with replacement).

    Equal to `scipy.stats.bootstrap((data,), statistic, method="percentile", confidence_level=level,
    n_resamples=n_resamples, random_state=np.random.default_rng(seed))` - that is what it calls.
    """
    res = _scipy_bootstrap(data, statistic, level, n_resamples, seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _scipy_bootstrap(data, statistic, level, n_resamples, seed):
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 1 or data.size < 2:
        raise ValueError(f"bootstrap needs 1-D data with at least 2 values, got shape {data.shape}")
    from scipy.stats import bootstrap

    return bootstrap((data,), lambda x, axis=-1: statistic(x, axis=axis), vectorized=True, paired=False,
                     method="percentile", confidence_level=level, n_resamples=n_resamples,
                     random_state=np.random.default_rng(seed))


@dataclasses.dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation (ddof = 1; NaN for a single value) over `n` seeds."""

    mean: float
    std: float
    n: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "n": self.n}

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.std:.2g} (n={self.n})"


def mean_std(values: Sequence[float]) -> MeanStd:
    """Mean ± sample std (ddof = 1) over seeds, with n. Empty input raises; one value has std NaN."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
    return MeanStd(float(np.mean(x)), std, int(x.size))


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """Exact McNemar test for paired binary outcomes (system A vs B on the same items).

    Only discordant pairs count: `b01` = A wrong and B right, `b10` = A right and B wrong. Under H0 each
    discordant pair is A's with probability 1/2, so the two-sided p-value is the exact binomial
    (sign) test of b10 in b01 + b10 at 0.5 (1.0 without discordant pairs).
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired outcomes must be 1-D of equal length, got {a.shape} and {b.shape}")
    b10, b01 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = binomial_test(b10, b10 + b01, 0.5, "two-sided")
    return {"n": int(a.size), "a_only": b10, "b_only": b01, "both": int(np.sum(a & b)),
            "neither": int(np.sum(~a & ~b)), "p_value": p}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, level: float = 0.95, n_resamples: int = 9999,
                     seed: int = 0) -> dict:
    """Paired bootstrap of mean(a) - mean(b) over the same items: the per-item differences are resampled
    (so each item's pair stays together), percentile CI as in `bootstrap_ci`.

    Returns `{diff, ci, p_value}`; the p-value is the two-sided percentile-bootstrap p (twice the smaller
    share of resampled differences on either side of 0, capped at 1).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"paired scores must be 1-D of equal length >= 2, got {a.shape} and {b.shape}")
    d = a - b
    res = _scipy_bootstrap(d, np.mean, level, n_resamples, seed)
    boot = res.bootstrap_distribution
    p = min(1.0, 2 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0))))
    return {"diff": float(d.mean()), "ci": [float(res.confidence_interval.low), float(res.confidence_interval.high)],
            "p_value": p, "n": int(d.size)}
