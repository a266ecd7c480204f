"""GenMentor agents 1-12 (docs/genmentor.md §1-2). Each agent renders its system + task templates
(`prompts/en/<agent>_{system,task}.txt`), calls the backend through `Caller.ask` (JSON ladder, pydantic
schema, capped repair) under its own tag, and returns the validated schema object. Structural rules that
need the inputs (scheduler B keeps learned sessions, C keeps them first; the gap list covers the
requirements; quiz counts) are checks passed to `Caller.ask`, so a violation is sent back as a repair turn; the
same rules as decoding schemas (`constraints.py`) go with the call, used when the run constrains decoding.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from humanai_jax.agents import PromptLibrary
from humanai_jax.methods.genmentor import constraints as K, schemas as S
from humanai_jax.methods.genmentor.llm import Caller

__all__ = ["PROMPTS", "REASON_FIRST", "Agents", "to_json", "session_rule", "match_skills_llm", "check_skill_pairs"]

PROMPTS = PromptLibrary("humanai_jax.methods.genmentor", lang="en")

# Agents whose prompt asks for reasoning before the JSON: decoding them under the schema would cut the reasoning,
# so they are never constrained (llm.Caller `unconstrained`).
REASON_FIRST = ("skill_gap.skill_mapper.genmentor", "skill_gap.skill_mapper.cot", "path.schedule.cot")


def to_json(value: Any) -> str:
    """Inputs are shown to the model as indented JSON (pydantic objects dumped first)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, list):
        value = [v.model_dump() if hasattr(v, "model_dump") else v for v in value]
    return json.dumps(value, ensure_ascii=False, indent=1)


def session_rule(count: int | None) -> str:
    """`desired_session_count`: -1 or None means 1-10 sessions (docs/genmentor.md §2.5)."""
    return "1-10" if count is None or count < 0 else f"exactly {count}"


def _msgs(name: str, task: str | None = None, system_fields: dict | None = None, **fields) -> list[dict]:
    return [{"role": "system", "content": PROMPTS.render(f"{name}_system", **(system_fields or {}))},
            {"role": "user", "content": PROMPTS.render(f"{task or name}_task", **fields)}]


# ------------------------------------------------------------------------------ structural checks
def check_learned_unchanged(old: S.LearningPath):
    """Scheduler B: every learned session of `old` appears unchanged (same id) in the new path."""
    learned = {s.id: s for s in old.learning_path if s.if_learned}

    def check(new: S.LearningPath) -> None:
        by_id = {s.id: s for s in new.learning_path}
        for sid, s in learned.items():
            if by_id.get(sid) != s:
                raise ValueError(f"learned session {sid!r} was changed or removed; copy it unchanged")
    return check


def check_learned_first(old: S.LearningPath, count: int | None):
    """Scheduler C: the learned sessions of `old` verbatim at the front, and the requested total length."""
    learned = [s for s in old.learning_path if s.if_learned]

    def check(new: S.LearningPath) -> None:
        head = new.learning_path[:len(learned)]
        if head != learned:
            raise ValueError(f"the {len(learned)} learned sessions must come first, verbatim and in order")
        if count is not None and count > 0 and len(new.learning_path) != max(count, len(learned)):
            raise ValueError(f"the path must have {max(count, len(learned))} sessions, got {len(new.learning_path)}")
    return check


def check_count(count: int | None):
    def check(path: S.LearningPath) -> None:
        if count is not None and count > 0 and len(path.learning_path) != count:
            raise ValueError(f"the path must have exactly {count} sessions, got {len(path.learning_path)}")
    return check


def check_covers(requirements: S.SkillRequirements):
    """Gap identifier: one gap item per required skill, with the same required level."""
    want = {S.norm_name(r.name): r.required_level for r in requirements.skill_requirements}

    def check(gaps: S.SkillGaps) -> None:
        got = {S.norm_name(g.name): g.required_level for g in gaps.skill_gaps}
        missing = sorted(set(want) - set(got))
        if missing:
            raise ValueError(f"no gap item for required skills {missing}")
        wrong = sorted(k for k in want if got[k] != want[k])
        if wrong:
            raise ValueError(f"required_level differs from the requirements for {wrong}")
    return check


def check_quiz_counts(counts: dict[str, int]):
    def check(quiz: S.DocumentQuiz) -> None:
        got = quiz.counts()
        bad = {k: (got[k], v) for k, v in counts.items() if got[k] != v}
        if bad:
            raise ValueError("question counts (got, wanted): " + ", ".join(f"{k} {g}/{w}" for k, (g, w) in bad.items()))
    return check


