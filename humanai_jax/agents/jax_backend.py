"""`JaxChatBackend`: in-process chat over loaded parameters with `humanai_jax.decoding.generate`.

Applies the tokenizer's chat template (generation prompt on), decodes a padded batch with the jitted
KV-cache engine, stops at the template's end-of-turn / EOS ids, detokenizes (special tokens dropped)
and cuts at the first `stop` string. Randomness: request i of a call uses
`fold_in(PRNGKey(seed), i)` inside the engine (request id i), so the same seed, messages and config
give the same text. `temperature == 0` is greedy: n > 1 repeats the one greedy text.
`response_format` ("json" or a JSON schema) is enforced as the server enforces it: those requests decode on an
in-process `serving.Scheduler` over the same parameters, with `decoding.json_constraint` masks per token (the
server's code path, so the texts equal the server's for the same seed); a schema outside the supported subset
raises `SchemaError`, a `max_tokens` below the shortest valid document raises `ValueError`.
Not supported (raise): `repetition_penalty`.
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
        self._scheduler = None  # built on the first JSON-constrained request (serving.Scheduler)
        self._json = None  # decoding.json_constraint.JsonConstraintFactory, likewise

    def close(self) -> None:
        """Stops the in-process scheduler of constrained requests, if one was started."""
        if self._scheduler is not None:
            self._scheduler.close()
            self._scheduler = None

    def chat(self, messages: Sequence[Message], cfg: GenConfig, *, tag: str = "") -> ChatResult:
        return self.chat_batch([messages], cfg, tags=[tag])[0]

    def chat_batch(self, batch, cfg: GenConfig, *, tags=None) -> list[ChatResult]:
        if cfg.repetition_penalty not in (None, 1.0):
            raise ValueError("JaxChatBackend does not implement repetition_penalty")
        for m in batch:
            validate_messages(m)
        n = cfg.n
        prompts = [chat_prompt_ids(self.tokenizer, m) for m in batch]
        if cfg.response_format is not None:
            return self._constrained(prompts, cfg)
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

    # ------------------------------------------------------------------ JSON-constrained requests
    def _constrained(self, prompts: list[list[int]], cfg: GenConfig) -> list[ChatResult]:
        """The server's path: a `Scheduler` with a JSON tracker per choice (masks on the host, applied on device)."""
        from humanai_jax.decoding.json_constraint import JsonConstraintFactory
        from humanai_jax.serving.scheduler import Request, SamplingSpec

        if self._json is None:
            self._json = JsonConstraintFactory(self.tokenizer, self.config.vocab_size)
        schema = None if cfg.response_format == "json" else dict(cfg.response_format)
        need = self._json.tracker(schema, self.stop_ids).min_tokens()  # SchemaError for an unsupported schema
        if need > cfg.max_tokens:
            raise ValueError(f"max_tokens={cfg.max_tokens} is too small for the shortest valid JSON output ({need} tokens)")
        scheduler = self._scheduler_for(max(map(len, prompts)) + cfg.max_tokens)
        seed = self.default_seed if cfg.seed is None else cfg.seed
        spec = SamplingSpec(max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=seed,
                            stop=tuple(cfg.stop or ()), n=cfg.n,
                            json_tracker_factory=lambda: self._json.tracker(schema, self.stop_ids))
        start = time.perf_counter()
        requests = [scheduler.submit(Request(p, spec, self.tokenizer)) for p in prompts]
        for r in requests:
            r.done.wait()
        latency = (time.perf_counter() - start) / max(len(prompts), 1)
        return [ChatResult([s.text for s in r.seqs], [s.finish_reason for s in r.seqs],
                           {"prompt_tokens": len(p), "completion_tokens": r.completion_tokens, "seed": seed}, latency)
                for p, r in zip(prompts, requests)]

    def _scheduler_for(self, length: int):
        """The in-process scheduler, rebuilt with a longer context when a request needs one (powers of two)."""
        from humanai_jax.serving.scheduler import Scheduler

        if self._scheduler is None or self._scheduler.max_len < length:
            self.close()
            max_len = 1 << max(8, (length - 1).bit_length())
            self._scheduler = Scheduler(self.params, self.config, self.tokenizer, self.stop_ids, rows=self.max_batch,
                                        max_len=max_len, seed=self.default_seed)
        return self._scheduler
