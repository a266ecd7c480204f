"""Evaluation (spec §10): item-selection accuracy, the first-N-per-source test selection, and an LLM judge
for the free-text tasks with its rubric stored as data (`prompts/judge_free_text.txt`).

Item selection: hit iff `target.strip().lower()` is a substring of `generation.strip().lower()`; with
20 candidates, chance is 1/20 = 5%.
"""

from __future__ import annotations

import collections
import re
from typing import Sequence

from humanai_jax.agents import GenConfig, batch_structured
from humanai_jax.methods.humanllm import judge as judge_lib
from humanai_jax.methods.humanllm import stages

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


CONTEXT_MARKERS = {"history": "purchase history:", "persona": "user persona:"}


def binomial_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided confidence interval of a binomial proportion k/n."""
    from scipy.stats import beta

    if n <= 0:
        return (0.0, 1.0)
    a = (1.0 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def candidates_of(prompt: str) -> list[str]:
    """The titles of the `Candidate k: <title>` lines of an item-selection prompt."""
    return re.findall(r"^Candidate \d+: (.*)$", prompt, re.MULTILINE)


def context_of(prompt: str) -> str:
    """"history", "persona" or "persona+history": which user context an item-selection prompt holds."""
    have = [name for name, marker in CONTEXT_MARKERS.items() if marker in prompt]
    return "+".join(sorted(have, reverse=True)) if have else "none"


def item_selection_accuracy(samples: Sequence[dict], generations: Sequence[str]) -> dict:
    """Accuracy (hit = target title in the generation) with its exact 95% CI and the one-sided binomial
    p-value against chance; also accuracy per user-context type and how often the generation names
    any of the 20 candidates (a model that picks a candidate at random scores chance)."""
    from scipy.stats import binomtest

    hits = [item_hit(s["messages"][-1]["content"], g) for s, g in zip(samples, generations)]
    n, k = len(hits), sum(hits)
    named = [any(item_hit(c, g) for c in candidates_of(s["messages"][-2]["content"]))
             for s, g in zip(samples, generations)]
    by_context: dict[str, list[int]] = {}
    for s, h in zip(samples, hits):
        acc = by_context.setdefault(context_of(s["messages"][-2]["content"]), [0, 0])
        acc[0] += h
        acc[1] += 1
    return {"accuracy": k / max(n, 1), "n": n, "hits": k, "chance": CHANCE_ITEM_SELECTION,
            "ci95": list(binomial_ci(k, n)),
            "p_value_vs_chance": float(binomtest(k, n, CHANCE_ITEM_SELECTION, alternative="greater").pvalue) if n else 1.0,
            "names_a_candidate": sum(named) / max(n, 1),
            "by_context": {c: {"accuracy": h / t, "n": t} for c, (h, t) in sorted(by_context.items())}}


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
