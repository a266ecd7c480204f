"""Core PPO (`humanai_jax.rl.ppo`): that it learns, and that its wiring is right.

- Bandits through the real `ppo_iteration` path (experience -> GAE -> clipped updates -> KL control):
  the probability of the rewarded token must rise well above its start, and fall with the reward
  negated. A flipped reward sign or swapped old/new log-probs (ρ = exp(old - new)) move the policy the
  wrong way and fail these tests. One bandit is a logits table; one is a backbone LM sampled with the
  decoding engine and scored with `lm_logprob_fn` / `critic_value_fn` (the PLUS path).
- A 3-token episode (plus a shorter, padded one) against a hand computation: log-probs picked at the
  right positions, k1 KL, shaped rewards with R on the last action token, brute-force GAE and returns.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from humanai_jax import backbone
from humanai_jax.backbone import ModelConfig
from humanai_jax.rl import kl_control, ppo, reward_model as RM

# ----------------------------------------------------------------------------- table policies


def table_logprob_fn(params, tokens, attention):
    """A context-free policy: position t's distribution is softmax(params["logits"][t]) `[T-1, V]`."""
    del attention
    logp = jax.nn.log_softmax(params["logits"], axis=-1)  # [T-1, V]
    picked = jnp.take_along_axis(jnp.broadcast_to(logp, (tokens.shape[0], *logp.shape)), tokens[:, 1:, None], -1)
    return picked[..., 0]


def table_value_fn(params, tokens, attention):
    """Per-position values `params["v"]` `[T-1]`, the same for every row."""
    del attention
    return jnp.broadcast_to(params["v"], (tokens.shape[0], params["v"].shape[0]))


