"""LearnArena's prompts, as data in `prompts/` (wording of the reference `learnarena_utils/utils.py`,
`learnarena_benchmark.py`, `learning_from_instructor_experiment.py`; the math tutoring prompts and the
trajectory layout are ours). This module only assembles them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from humanai_jax.agents import PromptLibrary

__all__ = ["PROMPTS", "concept_prompt", "combiner_prompt", "analysis_prompt", "trajectories_text",
           "compose_player_system"]

PROMPTS = PromptLibrary("humanai_jax.methods.learnarena")


def _last(exp: Mapping) -> Mapping:
    return exp["moves"][-1] if exp.get("moves") else {"action": "N/A", "observation": "N/A"}


def concept_prompt(game: str, observation: str) -> str:
    return PROMPTS.render("concept_user", game=game, observation=observation)


def combiner_prompt(selected: Sequence[Mapping]) -> str:
    """Instructor guide (LfI): each selected experience with its last action and last observation."""
    body = "".join(PROMPTS.render("combiner_experience", i=i, score=e.get("score", 0), outcome=e.get("outcome"),
                                  action=_last(e).get("action", "N/A"), observation=_last(e).get("observation", "N/A"))
                   for i, e in enumerate(selected, 1))
    return PROMPTS.text("combiner_head") + body + PROMPTS.text("combiner_tail")


def analysis_prompt(selected: Sequence[Mapping]) -> str:
    """Self-analysis (LfE): each selected experience with its last action only."""
    body = "".join(PROMPTS.render("analysis_experience", i=i, score=e.get("score", 0), outcome=e.get("outcome"),
                                  action=_last(e).get("action", "N/A")) for i, e in enumerate(selected, 1))
    return PROMPTS.text("analysis_head") + body + PROMPTS.text("analysis_tail")


def trajectories_text(selected: Sequence[Mapping]) -> str:
    """Full trajectories (LfE runner): every move's player, full observation and action."""
    out = [PROMPTS.text("trajectory_head")]
    for i, e in enumerate(selected, 1):
        moves = e.get("moves") or []
        out.append(PROMPTS.render("trajectory_game", i=i, outcome=e.get("outcome"), score=e.get("score", 0),
                                  n_moves=len(moves)))
        out += [PROMPTS.render("trajectory_move", k=k, player=m["player"], observation=m["observation"],
                               action=m["action"]) for k, m in enumerate(moves, 1)]
        out.append("\n")
    return "".join(out).rstrip("\n")


def compose_player_system(base: str, *, concept: str = "", guide: str = "", analysis: str = "",
                          trajectories: str = "", learning: bool = True) -> str:
    """Player-1's system prompt: learning blocks (empty ones omitted) + a reminder + the base prompt.
    `learning=False` (round 1, or learning disabled) uses the concept-only reminder."""
    blocks = ""
    if concept:
        blocks += PROMPTS.render("block_concept", text=concept)
    if learning:
        for name, text in (("block_instructor", guide), ("block_analysis", analysis),
                           ("block_trajectories", trajectories)):
            if text:
                blocks += PROMPTS.render(name, text=text)
    if not blocks:
        return base
    reminder = PROMPTS.text("reminder_learning" if learning and (guide or analysis or trajectories)
                            else "reminder_concept")
    return blocks + reminder + base
