"""Chat backends: one small interface (messages in, texts out) with several implementations.

  Message    = {"role": "system" | "user" | "assistant", "content": str}
  GenConfig  = decoding settings (temperature, top_p, max_tokens, stop, n, seed, ...)
  ChatResult = texts (len n), finish_reasons, usage, latency_s, error

Implementations:
  OpenAICompatBackend  POST {base_url}/v1/chat/completions through the `openai` package, with our own
                       retry loop (429 / 5xx / timeouts / connection errors; never other 4xx) and a
                       bounded thread pool for `chat_batch`.
  ScriptedBackend      deterministic rule-based replies for tests; records every call.
  RecordingBackend     wraps a backend and appends every (request, result) to a JSONL cassette.
  ReplayBackend        answers from such a cassette; an unknown request is an error.
  JaxChatBackend       in-process decoding over a loaded checkpoint (humanai_jax/agents/jax_backend.py).

Rules shared by all backends (docs/agents.md):
  * temperature == 0 is greedy, so n > 1 gives n identical texts;
  * `stop` cuts the text before the first stop string (the stop string is not returned);
  * `chat_batch` keeps the input order, and one failing item never drops the others: its ChatResult
    carries `error` (and no texts). Reading `.text` of a failed result raises, so an error can never be
    mistaken for model output.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypedDict

import numpy as np


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


ResponseFormat = None | Literal["json"] | Mapping[str, Any]  # a mapping is a JSON schema


@dataclasses.dataclass(frozen=True)
class GenConfig:
    """Decoding settings. `response_format` is None, "json", or a JSON schema (a dict)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] | None = None
    n: int = 1
    seed: int | None = None
    repetition_penalty: float | None = None
    response_format: ResponseFormat = None

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"GenConfig.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GenConfig.top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1 or self.n < 1:
            raise ValueError(f"GenConfig.max_tokens and n must be >= 1, got {self.max_tokens}, {self.n}")
        if self.stop is not None and not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.response_format not in (None, "json") and not isinstance(self.response_format, Mapping):
            raise ValueError(f"GenConfig.response_format must be None, 'json' or a JSON schema dict, "
                             f"got {self.response_format!r}")

    def replace(self, **changes) -> GenConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["stop"] = list(self.stop) if self.stop is not None else None
        return out


@dataclasses.dataclass
class ChatResult:
    texts: list[str]
    finish_reasons: list[str]
    usage: dict | None = None
    latency_s: float = 0.0
    error: str | None = None  # set when this request failed for good (batch calls only)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        """The first text; raises if the request failed (an error is never returned as output)."""
        if self.error is not None:
            raise BackendError(f"request failed: {self.error}")
        return self.texts[0]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChatResult:
        return cls(**{f.name: d.get(f.name) for f in dataclasses.fields(cls) if f.name in d})


class BackendError(RuntimeError):
    """A chat request failed (non-retryable HTTP status, retries exhausted, unmatched script, ...)."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = body


class ChatBackend(Protocol):
    name: str

    def chat(self, messages: Sequence[Message], cfg: GenConfig, *, tag: str = "") -> ChatResult: ...

    def chat_batch(self, batch: Sequence[Sequence[Message]], cfg: GenConfig, *,
                   tags: Sequence[str] | None = None) -> list[ChatResult]: ...


def apply_stop(text: str, stop: Iterable[str] | None) -> tuple[str, bool]:
    """Cuts `text` before the earliest occurrence of any stop string. Returns (text, was_cut)."""
    if not stop:
        return text, False
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def validate_messages(messages: Sequence[Mapping[str, Any]]) -> None:
    """Raises ValueError naming the first malformed message."""
    if not messages:
        raise ValueError("messages is empty")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise ValueError(f"message {i} must be {{'role': system|user|assistant, 'content': str}}, got {m!r}")


def _batch_in_threads(fn: Callable[[Sequence[Message], GenConfig, str], ChatResult],
                      batch: Sequence[Sequence[Message]], cfg: GenConfig, tags: Sequence[str] | None,
                      max_concurrency: int) -> list[ChatResult]:
    """Runs `fn` over the batch on a bounded thread pool; keeps order; failures become `error` results."""
    tags = list(tags) if tags is not None else [""] * len(batch)
    if len(tags) != len(batch):
        raise ValueError(f"tags has {len(tags)} entries, batch has {len(batch)}")

    def one(i: int) -> ChatResult:
        try:
            return fn(batch[i], cfg, tags[i])
        except Exception as e:  # noqa: BLE001 - one failure must not drop the others; it is reported
            return ChatResult(texts=[], finish_reasons=[], error=f"{type(e).__name__}: {e}")

    if max_concurrency <= 1 or len(batch) <= 1:
        return [one(i) for i in range(len(batch))]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrency) as pool:
        return list(pool.map(one, range(len(batch))))


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP backend


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: sleep U(0, min(cap, base * factor**attempt))."""

    max_tries: int = 5
    base_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 30.0

    def delay(self, attempt: int, rng: np.random.Generator) -> float:
        return float(rng.uniform(0.0, min(self.cap_s, self.base_s * self.factor ** attempt)))


