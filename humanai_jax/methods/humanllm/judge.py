"""HumanLLM's judge thresholds and keep rule (docs/humanllm.md §6) on the core LLM judge (`humanai_jax.eval.judge`).

The judge answers `<data><explanation/>...<dim>N</dim>...</data>`; `parse_scores` (core) applies the
reference regex `<(\\w+)>\\s*(\\d+)\\s*</\\1>`; `check_quality` is the reference keep rule. The rubric
wording and prompt are data (`prompts/judge_rubrics.json`, `prompts/judge.txt`).
"""

from __future__ import annotations

from collections.abc import Mapping

from humanai_jax.eval.judge import parse_scores, passes_thresholds

__all__ = ["THRESHOLDS", "parse_scores", "check_quality", "thresholds_for"]

# Per-artifact thresholds (None = the default rule: overall >= 9 and every other dimension >= 8).
THRESHOLDS: dict[str, dict[str, int] | None] = {
    "social_qa": None,
    "social_qa.emphasizereason_v3.reddit": dict(hallucination=8, coverage=8, fidelity=8, novelty=7, leakage=7,
                                                 overall=8),
    "social_qa.emphasizereason_v3.twitter": dict(hallucination=9, coverage=8, fidelity=8, novelty=7, leakage=7,
                                                  overall=7),
    "persona": dict(hallucination=8, coverage=7, conciseness=8, relevance=8, overall=8),
    "profile": dict(hallucination=8, coverage=8, relevance=9, fluency=9, conciseness=8, informativeness=8,
                    novelty=8, overall=8),
    "stories": dict(hallucination=8, coverage=8, informativeness=8, novelty=7, overall=8),
    "scenario": None,
}


def check_quality(scores: Mapping[str, int] | None, metrics: Mapping[str, int] | None = None) -> bool:
    """The reference keep rule. Missing or empty scores mean reject.

    With `metrics`: every listed dimension must be present and >= its threshold. Without (default):
    `overall >= 9` and every other parsed dimension >= 8.
    """
    if not scores:
        return False
    if metrics is not None:
        return passes_thresholds(scores, metrics)
    if "overall" not in scores or scores["overall"] < 9:
        return False
    return all(v >= 8 for k, v in scores.items() if k != "overall")


def thresholds_for(artifact: str, variant: str | None = None, platform: str | None = None) -> dict | None:
    """Looks up the keep thresholds: the Social QA reason variant has platform-specific ones.

    Blogger reason_v3 uses the default rule, as do all Blogger Social QA variants.
    """
    if artifact == "social_qa" and variant == "emphasizereason_v3" and platform in ("reddit", "twitter"):
        return THRESHOLDS[f"social_qa.emphasizereason_v3.{platform}"]
    if artifact not in THRESHOLDS:
        raise ValueError(f"unknown judged artifact {artifact!r}; known: {sorted(THRESHOLDS)}")
    return THRESHOLDS[artifact]
