"""Provenance stamps: where a result came from (commit, date, machine, seeds, wall time).

`experiments/run.py` stores `stamp(...)` under the key `"provenance"` of every `results.json`;
`experiments/report.py` reads it back to name the commit and date of each table row it generates
(docs/results.md). Every field is plain JSON:

  {"config": "configs/plus.py:btl,seed=1" | None,   # the --config spec, when run from the command line
   "overrides": {"train.steps": 10},                 # the --config.key=value overrides
   "commit": "<40 hex>" | None,   # HEAD of the repository holding this package when the run started (the
                                  # code it imported); None outside a git checkout
   "dirty": bool | None,          # uncommitted changes to tracked files, or untracked non-ignored files
   "commit_at_end", "dirty_at_end": only when the tree changed while the run ran
   "date": "2026-12-04T19:30:00Z",  # UTC, when the stamp was made (the end of the run)
   "machine": {"platform", "python", "cpu_count", "jax", "jaxlib", "backend", "device_kind",
               "device_count", "process_count"},
   "seeds": {"data.seed": 0, "seed": 1, ...},   # every config field named seed / *_seed / seeds
   "wall_time_s": float | None}
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import subprocess
from collections.abc import Mapping
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _git(args: list[str], cwd: os.PathLike) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(repo_dir: os.PathLike | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout at `repo_dir` (default: the one holding this package).

    (None, None) when it is not a git checkout or git is missing (e.g. an installed wheel).
    """
    cwd = pathlib.Path(repo_dir or REPO_ROOT)
    head = _git(["rev-parse", "HEAD"], cwd)
    if head is None:
        return None, None
    status = _git(["status", "--porcelain"], cwd)
    return head.strip(), (None if status is None else bool(status.strip()))


def machine() -> dict[str, Any]:
    """Platform, CPU count, JAX/jaxlib versions and the devices JAX sees (initialises JAX's backend)."""
    import jax
    import jaxlib

    devices = jax.devices()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind if devices else None,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
    }


def is_seed_key(key: str) -> bool:
    key = key.lower()
    return key in ("seed", "seeds", "rng_seed") or key.endswith("_seed") or key.endswith("_seeds")


def seeds(config: Any) -> dict[str, Any]:
    """Every field of a (nested) ConfigDict / mapping named `seed`, `seeds`, `*_seed` or `*_seeds`,
    keyed by its dotted path: e.g. `{"seed": 0, "data.seed": 3}`."""
    found: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if hasattr(node, "items") and callable(node.items):
            for key, value in node.items():
                path = f"{prefix}{key}"
                if is_seed_key(str(key)) and not (hasattr(value, "items") and callable(value.items)):
                    found[path] = list(value) if isinstance(value, tuple) else value
                else:
                    walk(value, path + ".")

    walk(config, "")
    return found


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(config: Mapping[str, Any] | None = None, *, wall_time_s: float | None = None,
          config_spec: str | None = None, overrides: Mapping[str, Any] | None = None,
          repo_dir: os.PathLike | None = None, git_at_start: tuple[str | None, bool | None] | None = None
          ) -> dict[str, Any]:
    """The provenance record of a run (see the module docstring for the fields).

    config_spec / overrides: the command line's `--config path.py:variant,...` and `--config.key=value`
    pairs, when known; experiments/report.py groups runs by them (seeds aside).
    git_at_start: `git_state()` when the run started (the code it imported). `commit`/`dirty` are that state;
    when the tree moved on during the run, the state at the end is kept as `commit_at_end`/`dirty_at_end`.
    """
    commit, dirty = git_state(repo_dir)
    moved = {}
    if git_at_start is not None and tuple(git_at_start) != (commit, dirty):
        moved = {"commit_at_end": commit, "dirty_at_end": dirty}
        commit, dirty = git_at_start
    return {**moved,
        "config": config_spec,
        "overrides": {str(k): v for k, v in (overrides or {}).items()},
        "commit": commit,
        "dirty": dirty,
        "date": utc_now(),
        "machine": machine(),
        "seeds": seeds(config) if config is not None else {},
        "wall_time_s": None if wall_time_s is None else float(wall_time_s),
    }