class OpenAICompatBackend:
    """`POST {base_url}/v1/chat/completions` via the `openai` client (its own retries disabled).

    Args:
      base_url: server root, e.g. "http://127.0.0.1:8000" ("/v1" is appended unless present).
      model: the model name sent in each request.
      api_key_env: name of the environment variable holding the API key (unset -> "EMPTY").
      timeout_s: per-request timeout (default 120 s).
      max_concurrency: thread-pool size for `chat_batch` (default 8).
      retry: RetryPolicy; `sleep` is injectable so tests need not wait.
      seed: seeds the jitter RNG (no global randomness).
    """

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 120.0, max_concurrency: int = 8, retry: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep, seed: int = 0):
        import openai  # imported here so that the rest of the package works without it

        self._openai = openai
        root = base_url.rstrip("/")
        if not root.endswith("/v1"):
            root += "/v1"
        self.client = openai.OpenAI(base_url=root, api_key=os.environ.get(api_key_env) or "EMPTY",
                                    timeout=timeout_s, max_retries=0)
        self.name = f"openai:{model}"
        self.model = model
        self.max_concurrency = max_concurrency
        self.retry = retry
        self._sleep = sleep
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self.num_retries = 0  # total retried attempts, for reports

    def _request_kwargs(self, messages: Sequence[Message], cfg: GenConfig) -> dict:
        kw: dict[str, Any] = dict(model=self.model, messages=list(messages), temperature=cfg.temperature,
                                  top_p=cfg.top_p, max_tokens=cfg.max_tokens, n=cfg.n)
        if cfg.stop:
            kw["stop"] = list(cfg.stop)
        if cfg.seed is not None:
            kw["seed"] = cfg.seed
        if cfg.response_format == "json":
            kw["response_format"] = {"type": "json_object"}
        elif cfg.response_format is not None:
            kw["response_format"] = {"type": "json_schema",
                                     "json_schema": {"name": "output", "schema": dict(cfg.response_format)}}
        if cfg.repetition_penalty is not None:  # vLLM extension, not part of the OpenAI schema
            kw["extra_body"] = {"repetition_penalty": cfg.repetition_penalty}
        return kw

    def _is_retryable(self, err: Exception) -> bool:
        o = self._openai
        if isinstance(err, (o.APITimeoutError, o.APIConnectionError)):
            return True
        if isinstance(err, o.APIStatusError):
            return err.status_code == 429 or err.status_code >= 500
        return False

    def chat(self, messages: Sequence[Message], cfg: GenConfig, *, tag: str = "") -> ChatResult:
        validate_messages(messages)
        kw = self._request_kwargs(messages, cfg)
        for attempt in range(self.retry.max_tries):
            start = time.perf_counter()
            try:
                resp = self.client.chat.completions.create(**kw)
            except Exception as err:  # noqa: BLE001 - classified just below
                if not isinstance(err, self._openai.APIError):
                    raise
                if not self._is_retryable(err):
                    status = getattr(err, "status_code", None)
                    body = getattr(getattr(err, "response", None), "text", None)
                    raise BackendError(f"[{tag}] HTTP {status} from {self.name}: {body}", status=status,
                                       body=body) from err
                if attempt + 1 == self.retry.max_tries:
                    raise BackendError(f"[{tag}] giving up after {self.retry.max_tries} tries: {err}",
                                       status=getattr(err, "status_code", None)) from err
                with self._rng_lock:
                    delay = self.retry.delay(attempt, self._rng)
                    self.num_retries += 1
                self._sleep(delay)
                continue
            texts, reasons = [], []
            for choice in resp.choices:
                text, cut = apply_stop(choice.message.content or "", cfg.stop)  # servers may ignore stop
                texts.append(text)
                reasons.append("stop" if cut else (choice.finish_reason or "stop"))
            usage = ({"prompt_tokens": resp.usage.prompt_tokens,
                      "completion_tokens": resp.usage.completion_tokens} if resp.usage else None)
            return ChatResult(texts, reasons, usage, time.perf_counter() - start)
        raise AssertionError("unreachable")

    def chat_batch(self, batch, cfg, *, tags=None):
        return _batch_in_threads(lambda m, c, t: self.chat(m, c, tag=t), batch, cfg, tags,
                                 self.max_concurrency)


# --------------------------------------------------------------------------------------------------
# Scripted backend (tests)


Predicate = Callable[[Sequence[Message]], bool]
Response = str | Callable[[Sequence[Message]], str] | list


