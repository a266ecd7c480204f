"""`JaxChatBackend`: in-process chat over loaded parameters with `humanai_jax.decoding.generate`.

Applies the tokenizer's chat template (generation prompt on), decodes a padded batch with the jitted
KV-cache engine, stops at the template's end-of-turn / EOS ids, detokenizes (special tokens dropped)
and cuts at the first `stop` string. Randomness: request i of a call uses
`fold_in(PRNGKey(seed), i)` inside the engine (request id i), so the same seed, messages and config
give the same text. `temperature == 0` is greedy: n > 1 repeats the one greedy text.
Not supported (raise): `repetition_penalty`; `response_format` is accepted as a hint only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import numpy as np

from humanai_jax.agents.backend import ChatResult, GenConfig, Message, apply_stop, validate_messages
from humanai_jax.decoding import generate
from humanai_jax.decoding.text import chat_prompt_ids, stop_token_ids


class JaxChatBackend:
    """Args: params, model config, HF tokenizer (with a chat template); `max_batch` rows per decode call;
    `default_seed` is used when `cfg.seed` is None (and reported in the result usage)."""

    def __init__(self, params, config, tokenizer, *, name: str = "jax", max_batch: int = 16, default_seed: int = 0,
                 checkpoint_dir: str | None = None):
        self.params, self.config, self.tokenizer = params, config, tokenizer
        self.name = name
        self.max_batch = max_batch
        self.default_seed = default_seed
        self.stop_ids = stop_token_ids(tokenizer, checkpoint_dir)

    def chat(self, messages: Sequence[Message], cfg: GenConfig, *, tag: str = "") -> ChatResult:
        return self.chat_batch([messages], cfg, tags=[tag])[0]

    def chat_batch(self, batch, cfg: GenConfig, *, tags=None) -> list[ChatResult]:
        if cfg.repetition_penalty not in (None, 1.0):
            raise ValueError("JaxChatBackend does not implement repetition_penalty")
        for m in batch:
            validate_messages(m)
        n = cfg.n
        prompts = [chat_prompt_ids(self.tokenizer, m) for m in batch]
        rows = [p for p in prompts for _ in range(n)]  # row r = i * n + j: conversation i, choice j
        # Choice j of every conversation samples with key fold_in(seed, j), as the server does: a conversation's
        # output does not depend on where it sits in the batch, so chat_batch(...)[i] == chat(batch[i]).
        choice = np.tile(np.arange(n, dtype=np.int32), len(prompts))
        seed = self.default_seed if cfg.seed is None else cfg.seed
        start = time.perf_counter()
        texts, reasons, lengths = [], [], []
        for lo in range(0, len(rows), self.max_batch):
            chunk = rows[lo:lo + self.max_batch]
            tokens, lens = generate(
                self.params, self.config, chunk, max_new_tokens=cfg.max_tokens, temperature=cfg.temperature,
                top_p=None if cfg.top_p >= 1.0 else cfg.top_p, stop_token_ids=self.stop_ids,
                rng=jax.random.PRNGKey(seed), request_ids=choice[lo:lo + len(chunk)])
            for row, length in zip(np.asarray(tokens), np.asarray(lens)):
                ids = row[:length].tolist()
                stopped = bool(ids) and ids[-1] in self.stop_ids
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                text, cut = apply_stop(text, cfg.stop)
                texts.append(text)
                reasons.append("stop" if stopped or cut else "length")
                lengths.append(int(length))
        latency = time.perf_counter() - start
        out = []
        for i, p in enumerate(prompts):
            sl = slice(i * n, (i + 1) * n)
            out.append(ChatResult(texts[sl], reasons[sl], {"prompt_tokens": len(p),
                                                           "completion_tokens": sum(lengths[sl]), "seed": seed},
                                  latency / max(len(prompts), 1)))
        return out
