"""ChatBackends for GenMentor runs, from a config block (same keys as the other agent systems):

The core factory's kinds (`humanai_jax.agents.factory`: project run, HF dir, OpenAI-compatible endpoint, replay;
`record`) plus

  kind = "mock"    the plumbing model: a `ScriptedBackend` answering every agent tag with well-formed output
                   derived from the prompt (skills by BM25 over the shipped taxonomy, gaps from keywords of
                   the resume, sessions from the in-progress skills, judge scores 3). Exercises the whole
                   pipeline offline; its numbers mean nothing and results carry `plumbing: true`.
`TracedBackend` wraps a backend so that calls made outside `llm.Caller` (the shared judge) are traced too.
"""

from __future__ import annotations

import json
import re

from humanai_jax.agents import ScriptedBackend
from humanai_jax.agents.factory import build_backend as build_core_backend
from humanai_jax.agents.structured import extract_json, parse_xml_tags

__all__ = ["build_backend", "mock_backend", "mock_rules", "TracedBackend"]


def _first_user(messages) -> str:
    return next((m["content"] for m in messages if m["role"] == "user"), "")


def _system(messages) -> str:
    return next((m["content"] for m in messages if m["role"] == "system"), "")


def _field(messages, tag: str):
    """The JSON (or text) inside `<tag>...</tag>` of the task prompt."""
    text = parse_xml_tags(_first_user(messages), [tag])[tag]
    try:
        return extract_json(text)
    except ValueError:
        return text


def _profile(messages, tag="learner_profile") -> dict:
    p = _field(messages, tag)
    return p.get("learner_profile", p) if isinstance(p, dict) else p


def _dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


# ------------------------------------------------------------------------------ plumbing replies
def _skills(messages) -> str:
    from humanai_jax.methods.genmentor.goal2skill import bm25_taxonomy, load_taxonomy

    goal = _first_user(messages).split("Goal:", 1)[-1].strip()
    skills = bm25_taxonomy(load_taxonomy(), [goal], 5, "intermediate")[0] or [
        {"name": "Study Skills", "required_level": "beginner"}]
    body = _dump({"skill_requirements": skills})
    return f"Objectives: reach the goal.\nAdditional skills: none.\n{body}" if "Reason" in _system(messages) or \
        "step by step" in _system(messages) else body


def _current(name: str, info: str) -> str:
    first = re.split(r"\W+", name.lower())[0]
    return "beginner" if first and first in info.lower() else "unlearned"


_ORDER = {"unlearned": 0, "beginner": 1, "intermediate": 2, "advanced": 3}


def _gaps(messages) -> str:
    info = _field(messages, "learner_information")
    out = []
    for r in _field(messages, "skill_requirements")["skill_requirements"]:
        cur = _current(r["name"], str(info))
        out.append({"name": r["name"], "is_gap": _ORDER[cur] < _ORDER[r["required_level"]],
                    "required_level": r["required_level"], "current_level": cur,
                    "reason": "Inferred from the resume keywords.", "level_confidence": "medium"})
    return _dump({"skill_gaps": out})


def _new_profile(goal, info, items) -> dict:
    """items: [(name, required, current)] -> a profile dict."""
    mastered = [{"name": n, "proficiency_level": c} for n, r, c in items if _ORDER[c] >= _ORDER[r]]
    progress = [{"name": n, "required_proficiency_level": r, "current_proficiency_level": c}
                for n, r, c in items if _ORDER[c] < _ORDER[r]]
    return {"learner_information": str(info)[:500], "learning_goal": str(goal) or "(goal)",
            "cognitive_status": {"overall_progress": int(100 * len(mastered) / max(len(items), 1)),
                                 "mastered_skills": mastered, "in_progress_skills": progress},
            "learning_preferences": {"content_style": "concise text with examples", "activity_type": "exercises"},
            "behavioral_patterns": {"system_usage_frequency": "3 times a week",
                                    "session_duration_engagement": "30-minute sessions"}}


