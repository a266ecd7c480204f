"""LLM-as-judge with the rubric as data: a `Rubric` names the scored dimensions (with their wording),
a prompt template, and optional keep thresholds; the judge replies `<dim>N</dim>` per dimension.

    rubric = Rubric.from_dict("free_text", {"dimensions": ["fidelity", "overall"]}, template=tmpl)
    judgments = judge(backend, rubric, [{"prompt": ..., "reference": ..., "generation": ...}, ...])
    summary = aggregate(judgments, groups=[s["source"] for s in samples])   # per-group means, failures

Failures are never dropped: a backend error or a reply without every dimension (after the capped repair
turns of `humanai_jax.agents.batch_structured`) is a `Judgment` with `error` set, counted under
`failed`. The scores regex `<(\\w+)>\\s*(\\d+)\\s*</\\1>` and the threshold rule follow HumanLLM's
judge (arXiv 2601.15793; docs/humanllm.md, `judge.py`), which keeps its own
rubrics and prompts in `humanai_jax/methods/humanllm/prompts/` and calls this module.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from humanai_jax.agents import GenConfig, batch_structured

__all__ = ["parse_scores", "passes_thresholds", "Rubric", "Judgment", "judge", "aggregate", "load_rubrics"]

_SCORE = re.compile(r"<(\w+)>\s*(\d+)\s*</\1>")


def parse_scores(text: str | None) -> dict[str, int]:
    """`{dimension: score}` for every `<dim>N</dim>` in a judge's reply (later duplicates win)."""
    return {k: int(v) for k, v in _SCORE.findall(text or "")}


def passes_thresholds(scores: Mapping[str, int] | None, thresholds: Mapping[str, int]) -> bool:
    """Every listed dimension present and >= its threshold. Missing or empty scores mean reject."""
    if not scores:
        return False
    return all(k in scores and scores[k] >= v for k, v in thresholds.items())


@dataclasses.dataclass(frozen=True)
class Rubric:
    """What a judge scores. `template` is a `string.Template` text; besides the caller's fields it can use
    `$rubric` (the name), `$instruction`, `$dimensions` ("- dim: wording" lines) and `$dimension_tags`
    (`<dim>N</dim>...`, the requested output format)."""

    name: str
    dimensions: tuple[str, ...]
    template: str = ""
    dimension_text: Mapping[str, str] = dataclasses.field(default_factory=dict)
    instruction: str = ""
    thresholds: Mapping[str, int] | None = None
    scale: tuple[int, int] = (1, 10)

    def __post_init__(self):
        if not self.dimensions:
            raise ValueError(f"rubric {self.name!r} has no dimensions")
        object.__setattr__(self, "dimensions", tuple(self.dimensions))

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any], *, template: str = "",
                  dimension_text: Mapping[str, str] | None = None) -> Rubric:
        """From rubric data: `{dimensions: [...], instruction?, thresholds?, dimension_text?, scale?}`."""
        unknown = set(spec) - {"dimensions", "instruction", "thresholds", "dimension_text", "scale", "template"}
        if unknown:
            raise ValueError(f"rubric {name!r}: unknown keys {sorted(unknown)}")
        if "dimensions" not in spec:
            raise ValueError(f"rubric {name!r} needs a 'dimensions' list")
        text = dict(dimension_text or {})
        text.update(spec.get("dimension_text") or {})
        return cls(name=name, dimensions=tuple(spec["dimensions"]), template=spec.get("template", template),
                   dimension_text=text, instruction=spec.get("instruction", ""),
                   thresholds=spec.get("thresholds"), scale=tuple(spec.get("scale", (1, 10))))

    def fields(self) -> dict[str, str]:
        return {"rubric": self.name, "instruction": self.instruction,
                "dimensions": "\n".join(f"- {d}: {self.dimension_text.get(d, d)}" for d in self.dimensions),
                "dimension_tags": "".join(f"<{d}>N</{d}>" for d in self.dimensions)}

    def render(self, **fields) -> str:
        """The judge prompt: the template filled with the rubric's fields and the caller's (a missing
        placeholder raises KeyError naming it)."""
        if not self.template:
            raise ValueError(f"rubric {self.name!r} has no prompt template")
        return string.Template(self.template).substitute({**self.fields(), **fields})

    def messages(self, **fields) -> list[dict]:
        return [{"role": "user", "content": self.render(**fields)}]

    def parse(self, text: str) -> dict[str, int]:
        """The rubric's scores from a reply; raises ValueError when a dimension is missing or off-scale
        (the message goes back to the judge as a repair turn)."""
        scores = parse_scores(text)
        missing = [d for d in self.dimensions if d not in scores]
        if missing:
            raise ValueError(f"missing scores for {missing}")
        lo, hi = self.scale
        bad = {d: scores[d] for d in self.dimensions if not lo <= scores[d] <= hi}
        if bad:
            raise ValueError(f"scores out of range [{lo}, {hi}]: {bad}")
        return {d: scores[d] for d in self.dimensions}

    def passes(self, scores: Mapping[str, int] | None) -> bool:
        """Keep rule: the rubric's thresholds (every dimension scored when it has none)."""
        if self.thresholds is None:
            return bool(scores) and all(d in scores for d in self.dimensions)
        return passes_thresholds(scores, self.thresholds)


