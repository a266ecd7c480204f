"""Core reward model (`humanai_jax.rl.reward_model`): reward read at the last real token under random
padding, critic initialised from the RM and aligned with next-token positions, and Bradley–Terry
training that separates a preferred from a dispreferred response on toy data."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from humanai_jax import backbone
from humanai_jax.backbone import ModelConfig
from humanai_jax.rl import ppo, reward_model as RM

CFG = ModelConfig.small(vocab_size=23, d_model=16, n_layers=1, n_heads=2, max_position_embeddings=64)


def pad(rows, width, side="right"):
    return ppo.pad_rows(rows, width, pad_id=0, side=side)


@pytest.fixture(scope="module")
def rm_params():
    return RM.init_value_model(CFG, jax.random.PRNGKey(0))


def test_reward_read_at_last_real_token_under_random_padding(rm_params):
    scores_fn = jax.jit(lambda p, t, m: RM.reward_scores(p, t, m, CFG))
    rng = np.random.default_rng(0)
    width, lengths = 12, (1, 3, 8)
    # Reference: each unpadded sequence alone, head applied to its final hidden state.
    rows = {n: rng.integers(5, 23, size=(2, n)).astype(np.int32) for n in lengths}
    expected = {
        n: np.asarray(backbone.hidden_states(rm_params["backbone"], jnp.asarray(r), CFG)[:, -1] @ rm_params["head"][:, 0])
        for n, r in rows.items()
    }
    for trial in range(6):
        picks = [(int(n), int(j)) for n, j in zip(rng.choice(lengths, size=4), rng.integers(0, 2, size=4))]
        tokens, mask = pad([rows[n][j] for n, j in picks], width, side="left" if trial % 2 else "right")
        # Garbage in the pad slots must not matter.
        tokens = np.where(mask > 0, tokens, rng.integers(0, 23, size=tokens.shape)).astype(np.int32)
        scores = scores_fn(rm_params, tokens, mask)
        np.testing.assert_allclose(scores, [expected[n][j] for n, j in picks], rtol=1e-4, atol=1e-5)


def test_last_token_index():
    mask = jnp.array([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(RM.last_token_index(mask), [2, 0, 3])


def test_critic_starts_as_reward_model_and_updates_independently(rm_params):
    critic = RM.init_critic_from_reward_model(rm_params)
    for a, b in zip(jax.tree.leaves(critic), jax.tree.leaves(rm_params)):
        np.testing.assert_array_equal(a, b)
    tokens = jnp.array([[3, 4, 5, 6]])
    mask = jnp.ones_like(tokens)
    values = RM.token_values(critic, tokens, mask, CFG)
    assert values.shape == (1, 3)  # position t: the state before token t + 1
    np.testing.assert_allclose(values[0, -1], RM.reward_scores(rm_params, tokens[:, :3], mask[:, :3], CFG)[0], rtol=1e-4)
    bumped = jax.tree.map(lambda x: x + 1.0, critic)
    assert not np.allclose(jax.tree.leaves(bumped)[0], jax.tree.leaves(rm_params)[0])


def toy_pairs(rng: np.random.Generator, n: int):
    """Prompts of 2-5 random words, then a response: the preferred one holds word 3 somewhere in it, the
    dispreferred one word 4 (position varies), each row ends on a random word (right-padded)."""
    chosen, rejected = [], []
    for _ in range(n):
        prompt = list(rng.integers(5, 23, size=rng.integers(2, 6)))
        filler = list(rng.integers(5, 23, size=3))
        at = int(rng.integers(0, 3))
        chosen.append(prompt + filler[:at] + [3] + filler[at:])
        rejected.append(prompt + filler[:at] + [4] + filler[at:])
    tokens, mask = pad(chosen + rejected, 10)
    return {"tokens": jnp.asarray(tokens), "attention": jnp.asarray(mask)}


def test_bradley_terry_training_separates_preferred_from_dispreferred():
    rng = np.random.default_rng(1)
    tx = optax.adam(3e-3)
    steps = RM.make_reward_model_steps(CFG, tx)
    rm = RM.init_slot(tx, RM.init_value_model(CFG, jax.random.PRNGKey(2)))
    held_out = toy_pairs(rng, 64)
    before = steps["score"](rm["params"], held_out)
    assert abs(float(jnp.mean(before["r_chosen"] - before["r_rejected"]))) < 0.1  # an untrained head is ~flat
    losses = []
    for _ in range(60):
        rm, logs = steps["update"](rm, toy_pairs(rng, 16))
        losses.append(float(logs["rm_loss"]))
    assert losses[0] == pytest.approx(np.log(2.0), abs=0.02)  # starts at chance
    assert np.mean(losses[-5:]) < 0.1
    after = steps["score"](rm["params"], held_out)
    assert float(jnp.mean(after["r_chosen"] > after["r_rejected"])) == 1.0
    assert float(jnp.mean(after["reward"])) > -0.1  # log σ(r_c - r_r) close to 0
    # Swapping chosen and rejected rows negates the margin: the model learned the preference, not an order.
    half = held_out["tokens"].shape[0] // 2
    swapped = {k: jnp.concatenate([v[half:], v[:half]]) for k, v in held_out.items()}
    np.testing.assert_allclose(steps["score"](rm["params"], swapped)["r_chosen"], after["r_rejected"], rtol=1e-5)


def test_score_pairs_has_no_gradient(rm_params):
    batch = toy_pairs(np.random.default_rng(3), 2)
    grads = jax.grad(lambda p: jnp.sum(RM.score_pairs(p, batch, CFG)["reward"]))(rm_params)
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(grads))
