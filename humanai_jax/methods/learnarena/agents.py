"""`RoleAgent`: one chat call `[system, user=observation]` on a ChatBackend, with a swappable system
prompt (roles swap it temporarily and restore it, as the reference's agents do) and a call tag.

`TracedBackend` wraps any backend and writes every call (role agents' and the judge's) to the trace
(docs/agents.md §4). A failed call raises `BackendError` (never an error string as output); the loop
decides what a failure means.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading

from humanai_jax.agents import GenConfig
from humanai_jax.methods.learnarena.prompting import PROMPTS

__all__ = ["RoleAgent", "Tracer", "TracedBackend"]


class Tracer:
    """Writes `llm_call` and `event` records with a run id and a monotonic step (thread-safe)."""

    def __init__(self, writer=None, run_id: str = "", system: str = "learnarena"):
        self.writer, self.run_id, self.system = writer, run_id, system
        self._step = itertools.count()
        self._lock = threading.Lock()
        self.context: dict = {}

    def write(self, record: dict) -> None:
        if self.writer is None:
            return
        with self._lock:
            self.writer.write({"run_id": self.run_id, "step": next(self._step), "system": self.system,
                               **self.context, **record})

    def event(self, name: str, data: dict) -> None:
        self.write({"type": "event", "name": name, "data": data})


class TracedBackend:
    """A ChatBackend that writes one `llm_call` record per request to `tracer` (then returns the result)."""

    def __init__(self, inner, tracer: Tracer):
        self.inner, self.tracer = inner, tracer
        self.name = getattr(inner, "name", type(inner).__name__)

    def _log(self, messages, cfg, tag, res) -> None:
        self.tracer.write({"type": "llm_call", "agent": tag, "messages": list(messages), "gen_config": cfg.to_dict(),
                           "backend": type(self.inner).__name__, "model": self.name, "response": list(res.texts or []),
                           "parse_error": res.error, "latency_s": res.latency_s, "usage": res.usage})

    def chat(self, messages, cfg, *, tag=""):
        try:
            res = self.inner.chat(messages, cfg, tag=tag)
        except Exception as e:  # noqa: BLE001 - traced, then re-raised unchanged
            from humanai_jax.agents import ChatResult

            self._log(messages, cfg, tag, ChatResult([], [], error=f"{type(e).__name__}: {e}"))
            raise
        self._log(messages, cfg, tag, res)
        return res

    def chat_batch(self, batch, cfg, *, tags=None):
        results = self.inner.chat_batch(batch, cfg, tags=tags)
        for i, (m, r) in enumerate(zip(batch, results)):
            self._log(m, cfg, tags[i] if tags else "", r)
        return results


@dataclasses.dataclass
class RoleAgent:
    backend: object
    system_prompt: str = dataclasses.field(default_factory=lambda: PROMPTS.text("player_system"))
    cfg: GenConfig = dataclasses.field(default_factory=GenConfig)
    tag: str = "learnarena.player"

    def __call__(self, user: str, *, tag: str | None = None) -> str:
        tag = tag or self.tag
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]
        res = self.backend.chat(messages, self.cfg, tag=tag)
        return res.text.strip()  # raises BackendError for a failed request

    @contextlib.contextmanager
    def role(self, system_prompt: str, tag: str):
        """Temporarily another role: `with agent.role(PROMPTS.text("judge_system"), "learnarena.judge") as a:`."""
        saved = (self.system_prompt, self.tag)
        self.system_prompt, self.tag = system_prompt, tag
        try:
            yield self
        finally:
            self.system_prompt, self.tag = saved
