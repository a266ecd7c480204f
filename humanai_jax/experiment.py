"""Workdir conventions shared by every experiment.

A run writes, under its workdir:
  metrics.jsonl   one JSON object per logged step: {"step": int, "time": float, <metric>: float, ...}
  results.json    the headline metrics of the run (written once, at the end)
  config.json     the resolved config
and its checkpoints and plots in subfolders.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """Converts numpy/jax scalars and arrays (recursively) into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return to_jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    """Appends one JSON line per call to `workdir/metrics.jsonl` (process 0 only when multi-host)."""

    def __init__(self, workdir: str, *, enabled: bool | None = None):
        """enabled: write at all; None = only on process 0 of a multi-host run."""
        if enabled is None:
            import jax

            enabled = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.enabled = enabled
        if enabled:
            os.makedirs(workdir, exist_ok=True)

    def write(self, step: int, **metrics: Any) -> None:
        """Appends {step, time, **metrics}; `time` defaults to now (pass the step's own wall time)."""
        if not self.enabled:
            return
        record = {"step": int(step), "time": time.time(), **to_jsonable(metrics)}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


    def truncate_after(self, step: int) -> int:
        """Drops the records of steps > `step` (a resumed run re-runs them); returns how many."""
        if not self.enabled or not os.path.exists(self.path):
            return 0
        with open(self.path) as f:
            lines = [line for line in f if line.strip()]
        keep = [line for line in lines if json.loads(line)["step"] <= step]
        if len(keep) != len(lines):
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                f.writelines(keep)
            os.replace(tmp, self.path)
        return len(lines) - len(keep)


def read_metrics(workdir: str) -> list[dict]:
    """Reads back `workdir/metrics.jsonl` as a list of dicts."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_config(workdir: str) -> dict:
    """A run's `workdir/config.json` (what `experiments.run` wrote for it) as a dict."""
    with open(os.path.join(workdir, "config.json")) as f:
        return json.load(f)


def write_json(path: str, payload: Mapping[str, Any]) -> None:
    """Writes JSON atomically (write to a temp file, then rename), so a crash never leaves half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(to_jsonable(payload), f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def write_results(workdir: str, results: Mapping[str, Any]) -> str:
    """Writes the run's headline metrics to `workdir/results.json` and returns the path."""
    path = os.path.join(workdir, "results.json")
    write_json(path, results)
    return path


def run_seeds(config, workdir: str, run_one: Callable[[Any, str], dict], *,
              seed_keys: tuple[str, ...] = ("seed",)) -> dict[int, dict]:
    """One sub-run per seed of `config.seeds`: `run_one(sub, WORKDIR/seed_<s>)`, where `sub` is a copy of
    `config` with every (dotted) key of `seed_keys` set to s and `seeds` emptied. Each sub-run's results,
    with its `wall_time_s`, are written to WORKDIR/seed_<s>/results.json as it finishes.

    Returns {seed: results}. A pre-empted sub-run (its results hold `"preempted": True`) stops the loop:
    the returned dict then ends with that seed, whose results say so, and nothing is written for it."""
    per_seed: dict[int, dict] = {}
    for seed in (int(s) for s in config.seeds):
        sub = config.copy_and_resolve_references()
        with sub.unlocked():
            for key in seed_keys:
                *parents, leaf = key.split(".")
                block = sub
                for name in parents:
                    block = block[name]
                block[leaf] = seed
            sub.seeds = ()
        start = time.time()
        results = run_one(sub, os.path.join(workdir, f"seed_{seed}"))
        per_seed[seed] = {**results, "wall_time_s": results.get("wall_time_s", time.time() - start)}
        if results.get("preempted"):
            break
        write_json(os.path.join(workdir, f"seed_{seed}", "results.json"), per_seed[seed])
    return per_seed
