r"""Recomputes an agent system's reported metrics from its trace, and checks them against its results.json.

  python -m experiments.replay_metrics --trace DIR/traces.jsonl

Every metric an agent system reports must be recomputable from its `traces.jsonl` plus its inputs
(docs/agents.md, "Traces"). This entry point reads the `system` of the trace's records, imports the
experiment that owns that system (`experiments.<system>`; debate and sandwiching belong to oversight) and
calls its hook

  replay_metrics(trace_path) -> {"metrics": {...}, "results": path of the run's results.json,
                                 "key": dotted key of the subtree the metrics must equal ("" = the root)}

then compares every number of `metrics` with the same key under `results` (relative tolerance 1e-9):
differences are listed and the exit status is 1. `--no-compare` only prints the recomputed metrics.
Infrastructure like `experiments.run`: it imports experiments by name at run time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Mapping

from humanai_jax.data.jsonl import iter_jsonl

OWNER = {"debate": "oversight", "sandwich": "oversight", "sandwiching": "oversight", "w2s": "oversight"}


def trace_system(trace_path: str) -> str:
    """The `system` named by the trace's records (all must agree); a bad line is named by file:line."""
    systems = {record["system"] for _, record in iter_jsonl(trace_path, error=ValueError) if "system" in record}
    if len(systems) != 1:
        raise ValueError(f"{trace_path}: expected one system in the trace's records, found {sorted(systems) or 'none'}")
    return systems.pop()


def flatten(tree, prefix: str = "") -> dict:
    """{dotted key: number} of every int/float leaf (bools and strings are left out)."""
    out = {}
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{i}."))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        out[prefix[:-1]] = float(tree)
    return out


def compare(metrics: Mapping, reported: Mapping, *, rtol: float = 1e-9) -> tuple[int, list[str]]:
    """(number of numbers compared, differences) between recomputed `metrics` and the `reported` subtree;
    a recomputed number missing from the report is a difference too."""
    got, want = flatten(metrics), flatten(reported)
    diffs = []
    for key, value in sorted(got.items()):
        if key not in want:
            diffs.append(f"{key}: recomputed {value!r}, not in results.json")
        elif not (math.isclose(value, want[key], rel_tol=rtol, abs_tol=1e-12)
                  or (math.isnan(value) and math.isnan(want[key]))):
            diffs.append(f"{key}: recomputed {value!r}, reported {want[key]!r}")
    return len(got), diffs


def replay(trace_path: str) -> dict:
    system = trace_system(trace_path)
    module = importlib.import_module(f"experiments.{OWNER.get(system, system)}")
    if not hasattr(module, "replay_metrics"):
        raise ValueError(f"experiments.{OWNER.get(system, system)} has no replay_metrics hook (system {system!r})")
    return module.replay_metrics(trace_path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace", required=True, help="DIR/traces.jsonl of an agent-system run")
    ap.add_argument("--no-compare", action="store_true", help="print the recomputed metrics only")
    args = ap.parse_args(argv)
    out = replay(args.trace)
    if args.no_compare:
        print(json.dumps(out["metrics"], indent=1, default=float))
        return 0
    with open(out["results"], encoding="utf-8") as f:
        reported = json.load(f)
    for part in filter(None, out.get("key", "").split(".")):
        reported = reported[part]
    n, diffs = compare(out["metrics"], reported)
    print(f"{n} numbers recomputed from {args.trace}; {len(diffs)} differ from {out['results']}"
          + (f" [{out['key']}]" if out.get("key") else ""))
    for d in diffs:
        print("  " + d)
    return 1 if diffs or not n else 0


if __name__ == "__main__":
    sys.exit(main())