def _items(profile: dict) -> list[tuple[str, str, str]]:
    cs = profile["cognitive_status"]
    return [(s["name"], s["proficiency_level"], s["proficiency_level"]) for s in cs["mastered_skills"]] + [
        (s["name"], s["required_proficiency_level"], s["current_proficiency_level"]) for s in cs["in_progress_skills"]]


def _profile_init(messages) -> str:
    gaps = _field(messages, "skill_gaps")["skill_gaps"]
    items = [(g["name"], g["required_level"], g["current_level"]) for g in gaps]
    return _dump({"learner_profile": _new_profile(_field(messages, "learning_goal"),
                                                  _field(messages, "learner_information"), items)})


def _ground_truth(messages) -> str:
    info = str(_field(messages, "learner_information"))
    items = [(r["name"], r["required_level"], _current(r["name"], info))
             for r in _field(messages, "skill_requirements")["skill_requirements"]]
    return _dump({"learner_profile": _new_profile(_field(messages, "learning_goal"), info, items)})


def _advance(profile: dict, session: dict) -> dict:
    """Skills the session teaches reach its desired outcome levels."""
    target = {o["name"].lower(): o["level"] for o in session.get("desired_outcome_when_completed", [])}
    items = []
    for n, r, c in _items(profile):
        t = target.get(n.lower())
        items.append((n, r, t if t and _ORDER[t] > _ORDER[c] else c))
    return _new_profile(profile["learning_goal"], profile["learner_information"], items)


def _profile_update(messages) -> str:
    return _dump({"learner_profile": _advance(_profile(messages), _field(messages, "learned_session"))})


def _progress(messages) -> str:
    return _dump({"learner_profile": _advance(_profile(messages, "ground_truth"), _field(messages, "session"))})


def _count(messages, default: int) -> int:
    m = re.search(r"exactly (\d+) sessions", _system(messages))
    return int(m.group(1)) if m else default


def _sessions(skills: list[tuple[str, str]], start: int, count: int) -> list[dict]:
    """`count` sessions over `skills` [(name, level)] in order, numbered from `start`."""
    count = max(1, min(count, 10))
    groups = [skills[i::count] for i in range(count)] if skills else [[("Review", "beginner")]] * count
    return [{"id": f"Session {start + k}", "title": "Learning " + " and ".join(n for n, _ in g) if g else "Practice",
             "abstract": "Covers " + ", ".join(n for n, _ in g) + "." if g else "Practice.", "if_learned": False,
             "associated_skills": [n for n, _ in g],
             "desired_outcome_when_completed": [{"name": n, "level": lv} for n, lv in g]}
            for k, g in enumerate(groups)]


def _schedule(messages) -> str:
    prof = _profile(messages)
    todo = [(s["name"], s["required_proficiency_level"]) for s in prof["cognitive_status"]["in_progress_skills"]]
    return _dump({"learning_path": _sessions(todo, 1, _count(messages, min(max(len(todo), 1), 3)))})


def _reflexion(messages) -> str:
    path = _field(messages, "learning_path")["learning_path"]
    for s in path:
        if not s["if_learned"] and not s["abstract"].endswith("(revised)"):
            s["abstract"] += " (revised)"
    return _dump({"learning_path": path})


def _reschedule(messages) -> str:
    prof = _profile(messages)
    learned = [s for s in _field(messages, "learning_path")["learning_path"] if s["if_learned"]]
    done = {n.lower() for s in learned for n in s["associated_skills"]}
    todo = [(s["name"], s["required_proficiency_level"]) for s in prof["cognitive_status"]["in_progress_skills"]
            if s["name"].lower() not in done]
    total = _count(messages, len(learned) + min(max(len(todo), 1), 3))
    return _dump({"learning_path": learned + _sessions(todo, len(learned) + 1, max(total - len(learned), 1))})


