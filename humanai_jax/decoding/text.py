"""Text glue around the engine: tokenizer of a checkpoint directory, chat templates, stop tokens,
incremental (streaming) detokenization and a text-in/text-out `generate_text`."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator, Sequence

import numpy as np

from humanai_jax.data.tokenizer import load_tokenizer
from humanai_jax.decoding.engine import generate, generate_stream

# Chat end-of-turn tokens of common families (Llama-3, Qwen/ChatML, Phi-3, Gemma).
CHAT_END_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>")

__all__ = [
    "IncrementalDetokenizer",
    "chat_prompt_ids",
    "generate_text",
    "load_tokenizer",
    "stop_token_ids",
    "stream_text",
]


def chat_prompt_ids(tokenizer, messages: Sequence[dict], *, add_generation_prompt: bool = True) -> list[int]:
    """Token ids of `messages` ([{"role", "content"}, ...]) rendered by the tokenizer's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat_template (tokenizer_config.json / chat_template.jinja)")
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
    # The template writes special tokens (BOS, headers) itself: do not add them twice.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def stop_token_ids(tokenizer, checkpoint_dir: str | pathlib.Path | None = None) -> tuple[int, ...]:
    """Stop ids: `generation_config.json` `eos_token_id` (int or list) if it names any, else the
    tokenizer's eos, plus any chat end-of-turn token in the vocabulary."""
    ids: list[int] = []
    gen = pathlib.Path(checkpoint_dir) / "generation_config.json" if checkpoint_dir else None
    if gen is not None and gen.exists():
        eos = json.loads(gen.read_text()).get("eos_token_id")
        ids += [eos] if isinstance(eos, int) else list(eos or [])
    # A generation_config.json without eos_token_id (many exports write only sampling defaults) must not
    # leave generation with no stop token: fall back to the tokenizer's eos.
    if not ids and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in CHAT_END_TOKENS if t in vocab]
    return tuple(dict.fromkeys(int(i) for i in ids))


class IncrementalDetokenizer:
    """Turns a growing token list into text deltas, for streaming.

    Byte-level BPE can split one character over several tokens, and SentencePiece decoders change
    leading spaces depending on context, so decoding tokens one at a time is wrong. As vLLM/TGI do,
    we decode a short window `[prefix, end)` and emit the text beyond `[prefix, read)` once it no
    longer ends in an incomplete character (U+FFFD).
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = False):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.tokens: list[int] = []
        self.prefix = 0
        self.read = 0

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens)

    def add(self, token: int) -> str:
        """Appends one token; returns the newly completed text (possibly empty)."""
        self.tokens.append(int(token))
        before = self._decode(self.tokens[self.prefix: self.read])
        now = self._decode(self.tokens[self.prefix:])
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.tokens)
            return now[len(before):]
        return ""

    def flush(self) -> str:
        """Whatever is still pending (e.g. an incomplete character at the end)."""
        before = self._decode(self.tokens[self.prefix: self.read])
        now = self._decode(self.tokens[self.prefix:])
        self.prefix = self.read = len(self.tokens)
        return now[len(before):]


def _trim(tokens: np.ndarray, length: int) -> list[int]:
    return [int(t) for t in tokens[:length]]


def generate_text(
    params,
    config,
    tokenizer,
    conversations: Sequence[Sequence[dict]] | Sequence[str],
    *,
    max_new_tokens: int,
    checkpoint_dir: str | pathlib.Path | None = None,
    skip_special_tokens: bool = True,
    **generate_kwargs,
) -> list[str]:
    """Chat conversations (lists of messages) or raw strings -> generated texts.

    Stop ids default to `stop_token_ids(tokenizer, checkpoint_dir)`; the pad id to the tokenizer's.
    Extra keyword arguments go to `generate` (temperature, top_k, top_p, rng, constraint, ...).
    """
    prompts = [
        chat_prompt_ids(tokenizer, c) if not isinstance(c, str) else tokenizer(c)["input_ids"] for c in conversations
    ]
    generate_kwargs.setdefault("stop_token_ids", stop_token_ids(tokenizer, checkpoint_dir))
    if tokenizer.pad_token_id is not None:
        generate_kwargs.setdefault("pad_id", tokenizer.pad_token_id)
    tokens, lengths = generate(params, config, prompts, max_new_tokens=max_new_tokens, **generate_kwargs)
    return [
        tokenizer.decode(_trim(t, n), skip_special_tokens=skip_special_tokens) for t, n in zip(tokens, lengths)
    ]


def stream_text(
    params, config, tokenizer, conversation: Sequence[dict] | str, *, max_new_tokens: int,
    checkpoint_dir=None, skip_special_tokens: bool = True, **generate_kwargs,
) -> Iterator[str]:
    """Yields text deltas for one conversation as tokens are decoded."""
    if isinstance(conversation, str):
        prompt = tokenizer(conversation)["input_ids"]
    else:
        prompt = chat_prompt_ids(tokenizer, conversation)
    generate_kwargs.setdefault("stop_token_ids", stop_token_ids(tokenizer, checkpoint_dir))
    if tokenizer.pad_token_id is not None:
        generate_kwargs.setdefault("pad_id", tokenizer.pad_token_id)
    detok = IncrementalDetokenizer(tokenizer, skip_special_tokens=skip_special_tokens)
    for tokens, emitted in generate_stream(params, config, [prompt], max_new_tokens=max_new_tokens, **generate_kwargs):
        if emitted[0]:
            delta = detok.add(int(tokens[0]))
            if delta:
                yield delta
    tail = detok.flush()
    if tail:
        yield tail
