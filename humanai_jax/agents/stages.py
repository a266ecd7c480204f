"""The resumable JSONL stage runner for LLM pipelines: units in, one output record per unit out.

`run_stage(name, units, out_path, key, process, report)` sends the units not yet in `out_path` through
`process` in batches and appends each result as one JSON line (flushed per batch). Every output record
carries `_drop`: None when kept, else the reason. A re-run reads `out_path` first and skips finished keys,
so a pipeline killed at any point resumes without repeating LLM calls; a torn last line (the process died
mid-write) is cut off and redone. `StageReport` counts kept / dropped-by-reason / skipped per stage for the
run report; `failure_reason` names what `humanai_jax.agents.batch_structured` reported (backend error vs
parse error), so failures are counted, never silently dropped.

Used by HumanLLM's Cognitive Genome stages (docs/humanllm.md); see docs/agents.md.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Iterable, Sequence

from humanai_jax.data.jsonl import JsonlWriter, iter_jsonl

__all__ = ["StageReport", "run_stage", "read_done", "kept", "failure_reason", "repair_torn_tail"]


@dataclasses.dataclass
class StageReport:
    """Per stage: kept count, dropped counts by reason, units skipped because an earlier run did them."""

    kept: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    dropped: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(collections.Counter))
    skipped_done: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def count(self, stage: str, reason: str | None, n: int = 1) -> None:
        if n <= 0:
            return
        if reason is None:
            self.kept[stage] += n
        else:
            self.dropped[stage][reason] += n

    def to_dict(self) -> dict:
        stages = sorted(set(self.kept) | set(self.dropped) | set(self.skipped_done))
        return {s: {"kept": self.kept[s], "dropped": dict(self.dropped[s]), "skipped_done": self.skipped_done[s]}
                for s in stages}

    def write(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)


def failure_reason(err: str | None, what: str) -> str:
    """`<what>_backend_error` for a `batch_structured` error starting with "backend", else `<what>_parse_error`."""
    return f"{what}_backend_error" if err and err.startswith("backend") else f"{what}_parse_error"


def repair_torn_tail(path: str) -> bool:
    """Cuts an incomplete last line (no trailing newline: the writer was killed mid-line) off `path`.
    Returns True when something was cut."""
    if not os.path.exists(path):
        return False
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return False
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        # find the last newline: everything after it is the torn line
        pos, chunk = size, 1 << 16
        cut = 0
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            block = f.read(pos - start)
            i = block.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
        f.truncate(cut)
    warnings.warn(f"{path}: cut a torn last line ({size - cut} bytes) left by an interrupted run; it is redone",
                  stacklevel=3)
    return True


def read_done(out_path: str, key: str) -> dict[str, dict]:
    """`{record[key]: record}` of a stage's output file (empty when it does not exist yet)."""
    if not os.path.exists(out_path):
        return {}
    done = {}
    for line, rec in iter_jsonl(out_path):
        if key not in rec:
            raise ValueError(f"{out_path}:{line}: stage output record has no key field {key!r}")
        done[rec[key]] = rec
    return done


def run_stage(name: str, units: Sequence[dict], out_path: str, key: str,
              process: Callable[[list[dict]], list[dict]], report: StageReport, *, batch_size: int = 32,
              progress: bool = True) -> list[dict]:
    """Processes units not yet in `out_path` in batches; appends results (each with `_drop`) as it goes.

    `process(batch)` returns one record per unit holding the unit's `key` (a record for a key outside the
    batch raises). Returns all output records (earlier runs' and this run's) in input order.
    """
    from tqdm.auto import tqdm

    repair_torn_tail(out_path)
    done = read_done(out_path, key)
    report.skipped_done[name] += sum(u[key] in done for u in units)
    pending = [u for u in units if u[key] not in done]
    with JsonlWriter(out_path, append=True) as writer, \
            tqdm(total=len(pending), desc=name, disable=not progress) as bar:
        for start in range(0, len(pending), batch_size):
            batch = pending[start:start + batch_size]
            keys = {u[key] for u in batch}
            for rec in process(batch):
                if rec.get(key) not in keys:
                    raise ValueError(f"stage {name}: process returned a record with {key}={rec.get(key)!r}, "
                                     "not a unit of its batch")
                report.count(name, rec.get("_drop"))
                done[rec[key]] = rec
                writer.write(rec)
            bar.update(len(batch))
    return [done[u[key]] for u in units if u[key] in done]


def kept(records: Iterable[dict]) -> list[dict]:
    """The records whose `_drop` is None."""
    return [r for r in records if r.get("_drop") is None]
