"""Tokenizers and chat templates of the PLUS models. Two text sides with one interface (`ChatText`):

* `WordChat` (from-scratch models, the default): a word-level tokenizer trained locally with the
  `tokenizers` library and our chat template `<|user|> {content} <|end|> <|assistant|> {content} <|end|>`
  (the generation prompt is a trailing `<|assistant|>`). Role and pad tokens are special (skipped on
  decode); `##Summary` is an added, non-special token so a summary marker survives tokenization intact.
* `CheckpointChat` (`model.hf_path`): the checkpoint's own tokenizer and chat template, so a pretrained
  summarizer / RM reads the format it was trained on; a turn ends with the template's end-of-turn token.

Fixed-shape padding of token ids is the core's `rl.ppo.pad_rows`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from humanai_jax.decoding.text import CHAT_END_TOKENS, stop_token_ids

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


class WordChat:
    """The from-scratch text side: our word-level tokenizer and chat template."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.pad_id = token_id(tokenizer, PAD)
        self.end_id = token_id(tokenizer, END)
        self.stop_ids = (self.end_id,)
        self.vocab_size = tokenizer.get_vocab_size()

    def render(self, messages: Sequence[dict], *, add_generation_prompt: bool) -> str:
        return render_chat(messages, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return encode(self.tokenizer, text)

    def decode(self, ids: Sequence[int]) -> str:
        return decode(self.tokenizer, ids)

    def completion_ids(self, summary: str) -> list[int]:
        """The summarizer's reply for `summary` (an SFT target), end-of-turn token included."""
        return self.encode(f"{SUMMARY_TOKEN} {summary} {END}")

    def save(self, workdir: str) -> None:
        self.tokenizer.save(os.path.join(workdir, "tokenizer.json"))


class CheckpointChat:
    """A HF checkpoint's tokenizer (`transformers` fast tokenizer) and chat template.

    The end-of-turn id (SFT targets end with it, sampling stops at it) is the first chat end token the
    vocabulary has (`<|im_end|>`, `<|eot_id|>`, ...), else the tokenizer's eos; sampling also stops at
    every id `decoding.text.stop_token_ids` names. Padding uses `pad_token_id`, else the eos."""

    def __init__(self, tokenizer, checkpoint_dir: str):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"the tokenizer of {checkpoint_dir} has no chat_template: PLUS renders the summarizer's "
                             "and the RM's conversations with the checkpoint's template")
        self.tokenizer = tokenizer
        vocab = tokenizer.get_vocab()
        ends = [vocab[t] for t in CHAT_END_TOKENS if t in vocab]
        if not ends and tokenizer.eos_token_id is None:
            raise ValueError(f"the tokenizer of {checkpoint_dir} has neither a chat end token {CHAT_END_TOKENS} nor "
                             "an eos token: a summary could never end")
        self.end_id = int(ends[0] if ends else tokenizer.eos_token_id)
        self.stop_ids = tuple(dict.fromkeys((self.end_id, *stop_token_ids(tokenizer, checkpoint_dir))))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else self.end_id)
        self.vocab_size = len(tokenizer)

    def render(self, messages: Sequence[dict], *, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        # The template writes the special tokens itself: do not add BOS/EOS again.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(map(int, ids)), skip_special_tokens=True)

    def completion_ids(self, summary: str) -> list[int]:
        return self.encode(f"{SUMMARY_TOKEN} {summary}") + [self.end_id]

    def save(self, workdir: str) -> None:
        self.tokenizer.save_pretrained(os.path.join(workdir, "tokenizer"))


ChatText = WordChat | CheckpointChat
