"""PLUS text side: tokenizer/chat template and the fixed-shape sequence layout the PPO buffer uses.
The reward model, critic and token log-probs are the core's: tests/test_rl_reward_model.py, tests/test_rl_ppo.py."""

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
