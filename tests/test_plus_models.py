"""PLUS models: reward read at the last real token (property over random padding), critic init,
token log-probs against a brute-force softmax, tokenizer/chat template, fixed-shape sequence layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from humanai_jax import backbone
from humanai_jax.backbone import ModelConfig
from humanai_jax.methods.plus import data as D
from humanai_jax.methods.plus import loop, models
from humanai_jax.methods.plus import text as T

CFG = ModelConfig.small(vocab_size=23, d_model=16, n_layers=1, n_heads=2, max_position_embeddings=64)


@pytest.fixture(scope="module")
def rm_params():
    return models.init_value_model(CFG, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def scores_fn():
    return jax.jit(lambda p, t, m: models.reward_scores(p, t, m, CFG))


def test_reward_read_at_last_real_token_under_random_padding(rm_params, scores_fn):
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
        side = "left" if trial % 2 else "right"
        tokens, mask = T.pad_batch([rows[n][j] for n, j in picks], width, pad_id=0, side=side)
        # Garbage in the pad slots must not matter.
        tokens = np.where(mask > 0, tokens, rng.integers(0, 23, size=tokens.shape)).astype(np.int32)
        scores = scores_fn(rm_params, tokens, mask)
        np.testing.assert_allclose(scores, [expected[n][j] for n, j in picks], rtol=1e-4, atol=1e-5)


def test_last_token_index():
    mask = jnp.array([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(models.last_token_index(mask), [2, 0, 3])


def test_critic_starts_as_reward_model_and_updates_independently(rm_params):
    critic = models.init_critic_from_reward_model(rm_params)
    for a, b in zip(jax.tree.leaves(critic), jax.tree.leaves(rm_params)):
        np.testing.assert_array_equal(a, b)
    tokens = jnp.array([[3, 4, 5, 6]])
    mask = jnp.ones_like(tokens)
    values = models.critic_values(critic, tokens, mask, CFG)
    assert values.shape == (1, 3)
    np.testing.assert_allclose(values[0, -1], models.reward_scores(rm_params, tokens[:, :3], mask[:, :3], CFG)[0], rtol=1e-4)
    bumped = jax.tree.map(lambda x: x + 1.0, critic)
    assert not np.allclose(jax.tree.leaves(bumped)[0], jax.tree.leaves(rm_params)[0])


def test_token_logprobs_brute_force():
    params = backbone.init_params(CFG, jax.random.PRNGKey(1))
    tokens = jnp.array([[1, 7, 9, 4, 2]])
    mask = jnp.ones_like(tokens)
    logp = models.token_logprobs(params, tokens, mask, CFG)
    logits = np.asarray(backbone.forward(params, tokens, CFG))[0].astype(np.float64)
    for t in range(4):  # position t's distribution scores token t + 1
        row = logits[t]
        expected = row[int(tokens[0, t + 1])] - (np.log(np.exp(row - row.max()).sum()) + row.max())
        np.testing.assert_allclose(logp[0, t], expected, rtol=1e-4, atol=1e-5)


def test_tokenizer_chat_and_sequence_layout():
    tok = T.train_tokenizer(["Dogs run fast .", D.SUMMARY_INSTRUCTION, "prefers dogs"])
    chat = T.render_chat([{"role": "user", "content": "Dogs run"}], add_generation_prompt=True)
    assert chat == "<|user|> Dogs run <|end|> <|assistant|>"
    with pytest.raises(ValueError, match="system"):
        T.render_chat([{"role": "system", "content": "x"}], add_generation_prompt=False)
    codec = loop.Codec(tok, loop.Shapes(prompt_len=6, completion_len=4, rm_len=8))
    prompt = T.encode(tok, T.render_chat([{"role": "user", "content": "with ##Summary"}], add_generation_prompt=True))
    completion = codec.completion_ids("prefers dogs")
    assert T.decode(tok, completion) == "##Summary prefers dogs"  # <|end|> is special and skipped
    seq = codec.sequences([prompt], [completion])
    assert seq["tokens"].shape == (1, 10) and seq["action_mask"].shape == (1, 9)
    # Position t predicts token t+1: exactly the completion tokens are actions.
    predicted = seq["tokens"][0, 1:][seq["action_mask"][0] > 0]
    np.testing.assert_array_equal(predicted, completion)
    assert codec.summaries([prompt], [completion]) == ["prefers dogs"]
    assert codec.summaries([prompt], [completion[1:]]) == ["prefers dogs"]  # no marker: rule of §2.2
