"""Core distillation helpers: capture a teacher's (messages, reply) pairs, cut prompts to the student's context."""

import pytest

from humanai_jax.agents import GenConfig, ScriptedBackend
from humanai_jax.agents.distill import CapturingBackend, DistillConfig, encode_pair, fit_messages


def test_capturing_backend_records_the_teachers_replies_exactly():
    teacher = ScriptedBackend([(r"a\..*", None, '{"x": 1}'), (r"b", None, lambda m: m[-1]["content"].upper())])
    cap = CapturingBackend(teacher)
    m1 = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    m2 = [{"role": "user", "content": "yo"}]
    assert cap.chat(m1, GenConfig(), tag="a.one").text == '{"x": 1}'
    assert [r.text for r in cap.chat_batch([m2, m2], GenConfig(), tags=["b", "b"])] == ["YO", "YO"]
    assert cap.pairs == [{"tag": "a.one", "messages": m1, "reply": '{"x": 1}'},
                         {"tag": "b", "messages": m2, "reply": "YO"}, {"tag": "b", "messages": m2, "reply": "YO"}]
    assert cap.name == teacher.name


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from humanai_jax.agents.distill import _tokenizer

    pairs = [{"messages": [{"role": "user", "content": "姓李，女孩，希望名字有诗意 " * 3}], "reply": '{"结果": "李安宁"}'}]
    return _tokenizer(pairs, DistillConfig(vocab_size=300), str(tmp_path_factory.mktemp("tok")))


def test_fit_messages_keeps_the_tail_and_says_when_it_cut(tok):
    msgs = [{"role": "system", "content": "规则"}, {"role": "user", "content": "姓李，女孩，希望名字有诗意"}]
    text = "system: 规则\nuser: 姓李，女孩，希望名字有诗意"
    assert fit_messages(tok, msgs, 10_000) == ([{"role": "user", "content": text}], False)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    (cut,), was_cut = fit_messages(tok, msgs, 3)
    assert was_cut and cut["content"] == tok.decode(ids[-3:]) and text.endswith(cut["content"])
    (tagged,), _ = fit_messages(tok, msgs, 3, "namegen.full.MOM.weights")
    assert tagged["content"] == "[namegen.full.MOM.weights]\n" + cut["content"]


def test_encode_pair_masks_exactly_the_reply_and_its_end_of_turn(tok):
    pair = {"messages": [{"role": "user", "content": "姓李"}], "reply": '{"结果": "李安宁"}'}
    tokens, mask, cut, reply_cut = encode_pair(tok, pair, DistillConfig(max_prompt_tokens=50, max_reply_tokens=60))
    reply = tok(pair["reply"], add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    assert not cut and not reply_cut
    assert tokens[mask == 1].tolist() == reply and int(mask.sum()) == len(reply)
    assert tok.decode(tokens[mask == 0]).endswith("<|im_start|>assistant\n")
    _, mask2, _, reply_cut2 = encode_pair(tok, pair, DistillConfig(max_prompt_tokens=50, max_reply_tokens=3))
    assert reply_cut2 and int(mask2.sum()) == 3
