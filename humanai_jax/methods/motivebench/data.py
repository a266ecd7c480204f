"""Loader of the MotiveBench question files (`Persona_questions.json`, `Blog_questions.json`,
`Amazon_questions.json`): a JSON array of records with exactly ten keys (docs/motivebench.md §3).

Every schema error names the file and the 1-based line where the offending record starts:
`Blog_questions.json:1234: record idx=7: 'Options 2' has 5 options, expected 6`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence

__all__ = ["TASKS", "SOURCES", "TASK_KEYS", "Item", "Scenario", "MotiveBenchFormatError", "parse_record",
           "load_questions", "load_sources", "items_of"]

TASKS = ("MR", "BR", "MBR")
SOURCES = ("Persona", "Blog", "Amazon")
LETTERS = "ABCDEF"
# task -> (stem key, options key, gold key) in the released files
TASK_KEYS = {
    "MR": ("Motivation Reasoning Question", "Options 1", "Correct Answer 1"),
    "BR": ("Behavior Reasoning Question", "Options 2", "Correct Answer 2"),
    "MBR": ("Motivation and Behavior Reasoning Question", "Options 3", "Correct Answer 3"),
}
EXPECTED_KEYS = frozenset({"idx", *(k for keys in TASK_KEYS.values() for k in keys)})
_PREFIX = re.compile(r"^([A-F])\. ")


class MotiveBenchFormatError(ValueError):
    """A malformed question file; the message starts with `path:line:`."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One multiple-choice question. `options` keep their `"X. "` prefixes (as released); `gold` is a letter."""

    source: str
    idx: int
    task: str
    stem: str
    options: tuple[str, ...]
    gold: str

    @property
    def item_id(self) -> str:
        return f"{self.source}/{self.idx}/{self.task}"

    @property
    def gold_index(self) -> int:
        return LETTERS.index(self.gold)

    def option_texts(self) -> list[str]:
        """Options without their letter prefix."""
        return [o.split(". ", 1)[1] for o in self.options]


@dataclasses.dataclass(frozen=True)
class Scenario:
    source: str
    idx: int
    items: dict[str, Item]  # task -> item


def _record_lines(text: str, path: str) -> list[tuple[int, object]]:
    """`(line, record)` for each element of a top-level JSON array (line = where the element starts)."""
    decoder = json.JSONDecoder()

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def skip_ws(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip_ws(0)
    if pos >= len(text) or text[pos] != "[":
        raise MotiveBenchFormatError(f"{path}:{line_of(pos)}: expected a JSON array of question records")
    out, pos = [], skip_ws(pos + 1)
    if pos < len(text) and text[pos] == "]":
        return out
    while True:
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise MotiveBenchFormatError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        out.append((line_of(pos), record))
        pos = skip_ws(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip_ws(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if skip_ws(pos + 1) != len(text):
                raise MotiveBenchFormatError(f"{path}:{line_of(pos + 1)}: trailing data after the array")
            return out
        raise MotiveBenchFormatError(f"{path}:{line_of(pos)}: expected ',' or ']' between records")


def parse_record(record, source: str, err=ValueError) -> Scenario:
    """A Scenario from one released record; schema problems raise `err(message)`."""
    if not isinstance(record, dict):
        raise err(f"expected a JSON object, got {type(record).__name__}")
    keys = set(record)
    if keys != EXPECTED_KEYS:
        missing, extra = sorted(EXPECTED_KEYS - keys), sorted(keys - EXPECTED_KEYS)
        raise err(f"record keys differ from the schema: missing {missing}, unexpected {extra}")
    idx = record["idx"]
    if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
        raise err(f"'idx' must be an integer >= 0, got {idx!r}")
    items = {}
    for task, (stem_key, opt_key, gold_key) in TASK_KEYS.items():
        where = f"record idx={idx}: "
        stem, options, gold = record[stem_key], record[opt_key], record[gold_key]
        if not isinstance(stem, str) or not stem.strip():
            raise err(where + f"{stem_key!r} must be a non-empty string")
        if not isinstance(options, list) or len(options) != 6:
            n = len(options) if isinstance(options, list) else type(options).__name__
            raise err(where + f"{opt_key!r} has {n} options, expected a list of 6")
        for i, opt in enumerate(options):
            m = _PREFIX.match(opt) if isinstance(opt, str) else None
            if m is None or m.group(1) != LETTERS[i]:
                raise err(where + f"{opt_key!r}[{i}] must start with {LETTERS[i] + '. '!r}, got {opt!r:.60}")
        if not isinstance(gold, str) or gold not in LETTERS:
            raise err(where + f"{gold_key!r} must be one letter A-F, got {gold!r}")
        items[task] = Item(source, idx, task, stem, tuple(options), gold)
    return Scenario(source, idx, items)


def load_questions(path: str, source: str | None = None) -> list[Scenario]:
    """Scenarios of one question file, in file order. `source` defaults to the file name's prefix
    (`Persona_questions.json` -> "Persona"). Raises MotiveBenchFormatError naming file and line."""
    path = os.fspath(path)
    if source is None:
        source = os.path.basename(path).split("_questions")[0]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    scenarios, seen = [], {}
    for line, record in _record_lines(text, path):
        def err(msg, line=line):
            return MotiveBenchFormatError(f"{path}:{line}: {msg}")
        sc = parse_record(record, source, err)
        if sc.idx in seen:
            raise err(f"duplicate idx {sc.idx} (first at line {seen[sc.idx]})")
        seen[sc.idx] = line
        scenarios.append(sc)
    if not scenarios:
        raise MotiveBenchFormatError(f"{path}:1: no question records")
    return scenarios


def load_sources(data_dir: str, sources: Sequence[str] = SOURCES, limit: int = 0) -> dict[str, list[Scenario]]:
    """`{source: scenarios}` from `<data_dir>/<Source>_questions.json`; `limit > 0` keeps the first N
    scenarios of each source (quick runs). A missing file raises FileNotFoundError naming it."""
    out = {}
    for s in sources:
        path = os.path.join(data_dir, f"{s}_questions.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"MotiveBench question file {path} does not exist (source {s!r})")
        scenarios = load_questions(path, s)
        out[s] = scenarios[:limit] if limit > 0 else scenarios
    return out


def items_of(scenarios: Sequence[Scenario], tasks: Sequence[str] = TASKS) -> list[Item]:
    """Items in (scenario, task) order."""
    return [sc.items[t] for sc in scenarios for t in tasks]
