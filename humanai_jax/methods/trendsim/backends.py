"""TrendSim's backends: the core factory (`humanai_jax.agents.factory`: project run, HF dir, OpenAI-compatible,
replay, record) plus the transparent rule policy:

  kind = "rules"    `rules.RulePolicyBackend` (`flag_threshold`, `invalid_rate`, `recovery`)

`chat_template` defaults to "auto" here (the tokenizer's own, else "plain"): the project's tiny LM has no chat
template, and a run on it is labelled plumbing anyway. In-process backends batch up to `max_batch` = 64 calls (one tick's visits).
"""

from __future__ import annotations

from humanai_jax.agents.factory import STANDARD_KINDS, build_backend as build_core_backend, option
from humanai_jax.methods.trendsim.rules import RulePolicyBackend

KINDS = ("rules", *STANDARD_KINDS)


def build_backend(block, *, seed: int = 0, lang: str = "zh"):
    """(backend, info) from a config block (see the module docstring)."""
    kind = option(block, "kind", "")

    def rules(b, s):
        return RulePolicyBackend(lang=lang, seed=s, flag_threshold=int(option(b, "flag_threshold", 2)),
                                 invalid_rate=float(option(b, "invalid_rate", 0.0)),
                                 recovery=float(option(b, "recovery", 0.0)))

    view = dict(block.items()) if hasattr(block, "items") else dict(vars(block))
    view["chat_template"] = option(block, "chat_template", "") or "auto"
    backend = build_core_backend(view, seed=seed, custom={"rules": rules}, default_max_batch=64)
    name = backend.inner.name if option(block, "record", "") else backend.name
    return backend, {"kind": kind, "name": name}
