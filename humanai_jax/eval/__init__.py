"""Shared evaluation layer: evaluators chosen by name from `config.evals` (`registry.py`), LLM-as-judge
with rubric data (`judge.py`) and the statistics results are reported with (`stats.py`).

The core never imports `humanai_jax.methods`; methods register their own evaluators with
`@register("name")`. See docs/agents.md ("Evaluation").
"""

from humanai_jax.eval import stats
from humanai_jax.eval.judge import Judgment, Rubric, aggregate, judge, load_rubrics, parse_scores, passes_thresholds
from humanai_jax.eval.registry import (
    Evaluator,
    LLMJudge,
    LMLoss,
    MultipleChoiceAccuracy,
    build_evaluators,
    register,
    registered,
    run_evaluators,
)

__all__ = ["stats", "Judgment", "Rubric", "aggregate", "judge", "load_rubrics", "parse_scores", "passes_thresholds",
           "Evaluator", "LLMJudge", "LMLoss", "MultipleChoiceAccuracy", "build_evaluators", "register", "registered",
           "run_evaluators"]
