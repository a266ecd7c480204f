"""Weak-to-strong losses and oversight metrics against hand-computed values and numpy formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from humanai_jax.methods.oversight import losses, metrics


def _logits_for(p0):
    """Logits [B, 2] whose softmax has class-0 probability p0."""
    p0 = np.asarray(p0, np.float64)
    return jnp.asarray(np.stack([np.log(p0 / (1 - p0)), np.zeros_like(p0)], -1), jnp.float32)


def test_xent_hand_values():
    assert float(losses.xent(jnp.zeros((1, 2)), jnp.array([[1.0, 0.0]]))) == pytest.approx(math.log(2), abs=1e-6)
    z = _logits_for([0.75])
    assert float(losses.xent(z, jnp.array([[0.5, 0.5]]))) == pytest.approx(0.836988, abs=1e-5)


@pytest.mark.parametrize("warmup,frac,expected", [
    ("reference", 0.05, 0.025), ("reference", 0.1, 0.05), ("reference", 0.11, 0.5), ("reference", 0.9, 0.5),
    ("linear", 0.05, 0.25), ("linear", 0.1, 0.5), ("linear", 0.7, 0.5), ("linear", 0.0, 0.0)])
def test_aux_coefficient_warmups(warmup, frac, expected):
    assert float(losses.aux_coefficient(frac, 0.5, 0.1, warmup)) == pytest.approx(expected, abs=1e-7)


def test_logconf_hand_value():
    # p0 = [.9, .6, .3, .2]; weak class-1 probs [.2, .4, .7, .7] -> m = .5, tau = quantile(p0, .5) = .45,
    # hardened = [0, 0, 1, 1] (class); c = .5 after warm-up; targets (class 0) [.9, .8, .15, .15]
    z = _logits_for([0.9, 0.6, 0.3, 0.2])
    y = jnp.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.3, 0.7]])
    assert float(losses.logconf(z, y, 0.5)) == pytest.approx(0.4579647, abs=1e-5)
    # during warm-up (reference): c = .5 * .05 = .025
    t = 0.975 * np.asarray(y) + 0.025 * np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    assert float(losses.logconf(z, y, 0.05)) == pytest.approx(float(-np.mean(np.sum(t * np.log(p), 1))), abs=1e-5)


def _numpy_logconf(z, y, frac, aux, warm, mode):
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    c = aux * ((frac if frac <= warm else 1.0) if mode == "reference" else min(1.0, frac / warm))
    tau = np.quantile(p[:, 0], y[:, 1].mean())  # numpy's default is linear interpolation (as torch.quantile)
    s = np.stack([p[:, 0] >= tau, p[:, 0] < tau], 1).astype(float)
    t = (1 - c) * y + c * s
    return -np.mean(np.sum(t * np.log(p), 1)), t, p


@pytest.mark.parametrize("mode", ["reference", "linear"])
def test_logconf_matches_numpy_formula_and_target_has_no_gradient(mode):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(32, 2)) * 2
    w = rng.uniform(0.05, 0.95, size=32)
    y = np.stack([1 - w, w], 1)
    for frac in (0.03, 0.4):
        ref, t, p = _numpy_logconf(z, y, frac, 0.75, 0.1, mode)
        fn = lambda zz, frac=frac: losses.logconf(zz, jnp.asarray(y), frac, aux_coef=0.75, warmup_frac=0.1, warmup=mode)  # noqa: E731
        assert float(fn(jnp.asarray(z))) == pytest.approx(ref, rel=1e-5)
        # d/dz mean CE(z, t) with t fixed = (softmax(z) - t) / B: the hardened target carries no gradient
        np.testing.assert_allclose(np.asarray(jax.grad(fn)(jnp.asarray(z, jnp.float32))), (p - t) / 32, atol=1e-6)


def test_logconf_hardening_tracks_weak_class_balance():
    z = _logits_for(np.linspace(0.05, 0.95, 10))
    y = jnp.tile(jnp.array([[0.3, 0.7]]), (10, 1))  # weak labels say 70% class 1
    s = losses.hardened_predictions(jax.nn.softmax(z), jnp.mean(y[:, 1]))
    assert float(s[:, 1].sum()) == 7  # the 7 rows with the lowest p0


def test_product_hand_values_and_gradient():
    z = _logits_for([0.75])
    assert float(losses.product(z, jnp.array([[0.5, 0.5]]))) == pytest.approx(0.5623352, abs=1e-5)
    assert float(losses.product(jnp.zeros((1, 2)), jnp.array([[0.8, 0.2]]))) == pytest.approx(math.log(2), abs=1e-6)
    # alpha = 2, beta = 1: t ∝ [.75 * .36, .25 * .16] = [.27, .04] / .31
    t = np.array([0.27, 0.04]) / 0.31
    expect = -(t[0] * math.log(0.75) + t[1] * math.log(0.25))
    assert float(losses.product(z, jnp.array([[0.6, 0.4]]), alpha=2.0)) == pytest.approx(expect, abs=1e-5)
    g = jax.grad(lambda zz: losses.product(zz, jnp.array([[0.6, 0.4]]), alpha=2.0))(z)
    np.testing.assert_allclose(np.asarray(g)[0], np.array([0.75, 0.25]) - t, atol=1e-6)


def test_get_loss_rejects_unknown_names_and_keys():
    with pytest.raises(ValueError, match="unknown transfer loss"):
        losses.get_loss("hinge")
    with pytest.raises(ValueError, match="unknown"):
        losses.get_loss("xent", aux_coef=0.5)
    with pytest.raises(ValueError, match="warmup"):
        losses.get_loss("logconf", warmup="cosine")


def test_pgr_values_and_undefined_gaps():
    assert metrics.pgr(0.7, 0.9, 0.8) == pytest.approx(0.5)
    assert metrics.pgr(0.7, 0.9, 0.65) == pytest.approx(-0.25)
    assert metrics.pgr(0.7, 0.71, 0.705) == pytest.approx(0.5)  # a gap of exactly one point is defined
    for strong in (0.705, 0.7, 0.6):  # below one point, zero and negative gaps
        with pytest.warns(UserWarning, match="PGR undefined"):
            assert math.isnan(metrics.pgr(0.7, strong, 0.8))


def test_summarize_seeds_keeps_nan_out_of_the_mean():
    s = metrics.summarize_seeds([0.2, float("nan"), 0.4])
    assert s["mean"] == pytest.approx(0.3) and s["n"] == 2 and math.isnan(s["per_seed"][1])
    assert s["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1)) and s["median"] == pytest.approx(0.3)


def test_ece_gap_closed_and_brier_hand_values():
    # bins: .95 -> 9 (acc .5 vs .95), .55 -> 5 (1 vs .55), .15 -> 1 (0 vs .15): .5·.45 + .25·.45 + .25·.15
    assert metrics.expected_calibration_error([0.95, 0.95, 0.55, 0.15], [1, 0, 1, 0]) == pytest.approx(0.375)
    assert metrics.expected_calibration_error([0.0, 1.0], [0, 1]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.expected_calibration_error([80.0], [1])
    assert metrics.gap_closed(0.7, 0.4) == pytest.approx(0.5)
    assert math.isnan(metrics.gap_closed(0.9, 1.0))
    assert metrics.brier([1.0, 0.5, 0.0]) == pytest.approx((0 + 0.25 + 1) / 3)