def _explore(messages) -> str:
    title = _field(messages, "session")["title"]
    return _dump({"knowledge_points": [{"name": f"{title}: core ideas", "type": "foundational"},
                                       {"name": f"{title}: worked example", "type": "practical"},
                                       {"name": f"{title}: next steps", "type": "strategic"}]})


def _draft(messages) -> str:
    point = _field(messages, "knowledge_point")
    ctx = str(_field(messages, "external_resources"))[:300]
    return _dump({"title": point["name"], "content": f"**Key idea**\n\n{point['name']}.\n\n{ctx}\n\n"
                                                     "**Additional Resources**\n\n- the course notes"})


def _quiz(messages) -> str:
    m = re.search(r"exactly (\d+) single-choice, (\d+) multiple-choice, (\d+) true/false and (\d+) short-answer",
                  _system(messages))
    ns, nm, nt, na = (int(x) for x in m.groups()) if m else (3, 0, 0, 0)
    q = lambda i: f"Question {i + 1} about the document?"  # noqa: E731
    return _dump({"single_choice_questions": [{"question": q(i), "options": ["A", "B", "C", "D"], "correct_option": 0}
                                              for i in range(ns)],
                  "multiple_choice_questions": [{"question": q(i), "options": ["A", "B", "C"], "correct_options": [0]}
                                                for i in range(nm)],
                  "true_false_questions": [{"question": q(i), "correct_answer": True} for i in range(nt)],
                  "short_answer_questions": [{"question": q(i), "expected_answer": "See the document."}
                                             for i in range(na)]})


def _teacher(messages) -> str:
    """The plumbing teacher: BM25 taxonomy skills for the goal, with a templated track."""
    from humanai_jax.methods.genmentor.goal2skill import bm25_taxonomy, load_taxonomy

    goal = str(_field(messages, "learning_goal")).strip()
    skills = bm25_taxonomy(load_taxonomy(), [goal], 5, "intermediate")[0] or [
        {"name": "Study Skills", "required_level": "beginner"}]
    names = ", ".join(s["name"] for s in skills)
    return _dump({"reasoning_track": f"Objectives: {goal}\nSkills: {names}\nLevels: intermediate\n"
                                     "Additional skills: none.", "skill_requirements": skills})


def _skill_match(messages) -> str:
    """Pairs by the token-Jaccard rule (>= 0.5, one-to-one): a stand-in judge for the `llm` matcher."""
    from humanai_jax.methods.genmentor.metrics import match_skills

    pred, gold = _field(messages, "predicted_skills"), _field(messages, "gold_skills")
    return _dump({"matches": [{"predicted": pred[i], "gold": gold[j]}
                              for i, j in match_skills(pred, gold, "token_jaccard")]})


def _judge(messages) -> str:
    dims = re.findall(r"<(\w+)>N</\1>", _first_user(messages))
    return "Plausible.\n" + "".join(f"<{d}>3</{d}>" for d in dims)


_FEEDBACK_PATH = _dump({"feedback": {"progression": "Good order.", "engagement": "Fine.", "personalization": "Fits."},
                        "suggestions": {"progression": "Add practice.", "engagement": "Add examples.",
                                        "personalization": "Use my field."}})
_FEEDBACK_CONTENT = _dump({"feedback": {"goal_relevance": "Relevant.", "content_quality": "Clear.",
                                        "personalization": "Fits."},
                           "suggestions": {"goal_relevance": "More goal links.", "content_quality": "More examples.",
                                           "personalization": "Use my field."}})
_BEHAVIOUR = _dump({"performance_metrics": {"participation_frequency": "every day", "exercise_scores": 80,
                                            "completion_rate": 90},
                    "time_tracking": {"session_duration": "30 minutes", "activity_participation": "all exercises",
                                      "average_task_time": "5 minutes"},
                    "learner_feedback": {"satisfaction": 4, "self_assessed_mastery": "improved",
                                         "goal_alignment_feedback": "on track", "difficulty_perception": "right"}})


