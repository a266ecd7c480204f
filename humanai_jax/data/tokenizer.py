"""Tokenizers: train a byte-level BPE locally with `tokenizers`, saved as a Hugging Face
`PreTrainedTokenizerFast` directory (`tokenizer.json` + `tokenizer_config.json`), or load any HF
tokenizer directory (e.g. the one next to a checkpoint)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

EOS, PAD = "<|endoftext|>", "<|pad|>"


def _transformers():
    """transformers, imported when first needed: it is the `hf` extra (`pip install -e '.[hf]'`), not a core
    dependency, so SaD-only installs import this module without it."""
    try:
        import transformers
    except ImportError as e:
        raise ImportError("HF tokenizers need transformers, the `hf` extra of humanai_jax: "
                          "pip install -e '.[hf]' (or '.[all]')") from e
    return transformers


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str):
    """Trains a byte-level BPE with `vocab_size` entries (including EOS and PAD) on `texts`, saves it to
    `out_dir` and returns the `PreTrainedTokenizerFast`. Deterministic for the same texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    PreTrainedTokenizerFast = _transformers().PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD)
    os.makedirs(out_dir, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def load_tokenizer(path: str):
    """Loads a HF tokenizer directory (offline)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"Tokenizer directory {path} does not exist "
                                "(expected a HF tokenizer directory: tokenizer.json / tokenizer_config.json)")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"Tokenizer path {path} is not a directory (expected a HF tokenizer directory)")
    if not os.path.exists(os.path.join(path, "tokenizer.json")) and not os.path.exists(
        os.path.join(path, "tokenizer_config.json")
    ):
        raise FileNotFoundError(f"{path} holds no tokenizer.json / tokenizer_config.json")
    return _transformers().AutoTokenizer.from_pretrained(path)


def given_or_trained(path: str, cache_dir: str, train: Callable[[str], Any], *, chat: bool = False):
    """The tokenizer an experiment runs with: the one at `path` when set (a checkpoint's, or one the config
    names; with `chat` it must carry a chat template); else the one an earlier run of this workdir trained into
    `cache_dir` (a resumed run reuses it); else `train(cache_dir)`, which trains one on the training text only
    and saves it there."""
    if path:
        tok = load_tokenizer(path)
        if chat and not tok.chat_template:
            raise ValueError(f"tokenizer at {path} has no chat_template")
        return tok
    if os.path.exists(os.path.join(cache_dir, "tokenizer.json")):
        return load_tokenizer(cache_dir)
    return train(cache_dir)

