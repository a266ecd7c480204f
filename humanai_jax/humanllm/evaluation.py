"""Evaluation (spec §10): item-selection accuracy, the first-N-per-source test selection, and an LLM judge
for the free-text tasks with its rubric stored as data (`prompts/judge_free_text.txt`).

Item selection: hit iff `target.strip().lower()` is a substring of `generation.strip().lower()`; with
20 candidates, chance is 1/20 = 5%.
"""

from __future__ import annotations

import collections
from typing import Sequence

from humanai_jax.agents import GenConfig, batch_structured
from humanai_jax.humanllm import judge as judge_lib
from humanai_jax.humanllm import stages

CHANCE_ITEM_SELECTION = 1 / 20
FREE_TEXT_DIMENSIONS = ("fidelity", "style", "plausibility", "overall")


def item_hit(target: str, generation: str) -> bool:
    return target.strip().lower() in generation.strip().lower()


def first_per_source(samples: Sequence[dict], n: int = 500) -> list[dict]:
    """The first `n` test samples of each `source`, in file order (not random), as the reference does."""
    seen = collections.Counter()
    out = []
    for s in samples:
        if seen[s["source"]] < n:
            seen[s["source"]] += 1
            out.append(s)
    return out


def generate_answers(backend, samples: Sequence[dict], cfg: GenConfig, tag: str = "humanllm.eval") -> list[str]:
    """The model's reply to each sample's prompt (all turns but the last assistant one); errors raise."""
    prompts = [s["messages"][:-1] for s in samples]
    return [r.text for r in backend.chat_batch(prompts, cfg, tags=[tag] * len(prompts))]


def item_selection_accuracy(samples: Sequence[dict], generations: Sequence[str]) -> dict:
    hits = [item_hit(s["messages"][-1]["content"], g) for s, g in zip(samples, generations)]
    return {"accuracy": sum(hits) / max(len(hits), 1), "n": len(hits), "chance": CHANCE_ITEM_SELECTION}


def judge_free_text(backend, samples: Sequence[dict], generations: Sequence[str], *,
                    cfg: GenConfig = GenConfig(temperature=0.0, max_tokens=1024), max_attempts: int = 3) -> dict:
    """Scores generations against the real responses with an LLM judge; returns per-source mean scores
    and the number of failed judgments (counted, never silently dropped)."""
    def parse(text):
        scores = judge_lib.parse_scores(text)
        missing = [d for d in FREE_TEXT_DIMENSIONS if d not in scores]
        if missing:
            raise ValueError(f"missing scores for {missing}")
        return {d: scores[d] for d in FREE_TEXT_DIMENSIONS}

    prompts = [[{"role": "user", "content": stages.render(
        "judge_free_text", prompt=s["messages"][-2]["content"], reference=s["messages"][-1]["content"],
        generation=g)}] for s, g in zip(samples, generations)]
    results = batch_structured(backend, prompts, parse, cfg, tags=["humanllm.judge_free_text"] * len(prompts),
                               max_attempts=max_attempts)
    per_source: dict[str, dict] = {}
    for s, (scores, err) in zip(samples, results):
        acc = per_source.setdefault(s["source"], {"n": 0, "failed": 0, **{d: 0.0 for d in FREE_TEXT_DIMENSIONS}})
        if err:
            acc["failed"] += 1
            continue
        acc["n"] += 1
        for d in FREE_TEXT_DIMENSIONS:
            acc[d] += scores[d]
    for acc in per_source.values():
        for d in FREE_TEXT_DIMENSIONS:
            acc[d] = acc[d] / acc["n"] if acc["n"] else None
    return per_source
