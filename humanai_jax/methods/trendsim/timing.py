"""Time-aware interaction (docs/trendsim.md §3): the visit-time density, its normaliser, the 101-point sampler and the
visit schedules of normal users and attackers. Times are integer virtual seconds from the window start.

Density on x in [0, 10] with `A = 0.5 + like_num / n_agents + emotion`, alpha = 1, T = 5:
  f(x) = exp(A (x - T))                                      x <= T            (rise)
  f(x) = -alpha A (x - T - 1/(2 alpha))^2 + 1 + A/(4 alpha)  T < x <= T + 1/alpha (peak)
  f(x) = (x - T - 1/alpha + 1)^(-A)                          x > T + 1/alpha   (power-law decay)
The pieces meet with value 1 and slope +-A. All randomness comes from the `numpy.random.Generator` passed in.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import integrate

X_MAX = 10.0
GRID = np.linspace(0.0, X_MAX, 101)  # the reference's 101 evaluation points


def activity(like_num: int, n_agents: int, emotion: float) -> float:
    """A = 0.5 + like_num / n_agents + emotion (the post's likes make everyone more active)."""
    return 0.5 + like_num / max(n_agents, 1) + emotion


def density_unnormalised(x, A: float, alpha: float = 1.0, T: float = 5.0):
    """f(x) elementwise (x: scalar or array in [0, 10])."""
    x = np.asarray(x, dtype=np.float64)
    rise = np.exp(A * np.minimum(x - T, 0.0))
    peak = -alpha * A * (x - T - 1 / (2 * alpha)) ** 2 + 1 + A / (4 * alpha)
    decay = np.maximum(x - T - 1 / alpha + 1, 1.0) ** (-A)
    return np.where(x <= T, rise, np.where(x <= T + 1 / alpha, peak, decay))


@functools.lru_cache(maxsize=4096)
def normaliser(A: float, alpha: float = 1.0, T: float = 5.0) -> float:
    """Z = integral of f on [0, 10] by `scipy.integrate.quad`, piece by piece (as the reference does)."""
    f = lambda x: float(density_unnormalised(x, A, alpha, T))  # noqa: E731
    joins = [0.0, T, T + 1 / alpha, X_MAX]
    return float(sum(integrate.quad(f, a, b)[0] for a, b in zip(joins[:-1], joins[1:]) if b > a))


def density(x, A: float, alpha: float = 1.0, T: float = 5.0):
    """The normalised density f(x) / Z."""
    return density_unnormalised(x, A, alpha, T) / normaliser(float(A), alpha, T)


def grid_cdf(A: float, alpha: float = 1.0, T: float = 5.0) -> np.ndarray:
    """The reference CDF: left Riemann sum of the normalised density on the 101-point grid (step 0.1)."""
    return np.cumsum(density(GRID, A, alpha, T) * (GRID[1] - GRID[0]))


def sample_x(rng: np.random.Generator, A: float, *, mode: str = "reference", alpha: float = 1.0,
             T: float = 5.0) -> float:
    """One draw of x in [0, 10].

    reference: u ~ U(0,1), i = binary-search insertion index of u in the grid CDF, x = 10 i / 100 (capped at
      10 when u is beyond the CDF's last value, which the Riemann sum leaves slightly off 1).
    continuous: inverse of the exact CDF (fine grid, linear interpolation); used to check the density.
    """
    u = float(rng.uniform())
    if mode == "reference":
        i = int(np.searchsorted(grid_cdf(A, alpha, T), u, side="left"))
        return min(X_MAX * i / 100.0, X_MAX)
    if mode == "continuous":
        xs, cdf = _fine_cdf(float(A), alpha, T)
        return float(np.interp(u, cdf, xs))
    raise ValueError(f"sampler mode must be 'reference' or 'continuous', got {mode!r}")


@functools.lru_cache(maxsize=256)
def _fine_cdf(A: float, alpha: float, T: float):
    xs = np.linspace(0.0, X_MAX, 20001)
    pdf = density(xs, A, alpha, T)
    cdf = np.concatenate([[0.0], np.cumsum((pdf[1:] + pdf[:-1]) / 2 * np.diff(xs))])
    return xs, cdf / cdf[-1]


def exact_cdf(x, A: float, alpha: float = 1.0, T: float = 5.0):
    """F(x) = integral_0^x f / Z in closed form (for the KS test; independent of quad and the grid)."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, X_MAX)
    z = closed_form_normaliser(A, alpha, T)
    rise = (np.exp(A * (np.minimum(x, T) - T)) - np.exp(-A * T)) / A
    u = np.clip(x - T, 0.0, 1 / alpha)
    c = 1 / (2 * alpha)
    peak = -alpha * A * ((u - c) ** 3 + c ** 3) / 3 + (1 + A / (4 * alpha)) * u
    v = np.maximum(x - T - 1 / alpha + 1, 1.0)
    decay = np.log(v) if abs(A - 1) < 1e-12 else (v ** (1 - A) - 1) / (1 - A)
    return (rise + peak + decay) / z


def closed_form_normaliser(A: float, alpha: float = 1.0, T: float = 5.0) -> float:
    """Z by hand: (1 - e^{-AT})/A + 1/alpha + A/(6 alpha^2) + integral_1^V v^{-A} dv, V = 11 - T - 1/alpha."""
    V = X_MAX - T - 1 / alpha + 1
    decay = np.log(V) if abs(A - 1) < 1e-12 else (V ** (1 - A) - 1) / (1 - A)
    return float((1 - np.exp(-A * T)) / A + 1 / alpha + A / (6 * alpha ** 2) + decay)


def beta_seconds(window_s: int, epoch_num: int) -> float:
    """beta = (end - start) / (2 epoch_num): the span a draw of x in [0, 10] maps onto."""
    return window_s / (2 * epoch_num)


def next_user_visit(rng: np.random.Generator, now: int, window_s: int, *, A: float, epoch_num: int,
                    schedule_mode: str = "reference", sampler: str = "reference") -> tuple[int | None, float]:
    """(visit time or None, x). reference: candidate = start + gap (offset from the window start);
    from_now: candidate = now + gap. Kept only if now <= candidate <= end, else the user never returns."""
    x = sample_x(rng, A, mode=sampler)
    gap = int(x * beta_seconds(window_s, epoch_num) / 10)
    if schedule_mode == "reference":
        candidate = gap
    elif schedule_mode == "from_now":
        candidate = now + gap
    else:
        raise ValueError(f"schedule_mode must be 'reference' or 'from_now', got {schedule_mode!r}")
    return (candidate if now <= candidate <= window_s else None), x


def first_attacker_visit(rng: np.random.Generator, window_s: int) -> int:
    """start + randint(1, (end - start)/10), both ends included: within the first 10% of the window."""
    return int(rng.integers(1, max(window_s // 10, 1), endpoint=True))


def next_attacker_visit(visit_end: int, window_s: int, epoch_num: int) -> int | None:
    """visit end + (end - start)/(2 epoch_num), while <= end."""
    t = int(visit_end + beta_seconds(window_s, epoch_num))
    return t if t <= window_s else None
