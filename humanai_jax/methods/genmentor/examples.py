"""Loaders for the reference's example artefacts (`../shared/data/genmentor/`, docs/genmentor.md §4), tolerant of their
older shapes: extra keys are ignored, a session without `desired_outcome_when_completed` gets an empty list,
`knowledge_document.json`'s `article_title` is the title. Errors name the file."""

from __future__ import annotations

import json
import os

from pydantic import BaseModel, ValidationError

from humanai_jax.methods.genmentor import schemas as S

__all__ = ["KnowledgeDocument", "load_example", "EXAMPLE_FILES"]


class KnowledgeDocument(BaseModel):
    title: str
    content: str
    quiz: S.DocumentQuiz


EXAMPLE_FILES = ("skill_gap.json", "learner_profile.json", "learning_path.json", "knowledge_document.json",
                 "learning_document.json")


def load_example(path: str):
    """SkillGaps | LearnerProfile | LearningPath | KnowledgeDocument | Document, chosen by file name."""
    name = os.path.basename(path)
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    try:
        if name == "skill_gap.json":
            return S.SkillGaps.model_validate(raw)
        if name == "learner_profile.json":
            return S.LearnerProfileOut.model_validate(raw).learner_profile
        if name == "learning_path.json":
            return S.LearningPath.model_validate(raw)
        if name == "knowledge_document.json":
            return KnowledgeDocument(title=raw["article_title"], content=raw["content"],
                                     quiz=S.DocumentQuiz.model_validate(raw.get("quizzes") or {}))
        if name == "learning_document.json":
            return S.Document.model_validate(raw)
    except (ValidationError, KeyError) as e:
        raise ValueError(f"{path}: not a valid GenMentor {name} artefact: {e}") from None
    raise ValueError(f"{path}: unknown example file (expected one of {EXAMPLE_FILES})")
