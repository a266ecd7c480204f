"""KL controllers against hand-computed values of OpenRLHF's update rule
`β ← β·(1 + clip(kl/target - 1, -0.2, 0.2)·n_steps/horizon)`."""

import jax
import numpy as np
import pytest

from humanai_jax.rl import kl_control as K


def test_init_and_fixed_controller_keeps_the_coefficient():
    state = K.init_kl_state(0.01)
    assert state["kl_coef"].dtype == np.float32 and state["kl_coef"].shape == ()
    np.testing.assert_allclose(K.kl_update(state, 5.0, 256, kind="fixed")["kl_coef"], 0.01)
    with pytest.raises(ValueError, match=">= 0"):
        K.init_kl_state(-1.0)


def test_adaptive_hand_values():
    state = K.init_kl_state(0.1)
    # KL above target, error 0.05/0.04 - 1 = 0.25 clipped to 0.2: 0.1·(1 + 0.2·1000/10000) = 0.102
    np.testing.assert_allclose(K.adaptive_kl_update(state, 0.05, 1000, target=0.04, horizon=10000)["kl_coef"],
                               0.102, rtol=1e-6)
    # inside the clip: error 0.045/0.04 - 1 = 0.125: 0.1·(1 + 0.125·0.1) = 0.10125
    np.testing.assert_allclose(K.adaptive_kl_update(state, 0.045, 1000, target=0.04, horizon=10000)["kl_coef"],
                               0.10125, rtol=1e-6)
    # below target: error 0.03/0.04 - 1 = -0.25 clipped to -0.2; n/h = 32/100: 0.1·(1 - 0.064) = 0.0936
    np.testing.assert_allclose(K.adaptive_kl_update(state, 0.03, 32, target=0.04, horizon=100)["kl_coef"],
                               0.0936, rtol=1e-6)
    # at target: unchanged; zero KL: the largest decrease
    np.testing.assert_allclose(K.kl_update(state, 0.04, 32, kind="adaptive", target=0.04, horizon=100)["kl_coef"], 0.1)
    np.testing.assert_allclose(K.kl_update(state, 0.0, 50, kind="adaptive", target=0.04, horizon=100)["kl_coef"],
                               0.1 * (1 - 0.2 * 0.5), rtol=1e-6)


def test_adaptive_repeated_updates_compound_and_jit():
    """Three updates are the product of the three hand multipliers; the jitted update agrees."""
    update = jax.jit(lambda s, kl: K.adaptive_kl_update(s, kl, 64, target=0.1, horizon=640))
    state = K.init_kl_state(0.01)
    expected = 0.01
    for kl in (0.5, 0.09, 0.0):
        error = min(max(kl / 0.1 - 1, -0.2), 0.2)
        expected *= 1 + error * 64 / 640
        state = update(state, kl)
    np.testing.assert_allclose(state["kl_coef"], expected, rtol=1e-6)
    np.testing.assert_allclose(expected, 0.01 * 1.02 * 0.99 * 0.98, rtol=1e-12)


def test_bad_settings_are_rejected():
    state = K.init_kl_state(0.01)
    with pytest.raises(ValueError, match="kl_target"):
        K.kl_update(state, 0.1, 8, kind="adaptive")
    with pytest.raises(ValueError, match="target > 0"):
        K.adaptive_kl_update(state, 0.1, 8, target=0.0, horizon=10)
    with pytest.raises(ValueError, match="Unknown KL controller 'pid'"):
        K.kl_update(state, 0.1, 8, kind="pid")
