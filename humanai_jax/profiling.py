"""Where a jitted step's time goes: a `jax.profiler` trace joined with the compiled HLO's source locations.

    with jax.profiler.trace(log_dir, create_perfetto_trace=True):
        run_step()
    times = op_times(log_dir)                       # {HLO op: seconds} from the thunk executor's events
    where = op_sources(compiled.as_text())          # {HLO op: OpSource(kind, function)}
    table = breakdown(times, where)                 # {(kind, function or [opcode]): seconds}

`function` is the innermost Python function of the op's stack trace that lives in one of `roots` (the
project's code and optax by default), e.g. `layers.attend` or `optax.adam`; `kind` is "matmul" when the
op (or the fusion it runs) contains a dot or convolution, else "other". On the CPU backend the events are
the thunk executor's, one per executed HLO op (XLA fusions, YNNPACK dot fusions, copies, ...); ops may
overlap on different threads, so the seconds add up to more than the wall time of a multi-threaded step.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import glob
import gzip
import json
import os
import re

_ENTRY = re.compile(r"^(\d+) (.*)$")
_INSTR = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*?\b([a-z][\w\-]*)\(")
_CALLS = re.compile(r"calls=%([\w.\-]+)")
_FRAME = re.compile(r"stack_frame_id=(\d+)")


@dataclasses.dataclass(frozen=True)
class OpSource:
    kind: str  # "matmul" | "other"
    function: str  # "<file stem>.<function>" of the innermost frame under `roots`, or "?"
    opcode: str = ""  # the op's HLO opcode (a fusion's: its root's), e.g. "copy", "dynamic-update-slice"

    @property
    def label(self) -> str:
        """The function, or for an op without a source location in `roots` its opcode in brackets
        (copies, broadcasts, the scan's buffer updates: work XLA adds around the model's code)."""
        return self.function if self.function != "?" else f"[{self.opcode or '?'}]"


def _fields(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def _tables(hlo: str) -> tuple[dict, dict, dict, dict]:
    """The HLO text's FileNames, FunctionNames, FileLocations and StackFrames tables, by id (they precede the
    first computation; each is a header line followed by `id value` lines up to a blank line)."""
    names = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")
    tables: dict[str, dict[int, str]] = {name: {} for name in names}
    section = None
    for line in hlo.splitlines():
        if line.startswith(("%", "ENTRY")):
            break
        if line in names:
            section = line
        elif not line.strip():
            section = None
        elif section and (m := _ENTRY.match(line)):
            tables[section][int(m.group(1))] = m.group(2).strip('"')
    return tuple(tables[name] for name in names)


def _frame_function(frame_id: int, tables, roots: tuple[str, ...]) -> str:
    """Innermost function of the frame chain whose file path contains one of `roots`."""
    files, functions, locations, frames = tables
    seen = set()
    while frame_id in frames and frame_id not in seen:
        seen.add(frame_id)
        frame = _fields(frames[frame_id])
        loc = _fields(locations.get(frame.get("file_location_id", -1), ""))
        path = files.get(loc.get("file_name_id", -1), "")
        for root in roots:
            if f"/{root}/" in path:  # optax's ops read `optax.<fn>`; the project's `<file stem>.<fn>`
                prefix = "optax" if root == "optax" else os.path.splitext(os.path.basename(path))[0]
                return f"{prefix}.{functions.get(loc.get('function_name_id', -1), '?')}"
        frame_id = frame.get("parent_frame_id", 0)  # parents are referenced by id (0 = none)
    return "?"


def op_sources(hlo: str, roots: tuple[str, ...] = ("humanai_jax", "optax")) -> dict[str, OpSource]:
    """{instruction name: OpSource} for every instruction of a compiled module's text (`compiled.as_text()`);
    a fusion is a matmul if anything it calls contains a dot/convolution, and takes its root's function."""
    tables = _tables(hlo)
    computations: dict[str, list[tuple[str, str, str]]] = {}
    current = None
    for line in hlo.splitlines():
        if line.startswith(("%", "ENTRY %")) and line.rstrip().endswith("{"):
            current = line.split("%", 1)[1].split(" ", 1)[0]
            computations[current] = []
        elif line.startswith("}"):
            current = None
        elif current is not None:
            m = _INSTR.match(line)
            if m:
                computations[current].append((m.group(1), m.group(2), line))

    @functools.cache
    def has_dot(comp: str) -> bool:
        """Whether `comp` or anything it calls holds a dot/convolution (HLO call graphs are acyclic)."""
        return any(opcode in ("dot", "convolution") or any(has_dot(c) for c in _CALLS.findall(line))
                   for _, opcode, line in computations.get(comp, []))

    def function_of(line: str, comp_lines) -> str:
        m = _FRAME.search(line)
        if m:
            name = _frame_function(int(m.group(1)), tables, roots)
            if name != "?":
                return name
        counts = collections.Counter(_frame_function(int(f.group(1)), tables, roots)
                                     for _, _, inner in comp_lines for f in [_FRAME.search(inner)] if f)
        counts.pop("?", None)
        return counts.most_common(1)[0][0] if counts else "?"

    out = {}
    for lines in computations.values():
        for name, opcode, line in lines:
            called = _CALLS.findall(line)
            dot = opcode in ("dot", "convolution") or any(has_dot(c) for c in called)
            inner = [x for c in called for x in computations.get(c, [])]
            root = next((x for x in inner if x[2].lstrip().startswith("ROOT")), None)
            source_line = root[2] if root is not None and _FRAME.search(root[2]) else line
            out[name] = OpSource("matmul" if dot else "other", function_of(source_line, inner),
                                 root[1] if root is not None else opcode)
    return out


def op_times(log_dir: str) -> dict[str, float]:
    """{HLO op name: total seconds} from the newest perfetto trace under `log_dir` (events with `hlo_op`)."""
    paths = sorted(glob.glob(os.path.join(log_dir, "**", "perfetto_trace.json.gz"), recursive=True),
                   key=os.path.getmtime)
    if not paths:
        raise FileNotFoundError(f"no perfetto_trace.json.gz under {log_dir} (jax.profiler.trace(..., "
                                "create_perfetto_trace=True))")
    with gzip.open(paths[-1], "rt") as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    times: dict[str, float] = collections.defaultdict(float)
    for e in events:
        op = (e.get("args") or {}).get("hlo_op")
        if e.get("ph") == "X" and op:
            times[op] += float(e.get("dur", 0.0)) * 1e-6
    return dict(times)


def breakdown(times: dict[str, float], sources: dict[str, OpSource]) -> dict[tuple[str, str], float]:
    """{(kind, OpSource.label): seconds}; ops missing from `sources` count as ("other", "[?]")."""
    out: dict[tuple[str, str], float] = collections.defaultdict(float)
    for op, seconds in times.items():
        src = sources.get(op, OpSource("other", "?"))
        out[(src.kind, src.label)] += seconds
    return dict(out)
