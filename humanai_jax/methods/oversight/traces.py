"""Trace records for the dialogue protocols (docs/agents.md §4): one JSONL file per run,
`llm_call` records for every chat call and `event` records for every decision the metrics use, so each
metric is recomputable from `traces.jsonl` alone (`debate.metrics_from_events`, `sandwich.metrics_from_events`)."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from humanai_jax.agents.backend import ChatBackend, GenConfig


class TraceLog:
    """Appends records to `path` (None: keeps them in memory only, for tests); `records` holds all of them."""

    def __init__(self, path: str | None, system: str, run_id: str = "run"):
        self.path, self.system, self.run_id = path, system, run_id
        self.records: list[dict] = []
        self._step = 0
        self._lock = threading.Lock()
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            open(path, "w").close()

    def _write(self, record: dict) -> None:
        with self._lock:
            record = {"run_id": self.run_id, "step": self._step, "system": self.system, **record}
            self._step += 1
            self.records.append(record)
            if self.path:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def call(self, backend: ChatBackend, messages: list[dict], cfg: GenConfig, *, agent: str, **meta) -> str:
        """backend.chat(...) with its record written; returns the text."""
        start = time.time()
        text = backend.chat(messages, cfg, tag=agent).text
        self._write({"type": "llm_call", "agent": agent, **meta, "messages": messages, "gen_config": cfg.to_dict(),
                     "backend": getattr(backend, "name", type(backend).__name__), "response": [text],
                     "latency_s": time.time() - start, "seed": cfg.seed})
        return text

    def parsed(self, agent: str, raw: list[str], parsed: Any, error: str | None, **meta) -> None:
        self._write({"type": "llm_call", "agent": agent, **meta, "response": raw, "parsed": parsed,
                     "parse_error": error, "attempt": len(raw)})

    def event(self, name: str, **data) -> None:
        self._write({"type": "event", "name": name, "data": data})

    def events(self, name: str) -> list[dict]:
        return [r["data"] for r in self.records if r["type"] == "event" and r["name"] == name]


def read_events(path: str, name: str) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line_no}: invalid JSON: {e.msg}") from None
            if rec.get("type") == "event" and rec.get("name") == name:
                out.append(rec["data"])
    return out