def mock_rules() -> list:
    """The plumbing model's rules `(tag regex, None, reply)`; tests put their own rules in front."""
    def title(m):
        return _field(m, "session")["title"]

    return [
        (r"skill_gap\.goal_refiner", None, lambda m: _dump({"refined_goal": _field(m, "learning_goal")})),
        (r"skill_gap\.skill_mapper\..*", None, _skills),
        (r"skill_gap\.gap_identifier", None, _gaps),
        (r"profiler\.init", None, _profile_init),
        (r"profiler\.update", None, _profile_update),
        (r"path\.schedule\..*", None, _schedule),
        (r"path\.reflexion", None, _reflexion),
        (r"path\.reschedule", None, _reschedule),
        (r"feedback\.path", None, _FEEDBACK_PATH),
        (r"feedback\.content", None, _FEEDBACK_CONTENT),
        (r"content\.explore", None, _explore),
        (r"content\.draft", None, _draft),
        (r"content\.integrate", None, lambda m: _dump({"title": title(m), "overview": f"This session: {title(m)}.",
                                                        "summary": "Key takeaways of the session."})),
        (r"content\.quiz", None, _quiz),
        (r"baseline\.(dirgen|rag)", None, lambda m: _dump({"title": title(m), "content": f"About {title(m)}."})),
        (r"baseline\.outline", None, lambda m: _dump({"title": title(m), "sections": [
            {"title": "Basics", "summary": "The basics."}, {"title": "Practice", "summary": "Practice."}]})),
        (r"baseline\.outline_section", None, lambda m: _dump({"title": _field(m, "section")["title"],
                                                              "content": "Section text."})),
        (r"baseline\.outline_document", None, lambda m: _dump({
            "title": _field(m, "outline")["title"], "overview": "Overview.", "content": "Basics. Practice.",
            "summary": "Summary.", "quizzes": [{"question": "Q?", "answer": "A."}]})),
        (r"tutor\.chat", None, "Here is a short explanation with an example."),
        (r"sim\.ground_truth", None, _ground_truth),
        (r"sim\.progress", None, _progress),
        (r"sim\.behaviour", None, _BEHAVIOUR),
        (r"judge\.skill_match", None, _skill_match),
        (r"synth\.teacher", None, _teacher),
        (r"judge\..*", None, _judge),
    ]


def mock_backend() -> ScriptedBackend:
    backend = ScriptedBackend(mock_rules())
    backend.name = "mock(plumbing)"
    return backend


class TracedBackend:
    """Wraps a backend; every call is written to `tracer` as an llm_call record (parsed by the caller)."""

    def __init__(self, inner, tracer):
        self.inner, self.tracer = inner, tracer
        self.name = getattr(inner, "name", type(inner).__name__)
        self.item_id = ""  # the learner being judged (set by the runner), so judge lines are attributable

    def _trace(self, messages, cfg, tag, res):
        self.tracer.write({"type": "llm_call", "agent": tag, "item_id": self.item_id, "round": None, "attempt": None,
                           "messages": list(messages), "gen_config": cfg.to_dict(), "backend": self.name,
                           "response": list(res.texts) if res.ok else [], "error": res.error, "usage": res.usage,
                           "latency_s": res.latency_s, "parsed": None, "parse_error": None})

    def chat(self, messages, cfg, *, tag=""):
        res = self.inner.chat(messages, cfg, tag=tag)
        self._trace(messages, cfg, tag, res)
        return res

    def chat_batch(self, batch, cfg, *, tags=None):
        results = self.inner.chat_batch(batch, cfg, tags=tags)
        for i, (m, r) in enumerate(zip(batch, results)):
            self._trace(m, cfg, tags[i] if tags else "", r)
        return results


def build_backend(block, *, seed: int = 0):
    """A ChatBackend from a config block: `mock` (the plumbing model) or any kind of the core factory."""
    return build_core_backend(block, seed=seed, custom={"mock": lambda b, s: mock_backend()})
