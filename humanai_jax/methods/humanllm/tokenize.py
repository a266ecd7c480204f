"""Chat samples -> token rows for SFT: chat template, assistant-only loss mask, packing, task mixing.

Loss mask: `mask[t] = 1` iff token t is a *target* that belongs to an assistant turn, from the turn's
first content token through its end-of-turn token (e.g. Qwen's `<|im_end|>`, Llama-3's `<|eot_id|>`),
so the model learns to stop. Template text after the end-of-turn token (Qwen's trailing newline) and
every prompt token are 0. The train step shifts by one: it predicts `tokens[t]` from `tokens[:t]`
with weight `mask[t]` (see `humanai_jax.train.losses.next_token_targets`).

Packing: samples are placed greedily (first fit, in order) into rows of `seq_len + 1` tokens; each
row carries `segment_ids` (1, 2, ...; 0 = padding) and `positions` that restart at 0 per sample, so
attention never crosses samples and every sample sees the same positions as unpacked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from humanai_jax.backbone.transformer import hidden_states, logits_from_hidden
from humanai_jax.train.losses import hidden_cross_entropy, next_token_targets, token_nll

END_OF_TURN_CANDIDATES = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def end_of_turn_id(tokenizer) -> int:
    """The id of the template's end-of-turn token (the first candidate the vocabulary knows, else EOS)."""
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN_CANDIDATES:
        if tok in vocab:
            return vocab[tok]
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no end-of-turn token and no eos_token")
    return tokenizer.eos_token_id


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def tokenize_chat(tokenizer, messages: Sequence[dict], *, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (tokens int32 [L], mask int8 [L]) for one conversation, via the tokenizer's chat template.

    The assistant span of turn i is found by rendering the conversation up to turn i with a generation
    prompt (prefix) and through turn i (full); the prefix must tokenize to a prefix of the full text.
    Raises if the template emits no end-of-turn token inside an assistant turn.
    """
    if tokenizer.chat_template is None:
        raise ValueError("tokenizer has no chat_template; set one (e.g. tokenize.CHATML_TEMPLATE)")
    eot = end_of_turn_id(tokenizer)
    full_ids = _ids(tokenizer, tokenizer.apply_chat_template(list(messages), tokenize=False))
    mask = np.zeros(len(full_ids), np.int8)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = _ids(tokenizer, tokenizer.apply_chat_template(list(messages[:i]), tokenize=False,
                                                               add_generation_prompt=True))
        through = _ids(tokenizer, tokenizer.apply_chat_template(list(messages[: i + 1]), tokenize=False))
        if through[: len(prefix)] != prefix or full_ids[: len(through)] != through:
            raise ValueError(f"chat template does not tokenize incrementally at turn {i}; cannot locate the "
                             f"assistant span")
        span = through[len(prefix):]
        ends = [k for k, t in enumerate(span) if t == eot]
        if not ends:
            raise ValueError(f"assistant turn {i} has no end-of-turn token {tokenizer.convert_ids_to_tokens(eot)!r}")
        mask[len(prefix): len(prefix) + ends[-1] + 1] = 1
    tokens = np.asarray(full_ids, np.int32)
    if max_len is not None:
        tokens, mask = tokens[:max_len], mask[:max_len]
    return tokens, mask


@dataclasses.dataclass
class PackedBatch:
    """Rows of `seq_len + 1` tokens: tokens/mask/segment_ids/positions are int32 [rows, seq_len + 1]."""

    tokens: np.ndarray
    mask: np.ndarray
    segment_ids: np.ndarray
    positions: np.ndarray
    sample_index: list  # per row: indices of the samples it holds, in segment order

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"tokens": self.tokens, "mask": self.mask, "segment_ids": self.segment_ids, "positions": self.positions}


def pack(samples: Sequence[tuple[np.ndarray, np.ndarray]], row_len: int, *, pad_id: int = 0,
         max_segments: int | None = None, window: int = 64) -> PackedBatch:
    """Greedy first-fit packing of (tokens, mask) samples into rows of `row_len` tokens.

    First fit searches only the last `window` rows (older rows are closed), which keeps packing linear
    in the number of samples and keeps the row order close to the sample order (the mixing order).
    A sample longer than `row_len` is truncated to it. `max_segments` caps samples per row (1 = no packing).
    """
    rows: list[list[int]] = []
    fill: list[int] = []
    for i, (tok, _) in enumerate(samples):
        n = min(len(tok), row_len)
        first_open = max(0, len(rows) - window)
        for r in range(first_open, len(rows)):
            used = fill[r]
            if used + n <= row_len and (max_segments is None or len(rows[r]) < max_segments):
                rows[r].append(i)
                fill[r] += n
                break
        else:
            rows.append([i])
            fill.append(n)
    shape = (len(rows), row_len)
    tokens = np.full(shape, pad_id, np.int32)
    mask = np.zeros(shape, np.int32)
    seg = np.zeros(shape, np.int32)
    pos = np.zeros(shape, np.int32)
    for r, members in enumerate(rows):
        at = 0
        for s, i in enumerate(members, 1):
            tok, m = samples[i]
            n = min(len(tok), row_len)
            tokens[r, at:at + n] = tok[:n]
            mask[r, at:at + n] = m[:n]
            mask[r, at] = 0  # a segment's first token is never a target (nothing before it in its segment)
            seg[r, at:at + n] = s
            pos[r, at:at + n] = np.arange(n)
            at += n
    return PackedBatch(tokens, mask, seg, pos, rows)


def sft_targets(batch: dict[str, jax.Array]):
    """Shifts packed rows [B, T+1]: inputs/positions/segments [B, T], labels [B, T], label mask [B, T]
    that is 0 where the label belongs to another segment than its input (segment boundaries and
    padding); the shift and mask are `humanai_jax.train.losses.next_token_targets`."""
    seg = batch["segment_ids"]
    inputs, labels, mask = next_token_targets(batch["tokens"], batch["mask"], segment_ids=seg)
    return inputs, batch["positions"][:, :-1], seg[:, :-1], labels, mask


def _sft_hidden(params, batch: dict[str, jax.Array], model_cfg, rules):
    inputs, positions, seg, labels, mask = sft_targets(batch)
    hidden = hidden_states(params, inputs, model_cfg, positions=positions, segment_ids=seg, rules=rules)
    return hidden, labels, mask, lambda h: logits_from_hidden(params, h, model_cfg, rules)


def sft_token_nll(params, batch: dict[str, jax.Array], model_cfg, rules=None):
    """Per-token NLL [B, T] (float32) and label mask [B, T] of a packed batch [B, T+1]
    (per-segment sums: `humanai_jax.train.losses.segment_sums`)."""
    hidden, labels, mask, project = _sft_hidden(params, batch, model_cfg, rules)
    return token_nll(project(hidden), labels), mask


def sft_loss_sum(params, batch: dict[str, jax.Array], model_cfg, rules=None, loss_chunk: int = 0):
    """(sum of masked next-token NLL, number of masked tokens): L = sum m_t nll_t / sum m_t after dividing.

    loss_chunk > 0 computes it `loss_chunk` positions at a time (`train.losses.chunked_cross_entropy`,
    the `train.loss_chunk` knob of docs/training.md); 0 projects the full [B, T, V] logits."""
    hidden, labels, mask, project = _sft_hidden(params, batch, model_cfg, rules)
    return hidden_cross_entropy(hidden, labels, mask, project, chunk_size=loss_chunk)


# --------------------------------------------------------------------------------------------------
# Task-balanced mixing


def mixture_weights(counts: dict[str, int], temperature: float = 0.0, caps: dict[str, int] | None = None) -> dict[str, float]:
    """Sampling probability per task ∝ min(n, cap)^temperature (0 = every task equally, 1 = proportional)."""
    sizes = {k: min(v, (caps or {}).get(k, v)) for k, v in counts.items() if v > 0}
    raw = {k: float(v) ** temperature for k, v in sizes.items()}
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def mixed_order(task_of_sample: Sequence[str], weights: dict[str, float], n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `n` samples drawn by first choosing a task by `weights`, then a sample of it (each task's
    samples are cycled through in a fresh permutation, so none repeats before all were used)."""
    by_task: dict[str, list[int]] = {}
    for i, t in enumerate(task_of_sample):
        by_task.setdefault(t, []).append(i)
    empty = sorted(t for t, w in weights.items() if w > 0 and not by_task.get(t))
    if not weights or empty:
        raise ValueError(f"mixed_order: no samples to draw from (tasks without samples: {empty or 'all'}); "
                         f"were all samples longer than data.seq_len and dropped?")
    tasks = sorted(weights)
    p = np.array([weights[t] for t in tasks])
    queues = {t: [] for t in tasks}
    out = np.empty(n, np.int64)
    for k, ti in enumerate(rng.choice(len(tasks), size=n, p=p / p.sum())):
        t = tasks[ti]
        if not queues[t]:
            queues[t] = list(rng.permutation(by_task[t]))
        out[k] = queues[t].pop()
    return out


def train_chat_tokenizer(texts, vocab_size: int, out_dir: str):
    """A byte-level BPE trained locally (`humanai_jax.data.train_tokenizer`) plus the ChatML special tokens
    `<|im_start|>`/`<|im_end|>` and a Qwen-style chat template, saved to `out_dir`."""
    from humanai_jax.data.tokenizer import train_tokenizer

    tok = train_tokenizer(texts, vocab_size, out_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML_TEMPLATE
    tok.save_pretrained(out_dir)
    return tok
