"""Every NAMeGEn model call: one `Caller` that sends messages through a ChatBackend, parses JSON with the
shared extraction ladder (`humanai_jax.agents.extract_json`), validates, repairs with a Chinese user turn
quoting the error (at most `max_attempts` tries, then `StructuredOutputError`), and writes one trace line
per call.

Trace (`traces.jsonl`, docs/agents.md §4): `{"type": "llm_call", run_id, step, system, agent (the tag),
item_id, round, attempt, prompt_hash, messages, gen_config, backend, response, usage, latency_s, parsed,
parse_error}`; events `{"type": "event", run_id, step, system, item_id, name, data}` (flags, thresholds).
The repair loop is ours rather than `agents.chat_json` because every attempt must be traced with its own
usage and latency, and the repair turn is Chinese.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from humanai_jax.agents import GenConfig, StructuredOutputError, extract_json

__all__ = ["Tracer", "Caller", "prompt_hash"]

REPAIR_TURN = "你的回复无法使用：{error}\n请只输出修正后的 JSON，不要输出其他内容。"


def prompt_hash(messages: Sequence[dict]) -> str:
    payload = json.dumps([dict(m) for m in messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class Tracer:
    """Appends trace records to `path` (UTF-8, one object per line, flushed per line). `path=None` keeps them
    in memory only (`self.records`, always filled)."""

    def __init__(self, path: str | None, *, run_id: str = "", system: str = "namegen", keep: bool = True):
        self.path, self.run_id, self.system, self.keep = path, run_id, system, keep
        self.records: list[dict] = []
        self.step = 0
        self._lock = threading.Lock()
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            if os.path.exists(path):  # a resumed run continues the step count
                from humanai_jax.agents.stages import repair_torn_tail

                repair_torn_tail(path)
                with open(path, encoding="utf-8") as f:
                    self.step = sum(1 for line in f if line.strip())

    def write(self, record: dict) -> None:
        with self._lock:
            rec = {"run_id": self.run_id, "step": self.step, "system": self.system, **record}
            self.step += 1
            if self.keep:
                self.records.append(rec)
            if self.path:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")

    def event(self, name: str, data: dict, *, item_id: str = "") -> None:
        self.write({"type": "event", "item_id": item_id, "name": name, "data": data})


class Caller:
    """Backend + decoding config + tracer. `prefix` is prepended to every tag (e.g. "namegen")."""

    def __init__(self, backend, cfg: GenConfig, tracer: Tracer, *, max_attempts: int = 3, prefix: str = ""):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.backend, self.cfg, self.tracer, self.max_attempts, self.prefix = backend, cfg, tracer, max_attempts, prefix
        self.calls = 0

    def _tag(self, tag: str) -> str:
        return f"{self.prefix}.{tag}" if self.prefix else tag

    def _send(self, tag: str, messages: list[dict], *, item_id: str, round_: int | None, attempt: int):
        res = self.backend.chat(messages, self.cfg, tag=self._tag(tag))
        self.calls += 1
        text = res.text
        rec = {"type": "llm_call", "agent": self._tag(tag), "item_id": item_id, "round": round_, "attempt": attempt,
               "prompt_hash": prompt_hash(messages), "messages": messages, "gen_config": self.cfg.to_dict(),
               "backend": getattr(self.backend, "name", type(self.backend).__name__), "response": list(res.texts),
               "usage": res.usage, "latency_s": res.latency_s}
        return text, rec

    def ask_text(self, tag: str, messages: list[dict], *, item_id: str = "", round_: int | None = None) -> str:
        text, rec = self._send(tag, list(messages), item_id=item_id, round_=round_, attempt=1)
        self.tracer.write({**rec, "parsed": None, "parse_error": None})
        return text

    def ask(self, tag: str, messages: list[dict], parse: Callable[[str], Any], *, item_id: str = "",
            round_: int | None = None, raw: list | None = None) -> Any:
        """Asks, parses with `parse(text)`; a parse error goes back to the model; capped. `raw` (a list)
        receives the raw texts of every attempt."""
        history = list(messages)
        attempts = []
        for attempt in range(1, self.max_attempts + 1):
            text, rec = self._send(tag, history, item_id=item_id, round_=round_, attempt=attempt)
            if raw is not None:
                raw.append(text)
            try:
                value = parse(text)
            except Exception as err:  # noqa: BLE001 - every parse/validation error is sent back to the model
                error = f"{type(err).__name__}: {err}"
                self.tracer.write({**rec, "parsed": None, "parse_error": error})
                attempts.append({"attempt": attempt, "text": text, "error": error})
                history = history + [{"role": "assistant", "content": text},
                                     {"role": "user", "content": REPAIR_TURN.format(error=err)}]
                continue
            self.tracer.write({**rec, "parsed": value, "parse_error": None})
            return value
        raise StructuredOutputError(self._tag(tag), attempts)

    def ask_json(self, tag: str, messages: list[dict], validate: Callable[[Any], Any] | None = None, **kw) -> Any:
        """`ask` with the JSON extraction ladder, then `validate(obj)` (which may convert, or raise)."""
        def parse(text: str):
            obj = extract_json(text)
            return validate(obj) if validate is not None else obj

        return self.ask(tag, messages, parse, **kw)