# ------------------------------------------------------------------------------ the agents
def check_skill_pairs(predicted: list[str], gold: list[str]):
    """The `llm` matcher's answer names only given skills (normalised), each at most once."""
    def check(m: S.SkillMatches) -> None:
        for side, names in (("predicted", predicted), ("gold", gold)):
            allowed = {S.norm_name(n) for n in names}
            used = [S.norm_name(getattr(p, side)) for p in m.matches]
            unknown = sorted({u for u in used if u not in allowed})
            if unknown:
                raise ValueError(f"{side} names not in the {side} list: {unknown}")
            if len(set(used)) < len(used):
                raise ValueError(f"a {side} skill appears in more than one pair")
    return check


def match_skills_llm(caller: Caller, predicted: list[str], gold: list[str]) -> set[tuple[str, str]]:
    """One judge call: {(normalised predicted, normalised gold)} pairs the judge says name the same skill
    (docs/genmentor.md §5 `llm` matcher; `metrics.match_skills` then matches one-to-one). No call when a list is empty."""
    if not predicted or not gold:
        return set()
    out = caller.ask("judge.skill_match", _msgs("skill_match", predicted_skills=to_json(predicted),
                                                gold_skills=to_json(gold)),
                     S.SkillMatches, check_skill_pairs(predicted, gold))
    return {(S.norm_name(p.predicted), S.norm_name(p.gold)) for p in out.matches}


