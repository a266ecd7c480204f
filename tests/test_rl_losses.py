"""RL losses against hand-computed values and brute-force Python loops."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from humanai_jax.rl import losses as L


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_bradley_terry_hand_values():
    r_c, r_r = jnp.array([2.0, 0.0, -1.0]), jnp.array([1.0, 0.0, 1.0])
    expected = -(math.log(_sigmoid(1.0)) + math.log(0.5) + math.log(_sigmoid(-2.0))) / 3
    np.testing.assert_allclose(L.bradley_terry_loss(r_c, r_r), expected, rtol=1e-6)
    # margin shifts the difference; softplus form is equivalent.
    np.testing.assert_allclose(
        L.bradley_terry_loss(r_c, r_r, margin=0.5), np.mean(np.log1p(np.exp(-(np.array([1.0, 0, -2]) - 0.5)))), rtol=1e-6
    )
    centred = L.bradley_terry_loss(r_c, r_r, center_coef=0.1)
    np.testing.assert_allclose(centred, expected + 0.1 * (9 + 0 + 0) / 3, rtol=1e-6)
    # ties count as errors
    np.testing.assert_allclose(L.pairwise_accuracy(r_c, r_r), 1 / 3)


def test_kl_estimators_hand_values():
    logp, ref = jnp.array([[-1.0, -2.0]]), jnp.array([[-1.5, -1.0]])
    d = np.array([[0.5, -1.0]])
    np.testing.assert_allclose(L.kl_estimate(logp, ref, "k1"), d)
    np.testing.assert_allclose(L.kl_estimate(logp, ref, "k2"), 0.5 * d**2)
    np.testing.assert_allclose(L.kl_estimate(logp, ref, "k3"), np.exp(-d) - 1 + d, rtol=1e-6)
    assert (np.asarray(L.kl_estimate(logp, ref, "k3")) >= 0).all()
    with pytest.raises(ValueError, match="k4"):
        L.kl_estimate(logp, ref, "k4")


def test_shaped_rewards_terminal_and_clip():
    mask = jnp.array([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], jnp.float32)
    kl = jnp.full((3, 4), 2.0)
    rewards = L.shaped_rewards(jnp.array([-0.3, -50.0, -1.0]), kl, mask, kl_coef=0.01)
    expected = np.array(
        [[-0.02, -0.02, -0.02 - 0.3, 0.0], [-0.02, -0.02 - 10.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    )
    np.testing.assert_allclose(rewards, expected, rtol=1e-6, atol=1e-7)


def _gae_loop(rewards, values, mask, gamma, lam):
    rewards, values = rewards * mask, values * mask
    batch, time = rewards.shape
    adv = np.zeros_like(rewards)
    for b in range(batch):
        last = 0.0
        for t in reversed(range(time)):
            next_v = values[b, t + 1] if t + 1 < time else 0.0
            delta = rewards[b, t] + gamma * next_v - values[b, t]
            last = delta + gamma * lam * last
            adv[b, t] = last
    return adv, adv + values


def test_gae_single_terminal_reward_hand_values():
    # γ=1, λ=0.95, zero values, one terminal reward R: A_t = 0.95^(H-1-t) R.
    rewards = jnp.array([[0.0, 0.0, 0.0, -2.0]])
    adv, ret = L.gae_advantages(rewards, jnp.zeros((1, 4)), jnp.ones((1, 4)), gamma=1.0, lam=0.95)
    np.testing.assert_allclose(adv[0], [-2 * 0.95**3, -2 * 0.95**2, -2 * 0.95, -2.0], rtol=1e-6)
    np.testing.assert_allclose(ret, adv)


def test_gae_matches_python_loop_with_padding():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(3, 7)).astype(np.float32)
    values = rng.normal(size=(3, 7)).astype(np.float32)
    lengths = np.array([7, 4, 1])
    mask = (np.arange(7)[None] < lengths[:, None]).astype(np.float32)
    adv, ret = L.gae_advantages(rewards, values, mask, gamma=0.9, lam=0.8)
    ref_adv, ref_ret = _gae_loop(rewards, values, mask, 0.9, 0.8)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-6)
    # Padding after the end contributes nothing: the real part equals GAE on the truncated row.
    short_adv, _ = L.gae_advantages(rewards[1:2, :4], values[1:2, :4], mask[1:2, :4], gamma=0.9, lam=0.8)
    np.testing.assert_allclose(adv[1, :4], short_adv[0], rtol=1e-5, atol=1e-6)


def test_masked_whiten_and_reductions():
    x = jnp.array([[1.0, 2.0, 100.0], [3.0, 0.0, 0.0]])
    mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    white = L.masked_whiten(x, mask)
    vals = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(np.asarray(white)[np.asarray(mask) > 0], (vals - 2.0) / np.sqrt(2 / 3), rtol=1e-6)
    # token mean (1+2+3)/3 = 2; sequence mean ((1+2)/2 + 3)/2 = 2.25
    np.testing.assert_allclose(L.aggregate(x, mask, "token"), 2.0)
    np.testing.assert_allclose(L.aggregate(x, mask, "sequence"), 2.25)
    with pytest.raises(ValueError, match="reduction"):
        L.aggregate(x, mask, "batch")


def test_ppo_policy_loss_hand_values():
    old = jnp.zeros((1, 3))
    logp = jnp.log(jnp.array([[1.5, 0.5, 1.1]]))  # ratios 1.5, 0.5, 1.1
    adv = jnp.array([[1.0, -2.0, 3.0]])
    mask = jnp.ones((1, 3))
    loss, metrics = L.ppo_policy_loss(logp, old, adv, mask, clip_eps=0.2)
    # token 0: max(-1.5, -1.2) = -1.2; token 1: max(1.0, 1.6) = 1.6; token 2: max(-3.3, -3.3) = -3.3
    np.testing.assert_allclose(loss, (-1.2 + 1.6 - 3.3) / 3, rtol=1e-6)
    np.testing.assert_allclose(metrics["clip_fraction"], 2 / 3)
    # dual clip c=3 caps the A<0 token at -c·A = 6 (not binding here: 1.6 < 6); with c=1.5 → cap 3 (still not);
    logp2 = jnp.log(jnp.array([[5.0, 1.0, 1.0]]))
    adv2 = jnp.array([[-1.0, 0.0, 0.0]])
    no_dual, _ = L.ppo_policy_loss(logp2, old, adv2, mask, reduction="token")
    dual, _ = L.ppo_policy_loss(logp2, old, adv2, mask, dual_clip=3.0, reduction="token")
    np.testing.assert_allclose(no_dual, 5.0 / 3, rtol=1e-6)
    np.testing.assert_allclose(dual, 3.0 / 3, rtol=1e-6)


def test_ppo_policy_loss_reduction_option_differs():
    logp = jnp.zeros((2, 3))
    adv = jnp.array([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    mask = jnp.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    token, _ = L.ppo_policy_loss(logp, logp, adv, mask, reduction="token")
    seq, _ = L.ppo_policy_loss(logp, logp, adv, mask, reduction="sequence")
    np.testing.assert_allclose(token, -(3 + 4) / 4)
    np.testing.assert_allclose(seq, -(1 + 4) / 2)


def test_ppo_value_loss_hand_values():
    values = jnp.array([[1.0, 0.0]])
    old = jnp.array([[0.5, 0.0]])
    returns = jnp.array([[2.0, 1.0]])
    mask = jnp.ones((1, 2))
    # token 0: V_clip = 0.5 + 0.2 = 0.7; max((1-2)^2, (0.7-2)^2) = 1.69; token 1: 1.0
    np.testing.assert_allclose(L.ppo_value_loss(values, old, returns, mask), 0.5 * (1.69 + 1.0) / 2, rtol=1e-6)
    np.testing.assert_allclose(L.ppo_value_loss(values, old, returns, mask, clip_eps=None), 0.5 * (1 + 1) / 2)


def test_group_advantages_hand_values():
    r = jnp.array([1.0, 2.0, 3.0, 0.0, 0.0, 6.0])
    std1 = np.std([1, 2, 3], ddof=1)
    std2 = np.std([0, 0, 6], ddof=1)
    np.testing.assert_allclose(
        L.group_advantages(r, 3),
        [-1 / (std1 + 1e-6), 0, 1 / (std1 + 1e-6), -2 / (std2 + 1e-6), -2 / (std2 + 1e-6), 4 / (std2 + 1e-6)],
        rtol=1e-5,
    )
    np.testing.assert_allclose(L.group_advantages(r, 3, method="drgrpo"), [-1, 0, 1, -2, -2, 4])
    np.testing.assert_allclose(L.group_advantages(r, 3, method="rloo"), [-1.5, 0, 1.5, -3, -3, 6])
    with pytest.raises(ValueError, match="groups of 4"):
        L.group_advantages(r, 4)


def test_grpo_loss_hand_values_and_jit():
    logp = jnp.log(jnp.array([[1.0, 1.0], [1.0, 1.0]]))
    ref = jnp.array([[0.0, -1.0], [0.0, 0.0]])
    mask = jnp.array([[1.0, 1.0], [1.0, 0.0]])
    adv = jnp.array([2.0, -1.0])
    loss, metrics = jax.jit(lambda *a: L.grpo_loss(*a, kl_coef=0.1))(logp, logp, ref, adv, mask)
    k3 = math.exp(-1.0) - 1 + 1.0  # d = 0 - (-1) = 1 on one token, 0 elsewhere
    np.testing.assert_allclose(loss, (-2 - 2 + 1 + 0.1 * k3) / 3, rtol=1e-6)
    np.testing.assert_allclose(metrics["kl"], k3 / 3, rtol=1e-6)
