"""Structured output from chat models: JSON and XML-tag parsing with repair and capped retries.

`extract_json(text)` tries, in order, stopping at the first success:
  1. drop `<think>...</think>` blocks; 2. strip code fences and a leading word `json`;
  3. `json.loads(text)`; 4. `json.loads` on the slice from the first `{`/`[` to the last `}`/`]`;
  5. the same slice through `ast.literal_eval` (single quotes, True/False/None; never `eval`);
  6. full-width punctuation (“” ‘’ ： ，) normalised to ASCII, then 3-5 again.

`chat_json` / `chat_xml` ask the backend, parse, validate, and on failure append the bad reply plus a
user turn quoting the error and ask again, at most `max_attempts` times; then they raise
`StructuredOutputError` carrying every attempt. Callers count these failures (see
`humanai_jax.agents.stages.StageReport`): a failure is never silently dropped.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from humanai_jax.agents.backend import ChatBackend, GenConfig, Message

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON|xml)?\s*\n?(.*?)```", re.DOTALL)
_FULL_WIDTH = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "：": ":", "，": ",", "｛": "{",
                             "｝": "}", "［": "[", "］": "]"})


class StructuredOutputError(ValueError):
    """Raised after `max_attempts` replies that could not be parsed or validated."""

    def __init__(self, tag: str, attempts: list[dict]):
        last = attempts[-1]["error"] if attempts else "no attempts"
        super().__init__(f"[{tag}] no valid structured output after {len(attempts)} attempts; last error: {last}")
        self.tag = tag
        self.attempts = attempts


def strip_wrappers(text: str) -> str:
    """Removes <think> blocks, code fences and a leading `json` word."""
    text = _THINK.sub("", text).strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    if text[:4].lower() == "json" and text[4:5] in ("", " ", "\n", "{", "["):
        text = text[4:].strip()
    return text


def _outer_slice(text: str) -> str | None:
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    start = min(starts)
    end = text.rfind("}" if text[start] == "{" else "]")
    return text[start:end + 1] if end > start else None


def _try_parse(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except json.JSONDecodeError:
        pass
    piece = _outer_slice(text)
    if piece is None:
        return False, None
    try:
        return True, json.loads(piece)
    except json.JSONDecodeError:
        pass
    try:
        value = ast.literal_eval(piece)  # literals only: safe, unlike eval
        if isinstance(value, (dict, list)):
            return True, value
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    return False, None


def extract_json(text: str) -> Any:
    """Returns the JSON value in a model reply, or raises ValueError (see the module docstring)."""
    cleaned = strip_wrappers(text)
    for candidate in (cleaned, cleaned.translate(_FULL_WIDTH)):
        ok, value = _try_parse(candidate)
        if ok:
            return value
    raise ValueError(f"no JSON value found in reply: {text[:200]!r}")


def extract_fields(text: str, keys: Sequence[str]) -> dict[str, str]:
    """Finds `"key": value` pairs without parsing the whole text (ASCII or full-width quotes/colons).

    A value is a quoted string, or the raw text up to the next comma/brace/newline. Missing keys are absent.
    """
    norm = text.translate(_FULL_WIDTH)
    out = {}
    for key in keys:
        m = re.search(r'"' + re.escape(key) + r'"\s*:\s*("((?:[^"\\]|\\.)*)"|[^,}\n]+)', norm)
        if m:
            out[key] = m.group(2) if m.group(2) is not None else m.group(1).strip()
    return out


def parse_xml_tags(text: str, tags: Sequence[str], *, required: Sequence[str] | None = None) -> dict[str, str]:
    """Returns `{tag: inner text}` for the first `<tag>...</tag>` of each tag (tolerant of whitespace/case).

    A tag whose closing element is missing takes the text up to the next `<` or the end. Raises
    ValueError if a tag in `required` (default: all `tags`) is absent or empty.
    """
    text = _THINK.sub("", text)
    out = {}
    for tag in tags:
        m = re.search(rf"<{tag}\s*>(.*?)</\s*{tag}\s*>", text, re.DOTALL | re.IGNORECASE)
        if m is None:
            m = re.search(rf"<{tag}\s*>([^<]*)", text, re.IGNORECASE)
        if m is not None and m.group(1).strip():
            out[tag] = m.group(1).strip()
    missing = [t for t in (tags if required is None else required) if t not in out]
    if missing:
        raise ValueError(f"missing or empty tags {missing} in reply: {text[:200]!r}")
    return out


def _chat_with_repair(backend: ChatBackend, messages: Sequence[Message], cfg: GenConfig,
                      parse: Callable[[str], Any], repair_hint: str, *, max_attempts: int, tag: str):
    history = list(messages)
    attempts: list[dict] = []
    raw_texts: list[str] = []
    for attempt in range(1, max_attempts + 1):
        text = backend.chat(history, cfg, tag=tag).text
        raw_texts.append(text)
        try:
            return parse(text), raw_texts
        except Exception as err:  # noqa: BLE001 - parse and validation errors both go back to the model
            attempts.append({"attempt": attempt, "text": text, "error": f"{type(err).__name__}: {err}"})
            history = history + [
                {"role": "assistant", "content": text},
                {"role": "user", "content": f"Your reply could not be used: {err}\n{repair_hint}"},
            ]
    raise StructuredOutputError(tag, attempts)


def chat_json(backend: ChatBackend, messages: Sequence[Message], schema=None, cfg: GenConfig = GenConfig(),
              *, max_attempts: int = 3, tag: str = "") -> tuple[Any, list[str]]:
    """Asks for JSON; returns `(value, raw_texts)`. `schema` is a pydantic model class, or None.

    With a pydantic model the value is the validated model instance and its JSON schema is sent as
    `response_format`; without, "json" is sent and the plain parsed value is returned.
    """
    if schema is not None:
        cfg = cfg.replace(response_format=schema.model_json_schema())
        parse = lambda t: schema.model_validate(extract_json(t))  # noqa: E731
    else:
        cfg = cfg.replace(response_format="json")
        parse = extract_json
    return _chat_with_repair(backend, messages, cfg, parse, "Reply again with the corrected JSON only.",
                             max_attempts=max_attempts, tag=tag)


def chat_xml(backend: ChatBackend, messages: Sequence[Message], tags: Sequence[str], cfg: GenConfig = GenConfig(),
             *, required: Sequence[str] | None = None, validate: Callable[[dict], Any] | None = None,
             max_attempts: int = 3, tag: str = "") -> tuple[Any, list[str]]:
    """Asks for XML-tagged output; returns `({tag: text}, raw_texts)` (or `validate`'s return value)."""
    def parse(text: str):
        fields = parse_xml_tags(text, tags, required=required)
        return validate(fields) if validate is not None else fields

    hint = "Reply again using exactly the tags " + ", ".join(f"<{t}></{t}>" for t in tags) + "."
    return _chat_with_repair(backend, messages, cfg, parse, hint, max_attempts=max_attempts, tag=tag)


class NullOutput:
    """Returned by a parse function when the model legitimately answered NULL (not a parse failure)."""

    def __repr__(self):
        return "NULL"


NULL = NullOutput()


def is_null_reply(text: str) -> bool:
    return strip_wrappers(text).strip().strip(".").upper() == "NULL"


def batch_structured(backend: ChatBackend, prompts: Sequence[Sequence[Message]], parse: Callable[[str], Any],
                     cfg: GenConfig, *, tags: Sequence[str] | None = None, max_attempts: int = 3,
                     repair_hint: str = "Reply again in the requested format only.") -> list[tuple[Any, str | None]]:
    """Batched version of the repair loop: returns `[(value, None) | (None, error)]` in input order.

    Round 1 sends every prompt through `backend.chat_batch`; each later round re-sends only the items
    whose reply failed to parse, with the bad reply and a user turn quoting the error appended, up to
    `max_attempts` rounds. Backend failures are not retried here (the backend already retried); they
    come back as errors starting with "backend:". Parse failures come back as "parse: <error>".
    """
    histories = [list(p) for p in prompts]
    tags = list(tags) if tags is not None else [""] * len(prompts)
    out: list[tuple[Any, str | None]] = [(None, "not attempted")] * len(prompts)
    pending = list(range(len(prompts)))
    for _ in range(max_attempts):
        if not pending:
            break
        results = backend.chat_batch([histories[i] for i in pending], cfg, tags=[tags[i] for i in pending])
        still = []
        for i, res in zip(pending, results):
            if not res.ok:
                out[i] = (None, f"backend: {res.error}")
                continue
            try:
                out[i] = (parse(res.text), None)
            except Exception as err:  # noqa: BLE001 - reported back to the model and to the caller
                out[i] = (None, f"parse: {type(err).__name__}: {err}")
                histories[i] += [{"role": "assistant", "content": res.text},
                                 {"role": "user", "content": f"Your reply could not be used: {err}\n{repair_hint}"}]
                still.append(i)
        pending = still
    return out
