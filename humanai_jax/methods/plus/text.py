"""Tokenizer and chat template for the from-scratch PLUS models (a word-level tokenizer trained locally
with the `tokenizers` library). Fixed-shape padding of token ids is the core's `rl.ppo.pad_rows`.

Chat template (ours): `<|user|> {content} <|end|> <|assistant|> {content} <|end|>`; the generation
prompt is a trailing `<|assistant|>`. Role and pad tokens are special (skipped on decode); `##Summary`
is an added, non-special token so a summary marker survives tokenization and decoding intact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

PAD, UNK, USER, ASSISTANT, END = "<pad>", "<unk>", "<|user|>", "<|assistant|>", "<|end|>"
SPECIAL_TOKENS = (PAD, UNK, USER, ASSISTANT, END)
SUMMARY_TOKEN = "##Summary"


def train_tokenizer(texts: Iterable[str]) -> Tokenizer:
    """Word-level tokenizer over whitespace/punctuation pieces of `texts`."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    # No decoder: decoding joins pieces with single spaces, which keeps `##Summary` intact.
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1)
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    tokenizer.add_tokens([SUMMARY_TOKEN])
    return tokenizer


def render_chat(messages: Sequence[dict], *, add_generation_prompt: bool) -> str:
    """Applies our chat template to `[{role, content}, ...]`."""
    parts = []
    for message in messages:
        role = message["role"]
        if role not in ("user", "assistant"):
            raise ValueError(f"Unsupported chat role {role!r}; expected 'user' or 'assistant'")
        parts.append(f"{USER if role == 'user' else ASSISTANT} {message['content']} {END}")
    if add_generation_prompt:
        parts.append(ASSISTANT)
    return " ".join(parts)


def token_id(tokenizer: Tokenizer, token: str) -> int:
    found = tokenizer.token_to_id(token)
    if found is None:
        raise ValueError(f"token {token!r} is not in the tokenizer vocabulary")
    return found


def encode(tokenizer: Tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text).ids


def decode(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """Decodes with special tokens skipped (docs/plus.md §2.2 step 1)."""
    return tokenizer.decode(list(map(int, ids)), skip_special_tokens=True)
