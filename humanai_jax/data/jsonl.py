"""The project's one JSONL reader and writer (one JSON object per line, UTF-8, `.gz` read and written
transparently).

Reading streams one line at a time, so files of any size are read in constant memory. Blank lines are
skipped. Every error names the file and the 1-based line: `path:line: message`. A validation hook
(`validate(record) -> record | None`) checks or converts each record; any `ValueError`, `KeyError` or
`TypeError` it raises comes back as the reader's error with the file and line prefixed, so a schema
check is written once, without bookkeeping. Callers pick the exception class (`error=`) so method code
keeps its own (e.g. HumanLLM's `RecordError`, PLUS's `FormatError`); it must accept one message string.

    for line, rec in iter_jsonl("x.jsonl", validate=require_fields(["prompt", "chosen"])): ...
    records = read_jsonl("x.jsonl.gz")
    write_jsonl("out.jsonl", records)                    # whole file, atomic rename
    with JsonlWriter("log.jsonl", append=True) as w:     # line by line, flushed per record
        w.write(rec)

See docs/agents.md ("Shared data and stage pieces").
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["JsonlError", "JsonlReader", "JsonlWriter", "iter_jsonl", "read_jsonl", "write_jsonl", "append_jsonl",
           "require_fields", "dumps_line"]


class JsonlError(ValueError):
    """A malformed JSONL line; the message starts with `path:line:`."""


Validator = Callable[[dict], Any]


def _open_text(path: str, mode: str = "rt"):
    path = os.fspath(path)
    if path.endswith(".gz"):
        return gzip.open(path, mode, encoding="utf-8")
    return open(path, mode.replace("t", ""), encoding="utf-8")


def dumps_line(record: Any) -> str:
    """One JSONL line (with its newline): UTF-8 text kept as is (`ensure_ascii=False`)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def require_fields(fields: Sequence[str], kind: type | tuple | None = None) -> Validator:
    """A validator: every field present (and, with `kind`, an instance of it). Raises ValueError naming
    the field and what the record has."""
    def check(record: dict) -> dict:
        for field in fields:
            if field not in record:
                raise ValueError(f"missing field {field!r} (has {sorted(record)[:20]})")
            if kind is not None and not isinstance(record[field], kind):
                name = getattr(kind, "__name__", str(kind))
                raise ValueError(f"field {field!r} must be {name}, found {type(record[field]).__name__}")
        return record
    return check


class JsonlReader:
    """Iterates `(line_number, record)` over a JSONL file; `error(line, msg)` builds a `path:line:` error
    for checks made by the caller after reading (cross-field rules that a validator cannot express)."""

    def __init__(self, path: str, *, validate: Validator | None = None, objects_only: bool = True,
                 error: type[Exception] = JsonlError):
        self.path, self.validate, self.objects_only, self.error_cls = os.fspath(path), validate, objects_only, error

    def error(self, line: int, message: str) -> Exception:
        return self.error_cls(f"{self.path}:{line}: {message}")

    def require(self, line: int, record: dict, fields: Sequence[str], kind: type | tuple | None = str) -> None:
        """Raises `path:line: missing field ...` / `... must be <kind>` for the first bad field."""
        try:
            require_fields(fields, kind)(record)
        except ValueError as e:
            raise self.error(line, str(e)) from None

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"JSONL file {self.path} does not exist")
        with _open_text(self.path) as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise self.error(number, f"invalid JSON ({e.msg} at column {e.colno})") from None
                if self.objects_only and not isinstance(record, dict):
                    raise self.error(number, f"expected a JSON object, got {type(record).__name__}")
                if self.validate is not None:
                    try:
                        out = self.validate(record)
                    except (ValueError, KeyError, TypeError) as e:
                        if isinstance(e, self.error_cls) and str(e).startswith(f"{self.path}:"):
                            raise
                        msg = f"missing key {e.args[0]!r}" if isinstance(e, KeyError) and e.args else str(e)
                        raise self.error(number, msg) from None
                    if out is not None:
                        record = out
                yield number, record


def iter_jsonl(path: str, *, validate: Validator | None = None, objects_only: bool = True,
               error: type[Exception] = JsonlError) -> Iterator[tuple[int, Any]]:
    """Yields `(line_number, record)` for each non-blank line (streaming). Bad JSON, a non-object (with
    `objects_only`) or a failed validation raise `error("path:line: ...")`."""
    return iter(JsonlReader(path, validate=validate, objects_only=objects_only, error=error))


def read_jsonl(path: str, **kwargs) -> list:
    """All records of a JSONL file (same options as `iter_jsonl`)."""
    return [record for _, record in iter_jsonl(path, **kwargs)]


def write_jsonl(path: str, records: Iterable[Any]) -> int:
    """Writes the records to `path` (parent folders created) through a temporary file renamed into place,
    so a crash never leaves a half-written file. Returns the number of records."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp" + (".gz" if path.endswith(".gz") else "")
    n = 0
    try:
        with _open_text(tmp, "wt") as f:
            for record in records:
                f.write(dumps_line(record))
                n += 1
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return n


def append_jsonl(path: str, records: Iterable[Any]) -> int:
    """Appends records to `path` (created with its folders when missing). Returns the number written."""
    with JsonlWriter(path, append=True) as w:
        for record in records:
            w.write(record)
        return w.count


class JsonlWriter:
    """Line-by-line writer, flushed after every record (a killed run loses at most the line in flight;
    `humanai_jax.agents.stages.run_stage` repairs such a torn last line on resume)."""

    def __init__(self, path: str, *, append: bool = False):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._f = _open_text(self.path, "at" if append else "wt")
        self.count = 0

    def write(self, record: Any) -> None:
        self._f.write(dumps_line(record))
        self._f.flush()
        self.count += 1

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
