"""`humanai_jax.eval.stats` against scipy and hand values."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from humanai_jax.eval import stats


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (37, 120), (1, 2), (245, 399), (5, 7)])
@pytest.mark.parametrize("level", [0.95, 0.9])
def test_binomial_ci_matches_scipy_exact(k, n, level):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    assert stats.binomial_ci(k, n, level) == pytest.approx((ref.low, ref.high), rel=1e-12, abs=1e-15)


def test_binomial_ci_closed_forms_and_edges():
    lo, hi = stats.binomial_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))
    lo, hi = stats.binomial_ci(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10))
    lo, hi = stats.binomial_ci(37, 120)  # the defining tail equations
    assert sps.binom.sf(36, 120, lo) == pytest.approx(0.025) and sps.binom.cdf(37, 120, hi) == pytest.approx(0.025)
    assert stats.binomial_ci(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        stats.binomial_ci(3, 2)


def test_binomial_test_and_accuracy_with_ci():
    assert stats.binomial_test(3, 4, 0.05) == pytest.approx(sps.binom.sf(2, 4, 0.05))
    assert stats.binomial_test(0, 0, 0.5) == 1.0
    acc = stats.accuracy_with_ci([True, False, True, True], chance=0.25)
    assert (acc["accuracy"], acc["n"], acc["hits"]) == (0.75, 4, 3)
    assert acc["ci95"] == pytest.approx(list(stats.binomial_ci(3, 4)))
    assert acc["p_value_vs_chance"] == pytest.approx(sps.binom.sf(2, 4, 0.25))


def test_bootstrap_ci_matches_scipy_percentile_and_is_seeded():
    data = np.random.default_rng(1).normal(2.0, 1.0, size=40)
    ref = sps.bootstrap((data,), np.mean, method="percentile", confidence_level=0.9, n_resamples=2000,
                        random_state=np.random.default_rng(7))
    got = stats.bootstrap_ci(data, level=0.9, n_resamples=2000, seed=7)
    assert got == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), rel=1e-12)
    assert stats.bootstrap_ci(data, seed=7, n_resamples=500) == stats.bootstrap_ci(data, seed=7, n_resamples=500)
    assert stats.bootstrap_ci(data, seed=7, n_resamples=500) != stats.bootstrap_ci(data, seed=8, n_resamples=500)
    lo, hi = stats.bootstrap_ci(data, np.median, n_resamples=500)
    assert lo < np.median(data) < hi
    with pytest.raises(ValueError, match="at least 2"):
        stats.bootstrap_ci([1.0])


def test_mean_std_over_seeds_hand_values():
    ms = stats.mean_std([0.5, 0.7, 0.9])
    assert (ms.mean, ms.n) == (pytest.approx(0.7), 3)
    assert ms.std == pytest.approx(0.2)  # sqrt(((-.2)^2 + 0 + .2^2) / (3 - 1))
    assert ms.to_dict() == {"mean": ms.mean, "std": ms.std, "n": 3}
    assert "n=3" in str(ms)
    one = stats.mean_std([1.0])
    assert one.mean == 1.0 and math.isnan(one.std) and one.n == 1
    with pytest.raises(ValueError):
        stats.mean_std([])


def test_mcnemar_exact_is_binomtest_on_discordant_pairs():
    a = [1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1]
    b = [0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1]
    res = stats.mcnemar_exact(a, b)
    # a only: items 0-4 and 9 = 6; b only: item 8 = 1; both: 5, 6, 11; neither: 7, 10
    assert (res["a_only"], res["b_only"], res["both"], res["neither"], res["n"]) == (6, 1, 3, 2, 12)
    assert res["p_value"] == pytest.approx(sps.binomtest(6, 7, 0.5).pvalue)
    assert res["p_value"] == pytest.approx(2 * 8 / 128)  # hand: 2 * P(X >= 6 | n=7, p=1/2)
    assert stats.mcnemar_exact([1, 0], [1, 0])["p_value"] == 1.0
    with pytest.raises(ValueError, match="equal length"):
        stats.mcnemar_exact([1], [1, 0])


def test_paired_bootstrap_of_the_difference():
    rng = np.random.default_rng(0)
    base = rng.normal(size=60)
    a, b = base + 0.5 + 0.1 * rng.normal(size=60), base
    res = stats.paired_bootstrap(a, b, n_resamples=2000, seed=3)
    d = a - b
    ref = sps.bootstrap((d,), np.mean, method="percentile", n_resamples=2000, random_state=np.random.default_rng(3))
    assert res["diff"] == pytest.approx(d.mean())
    assert res["ci"] == pytest.approx([ref.confidence_interval.low, ref.confidence_interval.high])
    assert res["ci"][0] > 0.4 and res["p_value"] < 0.01 and res["n"] == 60
    same = stats.paired_bootstrap(b + 0.01 * rng.normal(size=60), b, n_resamples=2000)
    assert same["ci"][0] < 0 < same["ci"][1] and same["p_value"] > 0.05
