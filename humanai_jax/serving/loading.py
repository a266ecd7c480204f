"""What the server serves: a HF checkpoint directory (as `backbone.load_pretrained` reads it) plus
the tokenizer found in it (or in `--tokenizer DIR`), and a tiny random checkpoint for tests and
offline demos (`make_tiny_checkpoint`)."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

from humanai_jax.decoding.text import load_tokenizer, stop_token_ids

# Used when the tokenizer has no chat template (e.g. the project's own tiny LM, trained on raw text).
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


@dataclasses.dataclass
class LoadedModel:
    name: str
    params: object
    config: object
    tokenizer: object
    stop_ids: tuple[int, ...]
    path: str


def load_model(model_dir: str, *, tokenizer_dir: str | None = None, name: str | None = None,
               dtype: str = "float32") -> LoadedModel:
    """Loads `model_dir` (HF layout: config.json + safetensors) and its tokenizer. A tokenizer without a
    chat template gets ChatML when its vocabulary has `<|im_start|>`/`<|im_end|>`, else a plain
    "role: content" template (so chat requests work on raw-text LMs too)."""
    from humanai_jax.backbone import load_pretrained

    path = pathlib.Path(model_dir)
    config, params = load_pretrained(path, dtype=dtype)
    tok_dir = tokenizer_dir or (str(path) if (path / "tokenizer.json").exists() or (
        path / "tokenizer_config.json").exists() else str(path.parent / "tokenizer"))
    tokenizer = load_tokenizer(tok_dir)
    if not getattr(tokenizer, "chat_template", None):
        vocab = tokenizer.get_vocab()
        tokenizer.chat_template = CHATML_TEMPLATE if "<|im_end|>" in vocab and "<|im_start|>" in vocab \
            else PLAIN_TEMPLATE
    stops = stop_token_ids(tokenizer, path)
    if not stops:
        raise ValueError(f"{model_dir}: no stop token (no eos_token_id in generation_config.json or tokenizer)")
    default_name = path.resolve().parent.name if path.name == "hf_export" else path.name  # a run's export
    return LoadedModel(name or default_name, params, config, tokenizer, stops, str(path))


def make_tiny_tokenizer(path: str | os.PathLike, *, vocab_size: int = 320, corpus: list[str] | None = None):
    """A byte-level BPE (ChatML template, `<|im_end|>` = eos) trained on a few lines, saved to `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = corpus or [
        "The quick brown fox jumps over the lazy dog.", "Recommend three movies like Alien, please.",
        '{"name": "Ada", "age": 36, "tags": ["math", "code"], "ok": true}', "Crème brûlée, naïve café 🙂",
    ] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        chat_template=CHATML_TEMPLATE)
    tokenizer.save_pretrained(path)
    return tokenizer


def make_tiny_checkpoint(path: str | os.PathLike, *, vocab_size: int = 320, d_model: int = 64, n_layers: int = 2,
                         seed: int = 0, corpus: list[str] | None = None) -> str:
    """Writes a random-weight Qwen2-style checkpoint with `make_tiny_tokenizer`'s tokenizer to `path`; no
    network, a second or two. Returns the path."""
    import jax

    from humanai_jax.backbone import ModelConfig, init_params, save_pretrained

    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tiny_tokenizer(path, vocab_size=vocab_size, corpus=corpus)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = ModelConfig(vocab_size=len(tokenizer), d_model=d_model, n_layers=n_layers, n_heads=4, n_kv_heads=2,
                         head_dim=d_model // 4, mlp_dim=2 * d_model, model_type="qwen2", qkv_bias=True,
                         initializer_range=0.5, eos_token_id=eos, pad_token_id=0, max_position_embeddings=4096)
    params = init_params(config, jax.random.key(seed))
    save_pretrained(path, config, params)
    (path / "serving_tiny.json").write_text(json.dumps({"seed": seed, "random_weights": True}) + "\n")
    return str(path)
