"""Sampling functions vs transformers' warpers and brute force; per-row RNG properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from humanai_jax.decoding import sampling

torch = pytest.importorskip("torch")
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper  # noqa: E402


def _logits(seed=0, b=6, v=50, scale=3.0):
    return np.random.default_rng(seed).normal(size=(b, v)).astype(np.float32) * scale


@pytest.mark.parametrize("k", [1, 3, 17, 50])
def test_top_k_keep_matches_hf_warper(k):
    x = _logits(1)
    ours = np.asarray(sampling.top_k_keep(jnp.asarray(x), k))
    hf = TopKLogitsWarper(top_k=k)(None, torch.tensor(x))
    np.testing.assert_array_equal(ours, np.isfinite(hf.numpy()))
    # brute force: exactly the k largest per row (no ties in continuous random logits)
    brute = np.zeros_like(ours)
    np.put_along_axis(brute, np.argsort(-x, -1)[:, :k], True, -1)
    np.testing.assert_array_equal(ours, brute)


def test_top_k_keeps_ties_at_threshold():
    x = jnp.asarray([[1.0, 2.0, 2.0, 0.5]])
    np.testing.assert_array_equal(np.asarray(sampling.top_k_keep(x, 2)), [[False, True, True, False]])
    np.testing.assert_array_equal(np.asarray(sampling.top_k_keep(x, 1)), [[False, True, True, False]])


@pytest.mark.parametrize("p", [0.05, 0.3, 0.75, 0.95, 1.0])
def test_top_p_keep_matches_hf_warper_and_brute_force(p):
    x = _logits(2, scale=2.0)
    ours = np.asarray(sampling.top_p_keep(jnp.asarray(x), p))
    hf = TopPLogitsWarper(top_p=p)(None, torch.tensor(x))
    np.testing.assert_array_equal(ours, np.isfinite(hf.numpy()))
    probs = np.exp(x - x.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for row, keep in zip(probs, ours):
        order = np.argsort(-row)
        before = np.cumsum(row[order]) - row[order]
        expect = np.zeros_like(keep)
        expect[order[(before < p) | (np.arange(len(row)) == 0)]] = True
        np.testing.assert_array_equal(keep, expect)


def test_temperature_zero_is_identity_and_positive_divides():
    x = jnp.asarray(_logits(3))
    np.testing.assert_array_equal(np.asarray(sampling.apply_temperature(x, 0.0)), np.asarray(x))
    np.testing.assert_allclose(np.asarray(sampling.apply_temperature(x, 2.0)), np.asarray(x) / 2.0)


def test_greedy_selection_ignores_keys_and_respects_mask():
    x = jnp.asarray(_logits(4))
    keys = sampling.row_keys(jax.random.key(0), jnp.arange(6), 0)
    allowed = jnp.asarray(np.random.default_rng(0).random((6, 50)) < 0.2).at[:, 0].set(True)
    tok = sampling.select_tokens(x, keys, allowed=allowed, greedy_decode=True)
    expect = np.argmax(np.where(np.asarray(allowed), np.asarray(x), -np.inf), -1)
    np.testing.assert_array_equal(np.asarray(tok), expect)


def test_greedy_is_torch_argmax_with_ties_infs_and_nans():
    x = _logits(6, b=8, v=300).round(0)  # rounding makes ties of the maximum common
    x[1, :] = 2.0  # every entry tied: index 0
    x[2, 17] = np.inf
    x[3, 40], x[3, 41] = np.nan, np.inf  # a NaN is the maximum, as in torch.argmax and jnp.argmax
    x[4, :] = np.finfo(np.float32).min  # every entry masked
    x[5, 250], x[5, 120] = 99.0, 99.0  # tie: the first index
    got = np.asarray(jax.jit(sampling.greedy)(jnp.asarray(x)))
    np.testing.assert_array_equal(got, torch.argmax(torch.from_numpy(x), dim=-1).numpy())
    np.testing.assert_array_equal(got, np.asarray(jnp.argmax(jnp.asarray(x), axis=-1)))
    assert got.dtype == np.int32 and got[1] == 0 and got[3] == 40 and got[5] == 120


def test_samples_are_always_allowed_and_inside_top_k_top_p():
    rng = np.random.default_rng(5)
    x = jnp.asarray(_logits(5, b=64, v=40, scale=1.0))
    allowed = jnp.asarray(rng.random((64, 40)) < 0.3).at[:, 7].set(True)
    fn = jax.jit(lambda keys: sampling.select_tokens(
        x, keys, allowed=allowed, greedy_decode=False, temperature=1.5, top_k=5, top_p=0.8))
    masked = sampling.mask_logits(sampling.apply_temperature(x, 1.5), allowed)
    keep = np.asarray(allowed & sampling.top_k_keep(masked, 5))
    keep = keep & np.asarray(sampling.top_p_keep(jnp.where(keep, masked, sampling.NEG), 0.8))
    for step in range(20):
        tok = np.asarray(fn(sampling.row_keys(jax.random.key(1), jnp.arange(64), step)))
        assert keep[np.arange(64), tok].all()


def test_row_keys_depend_on_request_id_and_step_only():
    base = jax.random.key(42)
    a = sampling.row_keys(base, jnp.asarray([3, 9, 1]), 4)
    b = sampling.row_keys(base, jnp.asarray([1, 3]), 4)
    data = lambda k: np.asarray(jax.random.key_data(k))  # noqa: E731
    np.testing.assert_array_equal(data(a[0]), data(b[1]))
    np.testing.assert_array_equal(data(a[2]), data(b[0]))
    c = sampling.row_keys(base, jnp.asarray([3]), 5)
    assert not np.array_equal(data(a[0]), data(c[0]))


def test_categorical_matches_distribution():
    # 4000 samples from a 3-way distribution: frequencies within 4 standard errors.
    logits = jnp.log(jnp.asarray([[0.2, 0.5, 0.3]]))
    logits = jnp.repeat(logits, 4000, axis=0)
    tok = np.asarray(sampling.categorical(sampling.row_keys(jax.random.key(0), jnp.arange(4000), 0), logits))
    freq = np.bincount(tok, minlength=3) / 4000
    se = np.sqrt(np.array([0.2, 0.5, 0.3]) * (1 - np.array([0.2, 0.5, 0.3])) / 4000)
    assert np.all(np.abs(freq - [0.2, 0.5, 0.3]) < 4 * se)
