"""RecLM token rows: tokenizer, chat format, reply layout, and the per-variant label arrays.

Reply layout (docs/reclm.md §2.2, `--idx`): `"1. <SOI>T1<EOI>\\n 2. <SOI>T2<EOI>" + "\\n"` then the end-of-turn
token. Rows are assembled from token segments, so the tokens between `<SOI>` and `<EOI>` are exactly
`encode(title, add_special_tokens=False)`: the trie path of the item (the spec's test).

Chat format ("clean", docs/reclm.md §5.6 quirk 2): a tokenizer with a chat template uses it (HF checkpoints);
one trained here gets `<|system|>`/`<|user|>`/`<|assistant|>` headers and `<|eot|>` as end of turn.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from humanai_jax.methods.reclm.data import SYSTEM_PROMPT
from humanai_jax.methods.reclm.tokens import add_item_tokens

HEADERS = ("<|system|>", "<|user|>", "<|assistant|>")
EOT = "<|eot|>"


def train_reclm_tokenizer(texts: Sequence[str], vocab_size: int, out_dir: str):
    """A byte-level BPE fit on `texts` (the training text only), plus the chat headers, `<|eot|>`,
    `<SOI>` and `<EOI>` as special tokens; saved to `out_dir`."""
    from humanai_jax.data.tokenizer import train_tokenizer

    tok = train_tokenizer(texts, vocab_size, out_dir)
    tok.add_special_tokens({"additional_special_tokens": [*HEADERS, EOT]})
    add_item_tokens(tok)
    tok.save_pretrained(out_dir)
    return tok


@dataclasses.dataclass(frozen=True)
class ChatCodec:
    """Encodes prompts and replies for one tokenizer. `eot_id` ends the assistant turn (the stop token)."""

    tokenizer: object
    soi_id: int
    eoi_id: int
    eot_id: int
    own_format: bool

    @classmethod
    def create(cls, tokenizer) -> ChatCodec:
        soi, eoi = add_item_tokens(tokenizer)  # no-op when present
        own = EOT in tokenizer.get_vocab()
        if own:
            eot = tokenizer.convert_tokens_to_ids(EOT)
        elif getattr(tokenizer, "chat_template", None):
            eot = tokenizer.eos_token_id
        else:
            raise ValueError("the tokenizer has neither a chat_template nor the <|eot|> chat tokens of "
                             "train_reclm_tokenizer")
        if eot is None:
            raise ValueError("the tokenizer has no end-of-turn (eos) token")
        return cls(tokenizer, soi, eoi, int(eot), own)

    def ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, user_text: str) -> list[int]:
        """System + user turn + the assistant header (generation prompt)."""
        if self.own_format:
            tid = self.tokenizer.convert_tokens_to_ids
            return ([tid(HEADERS[0])] + self.ids(SYSTEM_PROMPT) + [self.eot_id] + [tid(HEADERS[1])]
                    + self.ids(user_text) + [self.eot_id] + [tid(HEADERS[2])])
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_text}]
        out = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        return [int(t) for t in out]

    def reply_ids(self, title_ids: Sequence[Sequence[int]], items: Sequence[int]) -> list[int]:
        """`1. <SOI>T<EOI>\\n 2. ...` + `\\n` + end of turn, from segments (module docstring)."""
        out: list[int] = []
        for n, item in enumerate(items):
            out += self.ids(f"{n + 1}. " if n == 0 else f"\n {n + 1}. ")
            out += [self.soi_id, *title_ids[item], self.eoi_id]
        return out + self.ids("\n") + [self.eot_id]


def title_token_ids(tokenizer, titles: Sequence[str]) -> list[list[int]]:
    ids = tokenizer(list(titles), add_special_tokens=False)["input_ids"]
    for i, t in enumerate(ids):
        if not t:
            raise ValueError(f"item {i} ({titles[i]!r}) tokenizes to nothing")
    return [list(map(int, t)) for t in ids]


def canonical_title(tokenizer):
    """`title_t = decode(encode(title))` (the reference's `reformat_titles`, without special tokens)."""
    return lambda t: tokenizer.decode(tokenizer(t, add_special_tokens=False)["input_ids"])


# ------------------------------------------------------------------------------ rows


def ret_lm_mask(reply: Sequence[int], soi_id: int, eoi_id: int) -> np.ndarray:
    """RecLM-ret's LM labels (§4): title tokens and `<EOI>` are not LM targets; `<SOI>` stays one."""
    reply = np.asarray(reply)
    mark = (reply == soi_id).astype(np.int32) - (reply == eoi_id).astype(np.int32)
    inside = np.cumsum(mark) - mark  # the spec's "cumsum - own mark": 1 strictly after an SOI through its EOI
    return (inside <= 0).astype(np.float32)


def build_row(prompt: Sequence[int], reply: Sequence[int], row_len: int, *, lm_mask: np.ndarray | None = None):
    """(`tokens [row_len]` int32 right-padded with 0, `mask [row_len]` f32 = 1 on reply tokens).
    A row longer than `row_len` keeps the prompt's *last* tokens (the reference keeps a message's last
    500 tokens); the reply is never cut."""
    if len(reply) >= row_len:
        raise ValueError(f"a reply of {len(reply)} tokens does not fit a row of {row_len}; raise data.seq_len")
    prompt = list(prompt)[-(row_len - len(reply)):]
    tokens = np.zeros((row_len,), np.int32)
    mask = np.zeros((row_len,), np.float32)
    n = len(prompt) + len(reply)
    tokens[:n] = list(prompt) + list(reply)
    mask[len(prompt):n] = 1.0 if lm_mask is None else lm_mask
    return tokens, mask


def retrieval_targets(tokens: np.ndarray, reply_start: int, items: Sequence[int], soi_id: int,
                      max_spans: int) -> tuple[np.ndarray, np.ndarray]:
    """(`pos [R]`, `item [R]`, -1 padded): the input position whose hidden state predicts each reply
    `<SOI>` (the token before it) and the item it opens."""
    pos = np.full((max_spans,), -1, np.int32)
    item = np.full((max_spans,), -1, np.int32)
    sois = [p for p in np.flatnonzero(tokens == soi_id) if p >= reply_start]
    if len(sois) != len(items):
        raise ValueError(f"reply has {len(sois)} <SOI> but {len(items)} items")
    for r, (p, i) in enumerate(zip(sois[:max_spans], items)):
        pos[r], item[r] = p - 1, i
    return pos, item


def save_titles(path: str, titles: Sequence[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(titles) + "\n")
