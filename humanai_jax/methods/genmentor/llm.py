"""Every GenMentor model call: a `Caller` sends messages through a ChatBackend, extracts JSON with the shared
ladder (`humanai_jax.agents.extract_json`), validates with a pydantic schema (+ an optional extra check),
and on failure appends the bad reply and a user turn quoting the error, at most `max_attempts` tries, then
raises `StructuredOutputError` (docs/agents.md §2). Each attempt is one trace line.

Trace (`traces.jsonl`, docs/agents.md §4): `{"type": "llm_call", run_id, step, system, agent (the tag),
item_id, round, attempt, messages, gen_config, backend, response, usage, latency_s, parsed, parse_error}`;
events `{"type": "event", run_id, step, system, item_id, name, data}`.
The loop is ours rather than `agents.chat_json` because every attempt must be traced with its own usage;
`ask_batch` is the batched form (one `chat_batch` per repair round, input order kept).

Schema-constrained decoding (`Caller(constrain=True)`, config `tutoring.constrain_json`): a structured call sends its
JSON schema as `response_format`, so a backend that enforces it (our server, `JaxChatBackend`, vendors' json_schema
mode) can only emit documents of that shape. The schema is the agent's pydantic model's, or a narrower one the agent
builds from its inputs (`constraint=`, e.g. the gap identifier's names and levels copied from the requirements).
What the decoder cannot express is still checked after decoding (pydantic validators, the agents' checks), with
the same capped repair. Number bounds are dropped from the decoding schema (our compiler has no bounded decimals;
pydantic still checks them); a schema still outside the supported subset decodes unconstrained, and the trace line
says why (`constraint`). Tags in `unconstrained` (reason-first agents, whose prose comes before the JSON) are
never constrained.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from humanai_jax.agents import GenConfig, StructuredOutputError, extract_json
from humanai_jax.decoding.json_constraint import SchemaError, grammar_for

__all__ = ["Tracer", "Caller", "REPAIR_TURN"]

_MAX_TRACED_SCHEMA = 16_384  # bytes of a decoding schema written into a trace line whole

REPAIR_TURN = "Your reply could not be used: {error}\nReply again with the corrected JSON only."


class Tracer:
    """Appends records to `path` (UTF-8, one object per line, flushed per line); `path=None` keeps them in
    memory only (`self.records` is always filled)."""

    def __init__(self, path: str | None, *, run_id: str = "", system: str = "genmentor"):
        self.path, self.run_id, self.system = path, run_id, system
        self.records: list[dict] = []
        self.step = 0
        self._lock = threading.Lock()
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(self, record: dict) -> None:
        with self._lock:
            rec = {"run_id": self.run_id, "step": self.step, "system": self.system, **record}
            self.step += 1
            self.records.append(rec)
            if self.path:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")

    def event(self, name: str, data: dict, *, item_id: str = "") -> None:
        self.write({"type": "event", "item_id": item_id, "name": name, "data": data})


def _dump(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


_NUMBER_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def relax_number_bounds(schema: Any) -> Any:
    """A copy of a JSON schema without bounds on `number` values (a superset of the documents it accepts)."""
    if isinstance(schema, dict):
        out = {k: relax_number_bounds(v) for k, v in schema.items()}
        if out.get("type") == "number":
            for k in _NUMBER_BOUNDS:
                out.pop(k, None)
        return out
    if isinstance(schema, list):
        return [relax_number_bounds(v) for v in schema]
    return schema


def decoding_schema(schema: Any) -> tuple[dict | None, str | None]:
    """`(JSON schema to decode with, None)`, or `(None, why not)` when it is outside the decoder's subset.
    `schema`: a pydantic model class or a JSON-schema dict."""
    raw = schema.model_json_schema() if hasattr(schema, "model_json_schema") else dict(schema)
    relaxed = relax_number_bounds(raw)
    try:
        grammar_for(relaxed)  # compiled once: the backend and the reply capture reuse it
    except SchemaError as err:
        return None, str(err)
    return relaxed, None


class Caller:
    """Backend + decoding config + tracer; `item_id` and `round` label the trace lines of the current unit."""

    def __init__(self, backend, cfg: GenConfig, tracer: Tracer, *, max_attempts: int = 3, constrain: bool = False,
                 unconstrained: Sequence[str] = ()):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.backend, self.cfg, self.tracer, self.max_attempts = backend, cfg, tracer, max_attempts
        self.constrain, self.unconstrained = constrain, frozenset(unconstrained)
        self.item_id, self.round = "", None
        self.calls = 0
        self._schemas: dict[Any, tuple[dict | None, str | None]] = {}

    def gen_config(self, tag: str, schema=None, constraint: dict | None = None) -> tuple[GenConfig, str | None]:
        """The decoding config of a structured call, and the constraint note for its trace lines: None (not
        constrained by design), "schema" / "inputs" (the model's / the agent's input-dependent schema is sent),
        or "unsupported: ..." (decoded unconstrained)."""
        if not self.constrain or tag in self.unconstrained or (schema is None and constraint is None):
            return self.cfg, None
        if constraint is not None:
            json_schema, why = decoding_schema(constraint)
        else:
            if schema not in self._schemas:
                self._schemas[schema] = decoding_schema(schema)
            json_schema, why = self._schemas[schema]
        if json_schema is None:
            return self.cfg, f"unsupported: {why}"
        return self.cfg.replace(response_format=json_schema), "inputs" if constraint is not None else "schema"

    def _record(self, tag, messages, res, attempt, gen: GenConfig | None = None, note: str | None = None) -> dict:
        gen_dict = (gen or self.cfg).to_dict()  # with the decoding schema, when one was sent
        if isinstance(gen_dict.get("response_format"), dict):
            text = json.dumps(gen_dict["response_format"], sort_keys=True, ensure_ascii=False)
            if len(text) > _MAX_TRACED_SCHEMA:  # a profile split schema runs to 400 KB: its digest stands for it
                gen_dict["response_format"] = {"schema_sha256": hashlib.sha256(text.encode()).hexdigest(),
                                               "schema_bytes": len(text)}
        return {"type": "llm_call", "agent": tag, "item_id": self.item_id, "round": self.round, "attempt": attempt,
                "messages": list(messages), "gen_config": gen_dict, "constraint": note,
                "backend": getattr(self.backend, "name", type(self.backend).__name__),
                "response": list(res.texts) if res.ok else [], "usage": res.usage, "latency_s": res.latency_s}

    @staticmethod
    def parser(schema=None, check: Callable[[Any], None] | None = None) -> Callable[[str], Any]:
        """text -> validated value: the JSON ladder, `schema.model_validate` (when given), then `check(value)`."""
        def parse(text: str):
            obj = extract_json(text)
            value = schema.model_validate(obj) if schema is not None else obj
            if check is not None:
                check(value)
            return value
        return parse

    def ask_text(self, tag: str, messages: Sequence[dict]) -> str:
        res = self.backend.chat(list(messages), self.cfg, tag=tag)
        self.calls += 1
        self.tracer.write({**self._record(tag, messages, res, 1), "parsed": None, "parse_error": None})
        return res.text

    def ask(self, tag: str, messages: Sequence[dict], schema=None, check=None, *,
            constraint: dict | None = None) -> Any:
        """One structured call with capped repair; returns the validated value."""
        return self.ask_batch(tag, [messages], schema, check, constraint=constraint)[0]

    def ask_batch(self, tag: str, prompts: Sequence[Sequence[dict]], schema=None, check=None,
                  *, raise_on_failure: bool = True, constraint: dict | None = None) -> list[Any]:
        """Structured calls for several prompts: each round sends the still-failing ones with `chat_batch`.
        A failed item raises `StructuredOutputError` (or, with raise_on_failure=False, is returned as one).
        `constraint`: a JSON schema narrower than `schema`, built from the inputs, sent instead of it when this
        caller constrains decoding (`schema` and `check` still validate the reply)."""
        parse = self.parser(schema, check)
        gen, note = self.gen_config(tag, schema, constraint)
        histories = [list(p) for p in prompts]
        out: list[Any] = [None] * len(prompts)
        attempts: list[list[dict]] = [[] for _ in prompts]
        pending = list(range(len(prompts)))
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                break
            results = self.backend.chat_batch([histories[i] for i in pending], gen, tags=[tag] * len(pending))
            self.calls += len(pending)
            still = []
            for i, res in zip(pending, results):
                rec = self._record(tag, histories[i], res, attempt, gen, note)
                try:
                    value = parse(res.text)  # .text raises on a backend error: it is never model output
                except Exception as err:  # noqa: BLE001 - sent back to the model, traced, counted
                    error = f"{type(err).__name__}: {err}"
                    self.tracer.write({**rec, "parsed": None, "parse_error": error})
                    attempts[i].append({"attempt": attempt, "text": res.texts[0] if res.ok else None, "error": error})
                    if not res.ok:
                        out[i] = StructuredOutputError(tag, attempts[i])
                        continue
                    histories[i] = histories[i] + [{"role": "assistant", "content": res.text},
                                                   {"role": "user", "content": REPAIR_TURN.format(error=err)}]
                    still.append(i)
                    continue
                self.tracer.write({**rec, "parsed": _dump(value), "parse_error": None})
                out[i] = value
            pending = still
        for i in pending:
            out[i] = StructuredOutputError(tag, attempts[i])
        if raise_on_failure:
            for v in out:
                if isinstance(v, StructuredOutputError):
                    raise v
        return out
