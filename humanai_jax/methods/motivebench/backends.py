"""MotiveBench's backends: the core factory (`humanai_jax.agents.factory`: project run, HF dir, OpenAI-compatible,
replay, record) plus its own scripted answerers:

  kind = "scripted"  `script`: "letter:X" (always answers X) or "random" (seeded uniform A-F)

Returns `(backend, info)`; `info["repetition_penalty"]` says whether the backend implements it (the
in-process JAX backend does not: the runner then drops it and records the deviation).
"""

from __future__ import annotations

import numpy as np

from humanai_jax.agents import ScriptedBackend
from humanai_jax.agents.factory import (
    PLAIN_CHAT_TEMPLATE,
    build_backend as build_core_backend,
    load_run_params as load_project_params,
    option,
)
from humanai_jax.data.jsonl import iter_jsonl

__all__ = ["build_backend", "PLAIN_CHAT_TEMPLATE", "load_project_params"]


def _scripted(block, seed: int) -> ScriptedBackend:
    script = option(block, "script", "letter:A")
    if script.startswith("letter:") and len(script) == 8 and script[-1] in "ABCDEF":
        return ScriptedBackend([(".*", None, lambda m, x=script[-1]: x)])
    if script == "random":
        rng = np.random.default_rng(seed)
        return ScriptedBackend([(".*", None, lambda m: "ABCDEF"[int(rng.integers(6))])])
    raise ValueError(f"backend.script must be 'letter:<A-F>' or 'random', got {script!r}")


def _recorded_repetition_penalty(path: str) -> bool:
    """Whether a cassette's first call sent a repetition penalty (a replay must send the same config)."""
    for _, rec in iter_jsonl(path):
        return (rec.get("cfg") or {}).get("repetition_penalty") is not None
    return False


def build_backend(block, *, seed: int = 0):
    """`(backend, info)` from a config block (kinds: scripted + the core factory's)."""
    kind = option(block, "kind", "")
    backend = build_core_backend(block, seed=seed, custom={"scripted": _scripted})
    implements_rp = kind in ("openai", "scripted") or (kind == "replay"
                                                        and _recorded_repetition_penalty(option(block, "replay")))
    name = backend.inner.name if option(block, "record", "") else backend.name
    return backend, {"kind": kind, "name": name, "repetition_penalty": implements_rp}