@dataclasses.dataclass
class Agents:
    """All agent calls of one run share a Caller (backend, decoding config, tracer). `mapper` is the
    Skill Requirement Mapper's own caller (the fine-tuned goal-to-skill model), default the same."""

    caller: Caller
    mapper: Caller | None = None

    # 1-3: skill gap identification
    def refine_goal(self, goal: str, learner_information: str) -> S.RefinedGoal:
        return self.caller.ask("skill_gap.goal_refiner", _msgs("goal_refiner", learning_goal=goal,
                                                               learner_information=learner_information),
                               S.RefinedGoal)

    def map_skills(self, goal: str, style: str = "genmentor") -> S.SkillRequirements:
        """style: genmentor (the fine-tuned mapper's prompt, reasoning track then JSON), direct (DirPrompt),
        cot (CoTPrompt, the WWW'25 chain of thought)."""
        system = {"genmentor": "skill_mapper", "direct": "skill_mapper_direct", "cot": "skill_mapper_cot"}[style]
        caller = self.mapper if (style == "genmentor" and self.mapper is not None) else self.caller
        return caller.ask(f"skill_gap.skill_mapper.{style}", _msgs(system, "skill_mapper", learning_goal=goal),
                          S.SkillRequirements)

    def identify_gaps(self, goal: str, learner_information: str, requirements: S.SkillRequirements) -> S.SkillGaps:
        return self.caller.ask("skill_gap.gap_identifier", _msgs(
            "gap_identifier", learning_goal=goal, learner_information=learner_information,
            skill_requirements=to_json(requirements)), S.SkillGaps, check_covers(requirements),
            constraint=K.covering_gaps(requirements))

    # 4: profiler
    def init_profile(self, goal: str, learner_information: str, gaps: S.SkillGaps) -> S.LearnerProfile:
        return self.caller.ask("profiler.init", _msgs("profiler_init", learning_goal=goal,
                                                      learner_information=learner_information,
                                                      skill_gaps=to_json(gaps)), S.LearnerProfileOut,
                               constraint=K.profile_over([(g.name, g.required_level) for g in gaps.skill_gaps])
                               ).learner_profile

    def update_profile(self, profile: S.LearnerProfile, interactions: Any, session: S.SessionItem,
                       new_information: str = "") -> S.LearnerProfile:
        return self.caller.ask("profiler.update", _msgs(
            "profiler_update", learner_profile=to_json(profile), interactions=to_json(interactions),
            new_information=new_information or "(none)", session=to_json(session)), S.LearnerProfileOut,
            constraint=K.profile_over(K.skills_of_profile(profile))).learner_profile

    # 5-6: path scheduling and simulated feedback
    def schedule(self, profile: S.LearnerProfile, session_count: int | None = None,
                 style: str = "genmentor") -> S.LearningPath:
        """Task A (style genmentor), or the DirPrompt / CoTPrompt path baselines (style direct / cot)."""
        system = {"genmentor": "path_schedule", "direct": "path_direct", "cot": "path_cot"}[style]
        msgs = _msgs(system, "path_schedule", system_fields={"session_rule": session_rule(session_count)},
                     learner_profile=to_json(profile), session_count=session_count if session_count else -1)
        return self.caller.ask(f"path.schedule.{style}", msgs, S.LearningPath, check_count(session_count),
                               constraint=K.path_of(session_count))

    def reflexion(self, path: S.LearningPath, feedback: S.LearnerFeedback) -> S.LearningPath:
        """Task B: revise unlearned sessions from feedback; learned ones unchanged (checked)."""
        return self.caller.ask("path.reflexion", _msgs("path_reflexion", learning_path=to_json(path),
                                                       feedback=to_json(feedback)),
                               S.LearningPath, check_learned_unchanged(path), constraint=K.path_keeping_learned(path))

    def reschedule(self, profile: S.LearnerProfile, path: S.LearningPath, session_count: int | None = None,
                   other_feedback: str = "") -> S.LearningPath:
        """Task C: learned sessions verbatim first, new sessions for the remaining gap (checked)."""
        msgs = _msgs("path_reschedule", system_fields={"session_rule": session_rule(session_count)},
                     learner_profile=to_json(profile), learning_path=to_json(path),
                     session_count=session_count if session_count else -1, other_feedback=other_feedback or "(none)")
        return self.caller.ask("path.reschedule", msgs, S.LearningPath, check_learned_first(path, session_count),
                               constraint=K.path_learned_first(path, session_count))

    def path_feedback(self, profile: S.LearnerProfile, path: S.LearningPath) -> S.LearnerFeedback:
        return self.caller.ask("feedback.path", _msgs("feedback_path", learner_profile=to_json(profile),
                                                      learning_path=to_json(path)), S.LearnerFeedback)

    def content_feedback(self, profile: S.LearnerProfile, document_md: str) -> S.ContentFeedback:
        return self.caller.ask("feedback.content", _msgs("feedback_content", learner_profile=to_json(profile),
                                                         document=document_md), S.ContentFeedback)

    def optimise_path(self, profile: S.LearnerProfile, session_count: int | None, iters: int,
                      ) -> tuple[S.LearningPath, list[dict]]:
        """Evolving optimisation (docs/genmentor.md §2.6): schedule, then `iters` x (simulated feedback -> reflexion),
        stopping early when a reflexion returns its input path. Returns (path, history)."""
        path = self.schedule(profile, session_count)
        history = []
        for i in range(iters):
            feedback = self.path_feedback(profile, path)
            new = self.reflexion(path, feedback)
            history.append({"iter": i + 1, "feedback": feedback.model_dump(), "changed": new != path})
            self.caller.tracer.event("path_refine", history[-1], item_id=self.caller.item_id)
            if new == path:
                break
            path = new
        return path, history

    # 11: chatbot tutor (free text)
    def tutor(self, profile: S.LearnerProfile, chat: list[dict]) -> str:
        system = PROMPTS.render("tutor_system", learner_profile=to_json(profile))
        return self.caller.ask_text("tutor.chat", [{"role": "system", "content": system}, *chat])

    # 12: learner simulation (evaluation)
    def sim_ground_truth(self, goal: str, learner_information: str,
                         requirements: S.SkillRequirements) -> S.LearnerProfile:
        return self.caller.ask("sim.ground_truth", _msgs(
            "sim_ground_truth", learning_goal=goal, learner_information=learner_information,
            skill_requirements=to_json(requirements)), S.LearnerProfileOut,
            constraint=K.profile_over([(r.name, r.required_level) for r in requirements.skill_requirements])
            ).learner_profile

    def sim_progress(self, truth: S.LearnerProfile, session: S.SessionItem) -> S.LearnerProfile:
        return self.caller.ask("sim.progress", _msgs("sim_progress", ground_truth=to_json(truth),
                                                     session=to_json(session)), S.LearnerProfileOut,
                               constraint=K.profile_over(K.skills_of_profile(truth))).learner_profile

    def sim_behaviour(self, before: S.LearnerProfile, after: S.LearnerProfile,
                      session: S.SessionItem) -> S.BehaviourLog:
        return self.caller.ask("sim.behaviour", _msgs("sim_behaviour", ground_truth_before=to_json(before),
                                                      ground_truth_after=to_json(after), session=to_json(session)),
                               S.BehaviourLog)
