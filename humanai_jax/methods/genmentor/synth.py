"""Teacher-synthesised goal-to-skill data (docs/genmentor.md §6): a teacher backend (any `ChatBackend`: an OpenAI-compatible
endpoint, a HF checkpoint, a replayed cassette) answers each goal with a reasoning track and skill requirements
(`prompts/en/synth_teacher_*.txt`); replies are validated with `schemas.TeacherSample` (the `SkillRequirements`
rules plus a non-empty track) with capped repair; goals whose teacher never answers validly are dropped and
counted. The samples have the dataset format of `goal2skill.read_dataset` plus the teacher's name.

Goals file: JSONL with `goal` (and optional `id`, `split`) per line, or plain text, one goal per line.
Splits: a given `split` is kept; the others are a seeded permutation by `fractions` (train / val / test).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from humanai_jax.agents import GenConfig, StructuredOutputError
from humanai_jax.methods.genmentor import schemas as S
from humanai_jax.methods.genmentor.agents import PROMPTS
from humanai_jax.methods.genmentor.llm import Caller, Tracer

__all__ = ["read_goals", "assign_splits", "synthesize"]

SPLITS = ("train", "val", "test")


def read_goals(path: str) -> list[dict]:
    """[{id, goal, split?}] from a JSONL (`goal` per line) or a text file (one goal per line); a duplicate
    goal (normalised) or a bad split raises naming file:line."""
    from humanai_jax.data.jsonl import iter_jsonl, require_fields

    if path.endswith(".jsonl"):
        rows = [(line, rec) for line, rec in iter_jsonl(path, validate=require_fields(["goal"], str))]
    else:
        with open(path, encoding="utf-8") as f:
            rows = [(i, {"goal": ln.strip()}) for i, ln in enumerate(f, 1) if ln.strip()]
    out, seen = [], {}
    for line, rec in rows:
        goal = " ".join(rec["goal"].split())
        if not goal:
            raise ValueError(f"{path}:{line}: empty goal")
        key = goal.lower()
        if key in seen:
            raise ValueError(f"{path}:{line}: duplicate goal (first at line {seen[key]}): {goal!r}")
        seen[key] = line
        if rec.get("split") not in (None, *SPLITS):
            raise ValueError(f"{path}:{line}: split must be train, val or test, got {rec['split']!r}")
        out.append({"id": str(rec.get("id", f"goal-{line}")), "goal": goal,
                    **({"split": rec["split"]} if rec.get("split") else {})})
    if not out:
        raise ValueError(f"{path}: no goals")
    return out


def assign_splits(goals: Sequence[dict], fractions: Sequence[float], seed: int) -> list[str]:
    """A split per goal: its own `split` when given, else train / val / test by `fractions` of a seeded
    permutation of the goals without one (counts rounded down for val and test)."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {tuple(fractions)}")
    free = [i for i, g in enumerate(goals) if not g.get("split")]
    order = np.random.default_rng(seed).permutation(len(free))
    n_val, n_test = int(len(free) * fractions[1]), int(len(free) * fractions[2])
    out = [g.get("split", "") for g in goals]
    for rank, k in enumerate(order):
        out[free[int(k)]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return out


def synthesize(backend, goals: Sequence[dict], *, cfg: GenConfig = GenConfig(temperature=0.0, max_tokens=1024),
               max_attempts: int = 3, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0,
               tracer: Tracer | None = None) -> tuple[list[dict], dict]:
    """(samples, report). Samples: {id, goal, skill_requirements, track, split, teacher}, in goal order, only
    the goals with a valid answer; report: {teacher, n_goals, n_kept, n_dropped, dropped: [{id, error}],
    split_counts}. One `chat_batch` round per attempt (the failing goals are re-sent with a repair turn)."""
    teacher = getattr(backend, "name", type(backend).__name__)
    caller = Caller(backend, cfg, tracer or Tracer(None), max_attempts=max_attempts)
    prompts = [[{"role": "system", "content": PROMPTS.render("synth_teacher_system")},
                {"role": "user", "content": PROMPTS.render("synth_teacher_task", learning_goal=g["goal"])}]
               for g in goals]
    replies = caller.ask_batch("synth.teacher", prompts, S.TeacherSample, raise_on_failure=False)
    splits = assign_splits(goals, fractions, seed)
    samples, dropped = [], []
    for g, split, r in zip(goals, splits, replies):
        if isinstance(r, StructuredOutputError):
            dropped.append({"id": g["id"], "error": str(r)})
            continue
        samples.append({"id": g["id"], "goal": g["goal"], "split": split, "teacher": teacher,
                        "track": r.reasoning_track.strip(),
                        "skill_requirements": [s.model_dump() for s in r.skill_requirements]})
    counts = {s: sum(x["split"] == s for x in samples) for s in SPLITS}
    return samples, {"teacher": teacher, "n_goals": len(goals), "n_kept": len(samples), "n_dropped": len(dropped),
                     "dropped": dropped, "split_counts": counts}
