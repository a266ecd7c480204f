"""Pydantic schemas of every GenMentor agent output (docs/genmentor.md §3), one definition each, with the domain rules
of docs/genmentor.md §2 as validators (1-10 items, unique names, `reason` <= 20 words, the `is_gap` rule, 1-10 sessions).

Extra keys are ignored (pydantic's default), so the older example-file shapes load: a session with
`knowledge_points` and no `desired_outcome_when_completed` gets an empty outcome list.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

Level = Literal["beginner", "intermediate", "advanced"]
CurrentLevel = Literal["unlearned", "beginner", "intermediate", "advanced"]
LEVEL_ORDER = {"unlearned": 0, "beginner": 1, "intermediate": 2, "advanced": 3}
LEVELS = ("beginner", "intermediate", "advanced")
MAX_SKILLS = 10
MAX_SESSIONS = 10


def norm_name(name: str) -> str:
    """Case-insensitive, trimmed, inner whitespace collapsed: the uniqueness key of a skill name."""
    return " ".join(str(name).split()).lower()


def _lower(v):
    return v.strip().lower() if isinstance(v, str) else v


def _unique(names, what: str) -> None:
    seen = set()
    for n in names:
        key = norm_name(n)
        if key in seen:
            raise ValueError(f"duplicate {what} name {n!r} (names must be unique, case-insensitive)")
        seen.add(key)


class _Named(BaseModel):
    name: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _strip(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError("name is blank")
        return v


# ------------------------------------------------------------------------------ skill gap identification
class RefinedGoal(BaseModel):
    refined_goal: str = Field(min_length=1)


class SkillRequirement(_Named):
    required_level: Level
    _lv = field_validator("required_level", mode="before")(_lower)


class SkillRequirements(BaseModel):
    skill_requirements: list[SkillRequirement] = Field(min_length=1, max_length=MAX_SKILLS)

    @model_validator(mode="after")
    def _names(self):
        _unique([s.name for s in self.skill_requirements], "skill")
        return self


class SkillGap(_Named):
    is_gap: bool
    required_level: Level
    current_level: CurrentLevel
    reason: str
    level_confidence: Literal["low", "medium", "high"]
    _lv = field_validator("required_level", "current_level", "level_confidence", mode="before")(_lower)

    @field_validator("reason")
    @classmethod
    def _short(cls, v: str) -> str:
        if len(v.split()) > 20:
            raise ValueError(f"reason has {len(v.split())} words; at most 20 allowed")
        return v

    @model_validator(mode="after")
    def _gap_rule(self):
        expected = LEVEL_ORDER[self.current_level] < LEVEL_ORDER[self.required_level]
        if self.is_gap != expected:
            raise ValueError(f"skill {self.name!r}: is_gap must be {expected} when current_level is "
                             f"{self.current_level!r} and required_level is {self.required_level!r}")
        return self


class SkillGaps(BaseModel):
    skill_gaps: list[SkillGap] = Field(min_length=1, max_length=MAX_SKILLS)

    @model_validator(mode="after")
    def _names(self):
        _unique([s.name for s in self.skill_gaps], "skill gap")
        return self


# ------------------------------------------------------------------------------ learner profile
class MasteredSkill(_Named):
    proficiency_level: Level
    _lv = field_validator("proficiency_level", mode="before")(_lower)


class InProgressSkill(_Named):
    required_proficiency_level: Level
    current_proficiency_level: CurrentLevel
    _lv = field_validator("required_proficiency_level", "current_proficiency_level", mode="before")(_lower)


class CognitiveStatus(BaseModel):
    overall_progress: int = Field(ge=0, le=100)
    mastered_skills: list[MasteredSkill] = Field(default_factory=list)
    in_progress_skills: list[InProgressSkill] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self):
        _unique([s.name for s in self.mastered_skills] + [s.name for s in self.in_progress_skills], "profile skill")
        return self


class LearningPreferences(BaseModel):
    content_style: str
    activity_type: str
    additional_notes: str | None = None


class BehavioralPatterns(BaseModel):
    system_usage_frequency: str
    session_duration_engagement: str
    motivational_triggers: str | None = None
    additional_notes: str | None = None


class LearnerProfile(BaseModel):
    learner_information: str
    learning_goal: str = Field(min_length=1)
    cognitive_status: CognitiveStatus
    learning_preferences: LearningPreferences
    behavioral_patterns: BehavioralPatterns


class LearnerProfileOut(BaseModel):
    """The profiler's reply and `learner_profile.json`'s shape."""

    learner_profile: LearnerProfile


# ------------------------------------------------------------------------------ learning path
class Outcome(_Named):
    level: Level
    _lv = field_validator("level", mode="before")(_lower)


_SESSION_ID = re.compile(r"Session \d+")


class SessionItem(BaseModel):
    id: str
    title: str = Field(min_length=1)
    abstract: str
    if_learned: bool
    associated_skills: list[str] = Field(default_factory=list)
    desired_outcome_when_completed: list[Outcome] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        v = " ".join(v.split())
        if not _SESSION_ID.fullmatch(v):
            raise ValueError(f"session id must look like 'Session 3', got {v!r}")
        return v

    @field_validator("associated_skills")
    @classmethod
    def _drop_blank(cls, v: list[str]) -> list[str]:
        return [s.strip() for s in v if s and s.strip()]


class LearningPath(BaseModel):
    learning_path: list[SessionItem] = Field(min_length=1, max_length=MAX_SESSIONS)

    @model_validator(mode="after")
    def _ids(self):
        ids = [s.id for s in self.learning_path]
        if len(set(ids)) != len(ids):
            raise ValueError(f"session ids must be unique, got {ids}")
        return self


# ------------------------------------------------------------------------------ feedback simulator
class _PathAspects(BaseModel):
    progression: str
    engagement: str
    personalization: str


class LearnerFeedback(BaseModel):
    feedback: _PathAspects
    suggestions: _PathAspects


class _ContentAspects(BaseModel):
    goal_relevance: str
    content_quality: str
    personalization: str


class ContentFeedback(BaseModel):
    """Content-mode feedback (the released code validated it with the path keys; ours is separate)."""

    feedback: _ContentAspects
    suggestions: _ContentAspects


# ------------------------------------------------------------------------------ content
class KnowledgePoint(_Named):
    type: Literal["foundational", "practical", "strategic"]
    _lv = field_validator("type", mode="before")(_lower)


class KnowledgePoints(BaseModel):
    knowledge_points: list[KnowledgePoint] = Field(min_length=1, max_length=MAX_SKILLS)

    @model_validator(mode="after")
    def _names(self):
        _unique([p.name for p in self.knowledge_points], "knowledge point")
        return self


class KnowledgeDraft(BaseModel):
    title: str = Field(min_length=1)
    content: str = Field(min_length=1)


class DocumentStructure(BaseModel):
    title: str = Field(min_length=1)
    overview: str
    summary: str


class SingleChoice(BaseModel):
    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=2)
    correct_option: int | str
    explanation: str | None = None

    @model_validator(mode="after")
    def _in_options(self):
        c = self.correct_option
        if isinstance(c, int):
            if not 0 <= c < len(self.options):
                raise ValueError(f"correct_option index {c} is outside the {len(self.options)} options")
        elif c not in self.options and not (len(c) == 1 and 0 <= ord(c.upper()) - 65 < len(self.options)):
            raise ValueError(f"correct_option {c!r} is neither an option nor an option letter")
        return self


class MultipleChoice(BaseModel):
    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=2)
    correct_options: list[int | str] = Field(min_length=1)
    explanation: str | None = None


class TrueFalse(BaseModel):
    question: str = Field(min_length=1)
    correct_answer: bool
    explanation: str | None = None


class ShortAnswer(BaseModel):
    question: str = Field(min_length=1)
    expected_answer: str
    explanation: str | None = None


# question kind (as in the quiz counts) -> DocumentQuiz field
QUIZ_FIELDS = {"single_choice": "single_choice_questions", "multiple_choice": "multiple_choice_questions",
               "true_false": "true_false_questions", "short_answer": "short_answer_questions"}


class DocumentQuiz(BaseModel):
    single_choice_questions: list[SingleChoice] = Field(default_factory=list)
    multiple_choice_questions: list[MultipleChoice] = Field(default_factory=list)
    true_false_questions: list[TrueFalse] = Field(default_factory=list)
    short_answer_questions: list[ShortAnswer] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {kind: len(getattr(self, field)) for kind, field in QUIZ_FIELDS.items()}


# ------------------------------------------------------------------------------ baselines (content)
class Document(BaseModel):
    """DirGen / RAG: one prompt -> a whole document."""

    title: str = Field(min_length=1)
    content: str = Field(min_length=1)


class OutlineSection(BaseModel):
    title: str = Field(min_length=1)
    summary: str


class Outline(BaseModel):
    title: str = Field(min_length=1)
    sections: list[OutlineSection] = Field(min_length=1, max_length=MAX_SKILLS)


class QA(BaseModel):
    question: str
    answer: str


class OutlineDocument(BaseModel):
    title: str = Field(min_length=1)
    overview: str
    content: str = Field(min_length=1)
    summary: str
    quizzes: list[QA] = Field(default_factory=list)


# ------------------------------------------------------------------------------ learner simulation
class PerformanceMetrics(BaseModel):
    participation_frequency: str
    exercise_scores: float = Field(ge=0, le=100)
    completion_rate: float = Field(ge=0, le=100)


class TimeTracking(BaseModel):
    session_duration: str
    activity_participation: str
    average_task_time: str


class SimFeedback(BaseModel):
    satisfaction: int = Field(ge=1, le=5)
    self_assessed_mastery: str
    goal_alignment_feedback: str
    difficulty_perception: str


class BehaviourLog(BaseModel):
    performance_metrics: PerformanceMetrics
    time_tracking: TimeTracking
    learner_feedback: SimFeedback


# ------------------------------------------------------------------------------ evaluation: the `llm` skill matcher
class SkillPair(BaseModel):
    predicted: str = Field(min_length=1)
    gold: str = Field(min_length=1)


class SkillMatches(BaseModel):
    """The judge's answer to "which predicted skills name the same skill as which gold skills"; which names
    are allowed (and one-to-one use) is checked against the inputs by `agents.check_skill_pairs`."""
    matches: list[SkillPair] = Field(default_factory=list)


# ------------------------------------------------------------------------------ goal-to-skill data from a teacher
class TeacherSample(SkillRequirements):
    """A teacher's goal-to-skill answer (docs/genmentor.md §6): the reasoning track and the validated requirements."""
    reasoning_track: str = Field(min_length=1)