def load_rubrics(data: Mapping[str, Any], *, template: str = "") -> dict[str, Rubric]:
    """Rubrics from one data file: `{dimension_text: {dim: wording}, rubrics: {name: spec}}` (the key
    `artifacts` is accepted for `rubrics`); every rubric shares `template` and the wording."""
    specs = data.get("rubrics", data.get("artifacts"))
    if not isinstance(specs, Mapping):
        raise ValueError("rubric data needs a 'rubrics' object {name: {dimensions, ...}}")
    text = data.get("dimension_text") or {}
    return {name: Rubric.from_dict(name, spec, template=template, dimension_text=text) for name, spec in specs.items()}


@dataclasses.dataclass(frozen=True)
class Judgment:
    scores: dict[str, int] | None
    error: str | None
    passed: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def judge(backend, rubric: Rubric, items: Sequence[Mapping[str, Any]], *,
          cfg: GenConfig = GenConfig(temperature=0.0, max_tokens=1024), max_attempts: int = 3,
          tag: str | None = None) -> list[Judgment]:
    """Scores each item (the template's fields) with one judge call (plus capped repair turns), batched
    through `backend.chat_batch`; one `Judgment` per item, in order."""
    prompts = [rubric.messages(**item) for item in items]
    tag = tag or f"judge.{rubric.name}"
    results = batch_structured(backend, prompts, rubric.parse, cfg, tags=[tag] * len(prompts),
                               max_attempts=max_attempts)
    return [Judgment(scores, err, err is None and rubric.passes(scores)) for scores, err in results]


def aggregate(judgments: Sequence[Judgment], dimensions: Sequence[str], groups: Sequence[str] | None = None,
              ) -> dict[str, dict]:
    """Per group: `{n (scored), failed, <dim>: mean or None}` (group "all" without `groups`)."""
    groups = list(groups) if groups is not None else ["all"] * len(judgments)
    if len(groups) != len(judgments):
        raise ValueError(f"{len(groups)} groups for {len(judgments)} judgments")
    out: dict[str, dict] = {}
    for g, j in zip(groups, judgments):
        acc = out.setdefault(g, {"n": 0, "failed": 0, **{d: 0.0 for d in dimensions}})
        if j.error is not None:
            acc["failed"] += 1
            continue
        acc["n"] += 1
        for d in dimensions:
            acc[d] += j.scores[d]
    for acc in out.values():
        for d in dimensions:
            acc[d] = acc[d] / acc["n"] if acc["n"] else None
    return out
