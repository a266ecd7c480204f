"""Game-quality scores: the reference LLM judge (through `humanai_jax.eval.judge`) or the outcome.

Judge (reference `score_game_quality`): the Player-0 model, as an expert judge, sees the outcome, the
final observation and the final action with a 5-band rubric and ends with `Score: X/10`. The score is
the first `(\\d+)/10` of the reply, clamped to [0, 10]; no match or a failed call scores 0 (the
reference's rule) and is counted in `judge_failures`. `max_attempts > 1` adds the shared judge's repair
turns (ours; 1 = the reference).
Outcome (the README's rule): win 10, draw 5, loss 0 from Player-1's side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from humanai_jax.agents import GenConfig
from humanai_jax.eval.judge import Rubric, judge
from humanai_jax.methods.learnarena.prompting import PROMPTS

__all__ = ["SlashTenRubric", "judge_rubric", "parse_slash_ten", "judge_score", "outcome_score", "SCORE_MODES"]

SCORE_MODES = ("judge", "outcome")
_SLASH_TEN = re.compile(r"(\d+)/10")


def parse_slash_ten(text: str) -> int:
    """First `N/10` in the text, clamped to [0, 10]; ValueError when there is none."""
    m = _SLASH_TEN.search(text or "")
    if m is None:
        raise ValueError("no score of the form 'X/10' found; end the reply with 'Score: X/10'")
    return max(0, min(10, int(m.group(1))))


class SlashTenRubric(Rubric):
    """A one-dimension rubric (`score`) read with the reference's `(\\d+)/10` rule and sent with the
    judge's system prompt."""

    def parse(self, text: str) -> dict[str, int]:
        return {"score": parse_slash_ten(text)}

    def messages(self, **fields) -> list[dict]:
        return [{"role": "system", "content": PROMPTS.text("judge_system")},
                {"role": "user", "content": self.render(**fields)}]


def judge_rubric() -> SlashTenRubric:
    return SlashTenRubric(name="learnarena_game", dimensions=("score",), template=PROMPTS.text("judge_user"),
                          scale=(0, 10))


def judge_score(backend, outcome: str, last_move: Mapping, cfg: GenConfig, *, max_attempts: int = 1) -> tuple[int, str | None]:
    """`(score, error)`: the judge's score of one game (0 with the error when it could not be read)."""
    [j] = judge(backend, judge_rubric(), [{"outcome": outcome, "observation": last_move["observation"],
                                           "action": last_move["action"]}],
                cfg=cfg, max_attempts=max_attempts, tag="learnarena.judge")
    if j.error is not None:
        return 0, j.error
    return j.scores["score"], None


def outcome_score(outcome: str) -> int:
    return {"Player 1 won": 10, "Draw": 5}.get(outcome, 0)