def run_table_bandit(sign: float, *, vocab=8, target=3, iterations=15, batch=64, seed=0):
    """One prompt token, one action token. Reward `sign·1[action == target]`. Returns p(target) per iteration."""
    cfg = ppo.PPOConfig(kl_coef=0.0)
    actor_tx, critic_tx = optax.adam(0.1), optax.adam(0.1)
    steps = ppo.make_ppo_steps(cfg, logprob_fn=table_logprob_fn, value_fn=table_value_fn, actor_tx=actor_tx,
                               critic_tx=critic_tx)
    actor_params = {"logits": jnp.zeros((1, vocab))}
    critic_params = {"v": jnp.zeros((1,))}
    state = {"actor": RM.init_slot(actor_tx, actor_params), "critic": RM.init_slot(critic_tx, critic_params),
             "ref": actor_params, "kl": kl_control.init_kl_state(cfg.kl_coef)}
    rng = jax.random.PRNGKey(seed)
    probs = [float(jax.nn.softmax(state["actor"]["params"]["logits"][0])[target])]
    for _ in range(iterations):
        rng, sample_rng, ppo_rng = jax.random.split(rng, 3)
        actions = jax.random.categorical(sample_rng, state["actor"]["params"]["logits"][0], shape=(batch,))
        seq = ppo.sequence_layout(np.zeros((batch, 1), np.int32), np.ones((batch, 1), np.int32),
                                  np.asarray(actions, np.int32)[:, None], np.ones((batch, 1), np.int32))
        reward = sign * (actions == target).astype(jnp.float32)
        state, metrics = ppo.ppo_iteration(state, seq, reward, ppo_rng, steps=steps, minibatch_size=batch // 2, cfg=cfg)
        assert np.isfinite(metrics["policy_loss"]) and np.isfinite(metrics["value_loss"])
        probs.append(float(jax.nn.softmax(state["actor"]["params"]["logits"][0])[target]))
    return probs


def test_table_bandit_learns_the_rewarded_token():
    probs = run_table_bandit(+1.0)
    assert probs[0] == pytest.approx(1 / 8)
    assert probs[-1] > 0.8, probs


def test_table_bandit_avoids_the_token_when_the_reward_is_negated():
    probs = run_table_bandit(-1.0)
    assert probs[-1] < 0.03, probs


# ----------------------------------------------------------------------------- backbone policy


LM_CFG = ModelConfig.small(vocab_size=8, d_model=16, n_layers=1, n_heads=2, max_position_embeddings=16)


def run_lm_bandit(sign: float, *, target=5, iterations=10, batch=32, seed=0):
    """A backbone LM continues the prompt [1] with one sampled token (`ppo.rollout`: decoding engine); reward
    `sign·1[token == target]`; critic = backbone + scalar head. Returns p(target | prompt) per iteration."""
    cfg = ppo.PPOConfig()  # PLUS defaults: k1 KL with β = 0.01, whitened advantages, clipped losses
    actor_tx, critic_tx = optax.adam(1e-2), optax.adam(1e-2)
    logprob_fn, value_fn = ppo.lm_logprob_fn(LM_CFG), ppo.critic_value_fn(LM_CFG)
    steps = ppo.make_ppo_steps(cfg, logprob_fn=logprob_fn, value_fn=value_fn, actor_tx=actor_tx, critic_tx=critic_tx)
    actor_rng, critic_rng, rng = jax.random.split(jax.random.PRNGKey(seed), 3)
    actor_params = backbone.init_params(LM_CFG, actor_rng)
    critic_params = RM.init_value_model(LM_CFG, critic_rng)
    state = {"actor": RM.init_slot(actor_tx, actor_params), "critic": RM.init_slot(critic_tx, critic_params),
             "ref": actor_params, "kl": kl_control.init_kl_state(cfg.kl_coef)}
    probe = jnp.array([[1, target]])

    def p_target(params):
        return float(jnp.exp(logprob_fn(params, probe, jnp.ones_like(probe))[0, 0]))

    probs = [p_target(actor_params)]
    prompts = [[1]] * batch
    for _ in range(iterations):
        rng, sample_rng, ppo_rng = jax.random.split(rng, 3)
        seq, reward, completions = ppo.rollout(
            state["actor"]["params"], LM_CFG, prompts, sample_rng,
            lambda _, comps: [sign * float(c[0] == target) for c in comps],
            prompt_len=1, completion_len=1, pad_id=0, temperature=1.0,
        )
        assert seq["tokens"].shape == (batch, 2) and all(len(c) == 1 for c in completions)
        state, metrics = ppo.ppo_iteration(state, seq, reward, ppo_rng, steps=steps, minibatch_size=batch // 2, cfg=cfg)
        probs.append(p_target(state["actor"]["params"]))
    return probs, metrics


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_backbone_policy_follows_the_reward_sign(sign):
    probs, metrics = run_lm_bandit(sign)
    assert 0.05 < probs[0] < 0.3, probs  # a fresh LM over 8 tokens: roughly uniform
    if sign > 0:
        assert probs[-1] > 0.75 and probs[-1] > 5 * probs[0], probs
    else:
        assert probs[-1] < 0.3 * probs[0], probs
    assert metrics["kl"] > 0.0 and metrics["kl_coef"] == pytest.approx(0.01)  # drifted from the reference


# ----------------------------------------------------------------------------- hand-computed episode


def log_softmax_np(x):
    x = np.asarray(x, np.float64)
    return x - (np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) + x.max(-1, keepdims=True))


def test_experience_matches_a_hand_computation_on_a_three_token_episode():
    """Row 0: prompt [pad, 1], completion [2, 3, 4] (3 actions). Row 1: prompt [1, 2], completion [5, 6, pad]
    (2 actions, right-padded). Position t scores token t + 1, so the action mask is [0, 1, 1, 1] / [0, 1, 1, 0]."""
    gamma, lam, beta = 0.9, 0.8, 0.1
    terminal = np.array([-0.7, 2.5])
    rng = np.random.default_rng(0)
    actor = {"logits": jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)}
    ref = {"logits": jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)}
    critic = {"v": jnp.asarray([0.3, -0.5, 1.2, 0.7], jnp.float32)}
    seq = ppo.sequence_layout(np.array([[0, 1], [1, 2]], np.int32), np.array([[0, 1], [1, 1]], np.int32),
                              np.array([[2, 3, 4], [5, 6, 0]], np.int32), np.array([[1, 1, 1], [1, 1, 0]], np.int32))
    np.testing.assert_array_equal(seq["action_mask"], [[0, 1, 1, 1], [0, 1, 1, 0]])
    cfg = ppo.PPOConfig(gamma=gamma, lam=lam, whiten_advantages=False)
    exp = ppo.compute_experience(actor, ref, critic, {k: jnp.asarray(v) for k, v in seq.items()}, jnp.asarray(terminal),
                                 jnp.float32(beta), logprob_fn=table_logprob_fn, value_fn=table_value_fn, cfg=cfg)

    la, lr = log_softmax_np(actor["logits"]), log_softmax_np(ref["logits"])
    v = np.asarray(critic["v"], np.float64)
    for b, actions in enumerate(([1, 2, 3], [1, 2])):  # action positions of each row
        tokens = seq["tokens"][b]
        logp = [la[t, tokens[t + 1]] for t in actions]
        ref_logp = [lr[t, tokens[t + 1]] for t in actions]
        np.testing.assert_allclose(exp["old_logp"][b, actions], logp, rtol=1e-5)
        np.testing.assert_allclose(exp["ref_logp"][b, actions], ref_logp, rtol=1e-5)
        kl = np.subtract(logp, ref_logp)  # k1
        rewards = -beta * kl
        rewards[-1] += terminal[b]  # R on the last action token
        np.testing.assert_allclose(exp["rewards"][b, actions], rewards, rtol=1e-5, atol=1e-6)
        # Brute force: A_t = Σ_l (γλ)^l δ_{t+l}, δ_t = r_t + γ V_{t+1} - V_t, V after the episode = 0.
        values = v[actions]
        next_values = np.append(values[1:], 0.0)
        deltas = rewards + gamma * next_values - values
        advantages = [sum((gamma * lam) ** k * deltas[i + k] for k in range(len(actions) - i)) for i in range(len(actions))]
        np.testing.assert_allclose(exp["advantages"][b, actions], advantages, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(exp["returns"][b, actions], np.add(advantages, values), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(exp["old_values"][b, actions], values, rtol=1e-6)
        np.testing.assert_allclose(exp["kl"][b], kl.mean(), rtol=1e-5, atol=1e-7)
    whitened = ppo.compute_experience(actor, ref, critic, {k: jnp.asarray(v) for k, v in seq.items()},
                                      jnp.asarray(terminal), jnp.float32(beta), logprob_fn=table_logprob_fn,
                                      value_fn=table_value_fn, cfg=ppo.PPOConfig(gamma=gamma, lam=lam))
    m = seq["action_mask"] > 0
    raw = np.asarray(exp["advantages"])[m]
    np.testing.assert_allclose(np.asarray(whitened["advantages"])[m], (raw - raw.mean()) / raw.std(), rtol=1e-4)


def test_monte_carlo_returns_without_discount_or_kl():
    """γ = λ = 1 and β = 0: every action's return is the terminal reward, and A_t = R - V_t."""
    seq = ppo.sequence_layout(np.array([[1]], np.int32), np.array([[1]], np.int32), np.array([[2, 3, 4]], np.int32),
                              np.array([[1, 1, 1]], np.int32))
    params = {"logits": jnp.zeros((3, 8))}
    critic = {"v": jnp.asarray([0.2, -0.4, 0.9])}
    exp = ppo.compute_experience(params, params, critic, {k: jnp.asarray(v) for k, v in seq.items()},
                                 jnp.asarray([1.5]), jnp.float32(0.0), logprob_fn=table_logprob_fn,
                                 value_fn=table_value_fn, cfg=ppo.PPOConfig(gamma=1.0, lam=1.0, whiten_advantages=False))
    np.testing.assert_allclose(exp["returns"][0], [1.5, 1.5, 1.5], rtol=1e-6)
    np.testing.assert_allclose(exp["advantages"][0], [1.3, 1.9, 0.6], rtol=1e-5)


def test_token_logprobs_brute_force():
    cfg = ModelConfig.small(vocab_size=23, d_model=16, n_layers=1, n_heads=2, max_position_embeddings=64)
    params = backbone.init_params(cfg, jax.random.PRNGKey(1))
    tokens = jnp.array([[1, 7, 9, 4, 2]])
    logp = ppo.token_logprobs(params, tokens, jnp.ones_like(tokens), cfg)
    logits = np.asarray(backbone.forward(params, tokens, cfg))[0]
    for t in range(4):  # position t's distribution scores token t + 1
        np.testing.assert_allclose(logp[0, t], log_softmax_np(logits[t])[int(tokens[0, t + 1])], rtol=1e-4, atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError, match="Unknown kl_controller 'pid'"):
        ppo.PPOConfig(kl_controller="pid")
    with pytest.raises(ValueError, match="needs kl_target > 0"):
        ppo.PPOConfig(kl_controller="adaptive")
    with pytest.raises(ValueError, match="Unknown kl_estimator"):
        ppo.PPOConfig(kl_estimator="k9")


def test_ppo_iteration_is_experience_then_minibatch_epochs_then_kl_control():
    """`ppo_iteration` with 2 epochs and the adaptive controller equals the hand-driven sequence of steps."""
    cfg = ppo.PPOConfig(epochs=2, kl_controller="adaptive", kl_target=0.01, kl_horizon=100.0)
    tx = optax.adam(0.05)
    steps = ppo.make_ppo_steps(cfg, logprob_fn=table_logprob_fn, value_fn=table_value_fn, actor_tx=tx, critic_tx=tx)
    actor_params = {"logits": jnp.asarray(np.random.default_rng(0).normal(size=(1, 8)), jnp.float32)}
    state = {"actor": RM.init_slot(tx, actor_params), "critic": RM.init_slot(tx, {"v": jnp.zeros((1,))}),
             "ref": {"logits": jnp.zeros((1, 8))}, "kl": kl_control.init_kl_state(0.05), "other": "kept"}
    actions = np.arange(8, dtype=np.int32)[:, None]
    seq = ppo.sequence_layout(np.zeros((8, 1), np.int32), np.ones((8, 1), np.int32), actions, np.ones((8, 1), np.int32))
    seq = {k: jnp.asarray(v) for k, v in seq.items()}
    reward = jnp.linspace(-1.0, 1.0, 8)
    rng = jax.random.PRNGKey(3)
    new_state, metrics = ppo.ppo_iteration(state, seq, reward, rng, steps=steps, minibatch_size=4, cfg=cfg)

    exp = steps["experience"](actor_params, state["ref"], state["critic"]["params"], seq, reward, jnp.float32(0.05))
    buffer = {**seq, **exp}
    actor, critic, n = state["actor"], state["critic"], 0
    for epoch_rng in (rng, jax.random.fold_in(rng, 1)):
        for index in ppo.minibatch_indices(8, 4, epoch_rng):
            actor, critic, _ = steps["update"](actor, critic, ppo.take_rows(buffer, index))
            n += 1
    assert n == 4 and new_state["other"] == "kept"
    np.testing.assert_allclose(new_state["actor"]["params"]["logits"], actor["params"]["logits"], rtol=1e-6)
    np.testing.assert_allclose(new_state["critic"]["params"]["v"], critic["params"]["v"], rtol=1e-6)
    observed = float(jnp.mean(exp["kl"]))
    assert metrics["kl"] == pytest.approx(observed, rel=1e-6) and metrics["kl_coef"] == pytest.approx(0.05)
    expected_beta = 0.05 * (1 + min(max(observed / 0.01 - 1, -0.2), 0.2) * 8 / 100)
    np.testing.assert_allclose(new_state["kl"]["kl_coef"], expected_beta, rtol=1e-6)
    np.testing.assert_array_equal(state["actor"]["params"]["logits"], actor_params["logits"])  # inputs untouched
