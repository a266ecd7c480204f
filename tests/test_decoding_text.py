"""Text glue: chat templates, stop ids, streaming detokenization, and text generation from a HF
checkpoint directory (model + tokenizer made locally) against transformers."""

import json

import pytest

from humanai_jax.backbone import load_pretrained
from humanai_jax.decoding.text import (
    IncrementalDetokenizer,
    chat_prompt_ids,
    generate_text,
    load_tokenizer,
    stop_token_ids,
    stream_text,
)

torch = pytest.importorskip("torch")
import transformers  # noqa: E402

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Crème brûlée, naïve café, façade — déjà vu!",
    "日本語のテキストと絵文字 🙂🚀 を含む文章。",
    "Recommend me three movies like Alien and Blade Runner, please.",
] * 10


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML,
    )
    path = tmp_path_factory.mktemp("ckpt")
    tokenizer.save_pretrained(path)
    cfg = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, initializer_range=0.3, pad_token_id=0, eos_token_id=[0, 2], attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    with torch.no_grad():  # make the end-of-turn token likely, so some rows stop early
        model.lm_head.weight[2] += 0.6 * model.model.norm.weight.sign()
    model.save_pretrained(path)
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": [0, 2], "pad_token_id": 0}))
    return path, model


CONVERSATIONS = [
    [{"role": "user", "content": "Recommend me three movies like Alien."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Crème brûlée?"}],
]


def test_chat_prompt_and_stop_ids(checkpoint):
    path, _ = checkpoint
    tokenizer = load_tokenizer(str(path))
    ids = chat_prompt_ids(tokenizer, CONVERSATIONS[1])
    text = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nCrème brûlée?<|im_end|>\n<|im_start|>assistant\n"
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert stop_token_ids(tokenizer, path) == (0, 2)
    assert stop_token_ids(tokenizer) == (2,)  # tokenizer eos (= <|im_end|>), the chat end token


def test_stop_ids_fall_back_to_tokenizer_eos_when_generation_config_names_none(tmp_path):
    class Tok:  # a base-model tokenizer: an eos that is not a chat end-of-turn token
        eos_token_id = 5

        def get_vocab(self):
            return {"</s>": 5, "hello": 6}

    (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": 0.7}))
    assert stop_token_ids(Tok(), tmp_path) == (5,)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 6}))
    assert stop_token_ids(Tok(), tmp_path) == (6,)


def test_incremental_detokenizer_reassembles_multibyte_text(checkpoint):
    tokenizer = load_tokenizer(str(checkpoint[0]))
    for text in CORPUS[:4] + ["<|im_start|>user\n🙂🙂 ok<|im_end|>"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        detok = IncrementalDetokenizer(tokenizer)
        deltas = [detok.add(t) for t in ids] + [detok.flush()]
        assert "".join(deltas) == text
        assert not any("\ufffd" in d for d in deltas)
    assert len(tokenizer("🙂", add_special_tokens=False)["input_ids"]) > 1  # a character split over tokens


def test_generate_text_matches_transformers_and_streaming(checkpoint):
    path, model = checkpoint
    tokenizer = load_tokenizer(str(path))
    config, params = load_pretrained(path)
    ours = generate_text(params, config, tokenizer, CONVERSATIONS, max_new_tokens=24, checkpoint_dir=path)

    tokenizer.padding_side = "left"
    prompts = [chat_prompt_ids(tokenizer, c) for c in CONVERSATIONS]
    batch = tokenizer.pad({"input_ids": prompts}, return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=24, do_sample=False, eos_token_id=[0, 2], pad_token_id=0)
    width = batch["input_ids"].shape[1]
    ref = [tokenizer.decode(row[width:], skip_special_tokens=True) for row in out]
    assert ours == ref
    assert any(len(o) for o in ours)
    streamed = "".join(stream_text(params, config, tokenizer, CONVERSATIONS[0], max_new_tokens=24, checkpoint_dir=path))
    assert streamed == ours[0]