@dataclasses.dataclass
class ScriptedCall:
    tag: str
    messages: list
    cfg: GenConfig


class ScriptedBackend:
    """Answers from rules `(tag_pattern, predicate | None, response)`; first match wins.

    `tag_pattern` is a regex matched with `re.fullmatch` against the call's tag. `response` is a string,
    a callable `messages -> str`, or a list used as a FIFO queue (each call pops one entry, which may
    itself be a string or callable; an exhausted queue makes the rule stop matching). With `strict=True`
    an unmatched call raises, naming the tag and the last user message, and `close()` raises if queued
    responses were never used. Every call is recorded in `self.calls`.
    """

    name = "scripted"

    def __init__(self, rules: Sequence[tuple[str, Predicate | None, Response]], *, strict: bool = True):
        self.rules = [(re.compile(p), pred, list(r) if isinstance(r, list) else r) for p, pred, r in rules]
        self.strict = strict
        self.calls: list[ScriptedCall] = []
        self._lock = threading.Lock()

    def _respond(self, messages: Sequence[Message], tag: str) -> str | None:
        for pattern, pred, response in self.rules:
            if not pattern.fullmatch(tag) or (pred is not None and not pred(messages)):
                continue
            if isinstance(response, list):
                if not response:
                    continue
                response = response.pop(0)
            return response(messages) if callable(response) else response
        return None

    def chat(self, messages, cfg, *, tag=""):
        validate_messages(messages)
        with self._lock:
            self.calls.append(ScriptedCall(tag, [dict(m) for m in messages], cfg))
            text = self._respond(messages, tag)
        if text is None:
            if self.strict:
                last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
                raise BackendError(f"ScriptedBackend: no rule matches tag {tag!r}; last user message: "
                                   f"{last_user[:500]!r}")
            text = ""
        text, cut = apply_stop(text, cfg.stop)
        return ChatResult([text] * cfg.n, ["stop"] * cfg.n, None, 0.0)

    def chat_batch(self, batch, cfg, *, tags=None):
        return _batch_in_threads(lambda m, c, t: self.chat(m, c, tag=t), batch, cfg, tags, 1)

    def close(self) -> None:
        left = [(p.pattern, len(r)) for p, _, r in self.rules if isinstance(r, list) and r]
        if left and self.strict:
            raise BackendError(f"ScriptedBackend: unused queued responses (tag pattern, count): {left}")


# --------------------------------------------------------------------------------------------------
# Record / replay


def request_key(messages: Sequence[Message], cfg: GenConfig) -> str:
    """A stable hash of (messages, cfg): the cassette key."""
    payload = json.dumps({"messages": [dict(m) for m in messages], "cfg": cfg.to_dict()}, sort_keys=True,
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class RecordingBackend:
    """Wraps `inner`; appends `{key, tag, messages, cfg, result}` per successful call to a JSONL cassette."""

    def __init__(self, inner: ChatBackend, path: str):
        self.inner, self.path = inner, path
        self.name = f"recording({inner.name})"
        self._lock = threading.Lock()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def _record(self, messages, cfg, tag, result: ChatResult) -> None:
        if not result.ok:
            return
        from humanai_jax.data.jsonl import append_jsonl

        record = {"key": request_key(messages, cfg), "tag": tag, "messages": list(messages), "cfg": cfg.to_dict(),
                  "result": result.to_dict()}
        with self._lock:
            append_jsonl(self.path, [record])

    def chat(self, messages, cfg, *, tag=""):
        result = self.inner.chat(messages, cfg, tag=tag)
        self._record(messages, cfg, tag, result)
        return result

    def chat_batch(self, batch, cfg, *, tags=None):
        results = self.inner.chat_batch(batch, cfg, tags=tags)
        for i, (m, r) in enumerate(zip(batch, results)):
            self._record(m, cfg, tags[i] if tags else "", r)
        return results


class ReplayBackend:
    """Answers from a cassette written by RecordingBackend; an unrecorded request raises BackendError."""

    name = "replay"

    def __init__(self, path: str):
        from humanai_jax.data.jsonl import iter_jsonl, require_fields

        self.cassette: dict[str, dict] = {
            rec["key"]: rec["result"] for _, rec in iter_jsonl(path, validate=require_fields(["key", "result"]))}

    def chat(self, messages, cfg, *, tag=""):
        key = request_key(messages, cfg)
        if key not in self.cassette:
            raise BackendError(f"ReplayBackend: request not in cassette (tag {tag!r}, key {key[:12]})")
        return ChatResult.from_dict(self.cassette[key])

    def chat_batch(self, batch, cfg, *, tags=None):
        return _batch_in_threads(lambda m, c, t: self.chat(m, c, tag=t), batch, cfg, tags, 1)
