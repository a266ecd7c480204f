"""Input-dependent decoding schemas: for agents whose reply must repeat parts of their input (the gap identifier
covers each requirement once with its level; a path has the requested number of sessions; the reflexion and
rescheduling keep learned sessions verbatim; a quiz has the requested counts), a JSON schema narrower than the
agent's pydantic model, sent as `response_format` when the run constrains decoding (`llm.Caller(constrain=True)`).

These schemas encode exactly the structural checks of `agents.py` (`check_covers`, `check_count`,
`check_learned_unchanged`, `check_learned_first`, `check_quiz_counts`) that a schema can express; the model still
chooses every free field (levels, is_gap, titles, text). The checks still run after decoding, so a backend that
ignores `response_format` is held to the same rules through repair turns.
"""

from __future__ import annotations

import copy
from typing import Any

from humanai_jax.methods.genmentor import schemas as S

__all__ = ["exact", "covering_gaps", "profile_over", "skills_of_profile", "path_of", "path_keeping_learned",
           "path_learned_first", "quiz_with_counts", "MAX_PARTITION_SKILLS"]

# profile_over enumerates the 2^n ways to split n skills into mastered / in progress: up to 256 alternatives
MAX_PARTITION_SKILLS = 8


def exact(value: Any) -> dict:
    """A schema that accepts `value` only: objects property by property, arrays as closed tuples, scalars as const.
    (Our decoder supports `const` for scalars only, so composite values are spelled out.)"""
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, dict):
        return {"type": "object", "properties": {k: exact(v) for k, v in value.items()},
                "required": list(value), "additionalProperties": False}
    if isinstance(value, (list, tuple)):
        return _tuple([exact(v) for v in value])
    return {"const": value}


def _with(schema: dict, **properties) -> dict:
    """A copy of an object schema with some properties replaced."""
    out = copy.deepcopy(schema)
    out["properties"].update(properties)
    return out


def _tuple(items: list[dict]) -> dict:
    if not items:  # the metaschema wants prefixItems non-empty: an empty array is maxItems 0
        return {"type": "array", "items": {"type": "null"}, "maxItems": 0}
    return {"type": "array", "prefixItems": items, "items": False, "minItems": len(items)}


def covering_gaps(requirements: S.SkillRequirements) -> dict:
    """SkillGaps with one item per requirement, in order, name and required_level copied (`check_covers`), and
    is_gap tied to the current level the model picks (`SkillGap`'s rule: a gap exactly when current < required):
    each item is one alternative per current level, which the decoder factors where they differ."""
    gap = S.SkillGap.model_json_schema()

    def item(r: S.SkillRequirement) -> dict:
        return {"anyOf": [_with(gap, name={"const": r.name}, required_level={"const": r.required_level},
                                current_level={"const": level},
                                is_gap={"const": S.LEVEL_ORDER[level] < S.LEVEL_ORDER[r.required_level]})
                          for level in S.LEVEL_ORDER]}

    items = [item(r) for r in requirements.skill_requirements]
    return {"type": "object", "properties": {"skill_gaps": _tuple(items)}, "required": ["skill_gaps"]}


def profile_over(skills: list[tuple[str, str]]) -> dict | None:
    """LearnerProfileOut whose cognitive status holds each given skill `(name, required level)` exactly once (the
    schema's unique-and-disjoint names rule), in the given order within each list: mastered with a proficiency at or
    above the required level, or in progress with the required level copied and a current level below it. Which
    skills are mastered, and every level, is the model's choice: the status is one alternative per split (2^n, the
    decoder factors them), so None (the model's own schema) above `MAX_PARTITION_SKILLS` skills or for none."""
    if not skills or len(skills) > MAX_PARTITION_SKILLS:
        return None
    root = S.LearnerProfileOut.model_json_schema()
    status = root["$defs"]["CognitiveStatus"]

    def mastered(name: str, required: str) -> dict:
        return {"type": "object", "properties": {"name": {"const": name}, "proficiency_level": {
            "enum": [lv for lv in S.LEVELS if S.LEVEL_ORDER[lv] >= S.LEVEL_ORDER[required]]}}}

    def in_progress(name: str, required: str) -> dict:
        return {"type": "object", "properties": {"name": {"const": name}, "required_proficiency_level": {
            "const": required}, "current_proficiency_level": {
            "enum": [lv for lv in S.LEVEL_ORDER if S.LEVEL_ORDER[lv] < S.LEVEL_ORDER[required]]}}}

    splits = []
    for bits in range(1 << len(skills)):
        done = [k for k in range(len(skills)) if bits >> k & 1]
        todo = [k for k in range(len(skills)) if not bits >> k & 1]
        splits.append(_with(status, mastered_skills=_tuple([mastered(*skills[k]) for k in done]),
                            in_progress_skills=_tuple([in_progress(*skills[k]) for k in todo])))
    root["$defs"]["CognitiveStatus"] = {"anyOf": splits}
    return root


def skills_of_profile(profile: S.LearnerProfile) -> list[tuple[str, str]]:
    """`(name, required level)` of a profile's skills: a mastered skill's required level is taken as its proficiency
    (a profile does not keep it)."""
    cs = profile.cognitive_status
    return [(m.name, m.proficiency_level) for m in cs.mastered_skills] + [
        (p.name, p.required_proficiency_level) for p in cs.in_progress_skills]


def _path_schema(sessions: list[dict]) -> dict:
    root = S.LearningPath.model_json_schema()
    return {"$defs": root["$defs"], "type": "object", "properties": {"learning_path": _tuple(sessions)},
            "required": ["learning_path"]}


def _session(session_id: str) -> dict:
    return _with(S.LearningPath.model_json_schema()["$defs"]["SessionItem"], id={"const": session_id})


def path_of(count: int | None) -> dict | None:
    """Exactly `count` sessions with ids "Session 1".."Session count" (`check_count`); None when any count goes."""
    if count is None or count <= 0:
        return None
    return _path_schema([_session(f"Session {k}") for k in range(1, count + 1)])


def path_keeping_learned(old: S.LearningPath) -> dict:
    """The same sessions in the same order: learned ones verbatim (`check_learned_unchanged`), the others with
    their ids kept and every other field free. (Narrower than the check: the reflexion revises sessions, it does
    not add or drop them.)"""
    return _path_schema([exact(s) if s.if_learned else _session(s.id) for s in old.learning_path])


def path_learned_first(old: S.LearningPath, count: int | None) -> dict:
    """The learned sessions verbatim first, then new sessions up to the requested total (`check_learned_first`),
    with ids unused so far. Without a requested total: learned first, then as many new sessions as the old path had
    unlearned ones."""
    learned = [s for s in old.learning_path if s.if_learned]
    total = max(count, len(learned)) if count is not None and count > 0 else len(old.learning_path)
    used = {s.id for s in learned}
    fresh = (f"Session {k}" for k in range(1, 2 * S.MAX_SESSIONS + 1) if f"Session {k}" not in used)
    return _path_schema([exact(s) for s in learned] + [_session(next(fresh)) for _ in range(total - len(learned))])


def quiz_with_counts(counts: dict[str, int]) -> dict:
    """DocumentQuiz with exactly the requested number of questions of each kind (`check_quiz_counts`)."""
    root = S.DocumentQuiz.model_json_schema()
    out = copy.deepcopy(root)
    for kind, n in counts.items():
        out["properties"][S.QUIZ_FIELDS[kind]].update(minItems=int(n), maxItems=int(n))
    return out
