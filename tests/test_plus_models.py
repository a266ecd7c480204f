"""PLUS text side: tokenizer/chat template and the fixed-shape sequence layout the PPO buffer uses.
The reward model, critic and token log-probs are the core's: tests/test_rl_reward_model.py, tests/test_rl_ppo.py."""

import jax
import numpy as np
import pytest

from humanai_jax.methods.plus import data as D, loop, text as T


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


def _loop_fixture(n=8):
    """A real codec over Attributes train examples, and fake jitted steps that record what they are given."""
    import jax.numpy as jnp

    from humanai_jax.methods.plus import attributes as A

    spec = A.Spec()
    examples = A.examples(spec, "train", n, seed=0)
    texts = A.vocabulary_texts(spec) + [D.RM_PREFIX, "User: Assistant:"]
    codec = loop.Codec(T.train_tokenizer(texts), loop.Shapes(prompt_len=176, completion_len=10, rm_len=64))
    calls = []

    def rm_update(rm, batch):
        calls.append(np.asarray(batch["tokens"]))
        return {"n": rm["n"] + 1}, {"rm_loss": jnp.float32(0.0)}

    def score(params, inputs):
        rows = inputs["tokens"].shape[0] // 2
        return {"reward": jnp.full((rows,), -0.25), "r_chosen": jnp.ones(rows), "r_rejected": jnp.zeros(rows)}

    state = {"step": 0, "rng": jax.random.PRNGKey(0), "rm": {"n": 0, "params": None}, "actor": {"params": None}}
    return examples, codec, {"score": score, "rm_update": rm_update, "ppo_config": None, "ppo": None}, state, calls


@pytest.mark.parametrize("rm_epochs", [1, 3])
def test_rm_epochs_pass_over_every_row_once_per_epoch(rm_epochs):
    """rm_epochs passes of the RM per rollout batch, each a permutation of the batch's rows in minibatches."""
    examples, codec, steps, state, calls = _loop_fixture(8)
    new, _ = loop.plus_iteration(state, examples, steps=steps, codec=codec, actor_cfg=None, oracle=str,
                                 method="oracle", train_batch=4, rm_batch=2, temperature=1.0, rm_epochs=rm_epochs)
    assert new["rm"]["n"] == rm_epochs * 4 == len(calls)
    # Brute-force reference: each epoch's minibatches hold every (chosen) row of the batch exactly once.
    rows = codec.rm_inputs([ex.user_type for ex in examples], [ex.train for ex in examples])["tokens"][:8]
    want = sorted(map(tuple, rows))
    for e in range(rm_epochs):
        got = [tuple(r) for batch in calls[4 * e : 4 * e + 4] for r in batch[: len(batch) // 2]]
        assert sorted(got) == want


def test_diagnostic_reward_replaces_the_rm_reward_in_ppo(monkeypatch):
    """ppo.reward=summary_score (a diagnosis): PPO receives the label-reading score of each sampled summary,
    not the RM's log σ; the RM still trains on the batch."""
    from humanai_jax.methods.plus import attributes as A
    from humanai_jax.rl import ppo

    examples, codec, steps, state, calls = _loop_fixture(4)
    summaries = ["prefers brief casual funny prose", "prefers detailed formal serious list", "prefers", "x"]
    prompts = [codec.prompt_ids(ex) for ex in examples]
    monkeypatch.setattr(loop, "sample_summaries", lambda *a, **k: (prompts, [[1, 2]] * 4, summaries))
    seen = {}

    def fake_ppo_iteration(state, seq, reward, rng, **kw):
        seen["reward"] = np.asarray(reward)
        return state, {"policy_loss": 0.0}

    monkeypatch.setattr(ppo, "ppo_iteration", fake_ppo_iteration)
    kw = dict(steps=steps, codec=codec, actor_cfg=None, oracle=A.oracle_summary, method="plus", train_batch=2,
              rm_batch=2, temperature=1.0)
    loop.plus_iteration(state, examples, **kw)
    np.testing.assert_allclose(seen["reward"], -0.25)  # the RM's reward (the fake scores every row -0.25)
    _, metrics = loop.plus_iteration(state, examples, diagnostic_reward=A.summary_attribute_accuracy, **kw)
    want = [A.summary_attribute_accuracy(z, ex.user_type) for z, ex in zip(summaries, examples)]
    np.testing.assert_allclose(seen["reward"], want)
    assert metrics["diagnostic_reward"] == pytest.approx(np.mean(want)) and len(calls) == 4
