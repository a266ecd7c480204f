"""A ChatBackend from a config block (configs/oversight.py `_backend`): the core factory's kinds
(`humanai_jax.agents.factory`: project run, HF dir, OpenAI-compatible endpoint, replay; `record`) plus

  kind = "scripted"  `script`: "lexical" — deterministic content-word-overlap agents for every role of the
                     debate and sandwiching protocols (plumbing runs and tests: the numbers are no claims)
"""

from __future__ import annotations

import json
import re

from humanai_jax.agents import ScriptedBackend
from humanai_jax.agents.factory import build_backend as build_core_backend, option

_STOP = frozenset("a an the and or of to in on for with is was are be his her their its this that he she they "
                  "it as at by from what which who most likely person story".split())


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOP and len(w) > 2}


def best_by_overlap(candidates: list[str], reference: str) -> int:
    """Index of the candidate sharing the most content words with `reference` (ties: the first)."""
    ref = words(reference)
    scores = [len(words(c) & ref) for c in candidates]
    return scores.index(max(scores))


def _section(text: str, start: str, end: str | None = None) -> str:
    i = text.find(start)
    if i < 0:
        return ""
    rest = text[i + len(start):]
    j = rest.find(end) if end else -1
    return rest[:j] if j >= 0 else rest


def _answers(user: str) -> list[str]:
    return [_section(user, f"Answer {i}: ", "\n").strip() for i in (0, 1)]


def _options(text: str) -> list[str]:
    return re.findall(r"^[A-F]\. (.*)$", text, re.M)


def _debater(messages) -> str:
    system = messages[0]["content"]
    m = re.search(r'answer (\d)[^"\n]*"(.*?)"', system)
    position, answer = int(m.group(1)), m.group(2)
    story = _section(system, "Story:\n")
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", story) if s.strip()]
    quote = sentences[best_by_overlap(sentences, answer)] if sentences else ""
    return f"Answer {position} is correct. <quote>{quote}</quote>"


def _judge(messages) -> str:
    system, user = messages[0]["content"], messages[-1]["content"]
    answers = _answers(user)
    if "Story:" in system:
        evidence = _section(system, "Story:\n")
    else:
        evidence = " ".join(re.findall(r"<v_quote>(.*?)</v_quote>", user, re.S)) or user.split("Answer 0:")[0]
    pick = best_by_overlap(answers, evidence)
    return json.dumps({"answer": pick, "p_correct_0": 0.7 if pick == 0 else 0.3})


def _choose(messages) -> str:
    text = messages[-1]["content"]
    said = re.findall(r"Assistant: .*?\b([A-F])\b", text)
    opts = _options(text)
    if said:
        return json.dumps({"answer": said[-1], "confidence": 80})
    visible = _section(text, "Situation (beginning only): ", "\n\nOptions:") or _section(text, "Situation: ", "\n\n")
    return json.dumps({"answer": "ABCDEF"[best_by_overlap(opts, visible)], "confidence": 50})


def _assistant(messages) -> str:
    system = messages[0]["content"]
    pick = best_by_overlap(_options(system), _section(system, "Situation:\n", "\n\nOptions:"))
    return f"I think the answer is {'ABCDEF'[pick]}."


def _ask(messages) -> str:
    return "DONE" if "You asked:" in messages[-1]["content"] else "Which option fits the whole situation best?"


def lexical_backend() -> ScriptedBackend:
    """Scripted agents for every role (module doc), keyed by the protocols' tags."""
    return ScriptedBackend([
        (r"(debate\.debater\d|consultancy\.consultant)", None, _debater),
        (r".*\.judge", None, _judge),
        (r"sandwich\.(alone|final|assistant_alone)", None, _choose),
        (r"sandwich\.assistant", None, _assistant),
        (r"sandwich\.ask", None, _ask),
    ])


def _scripted(block, seed: int) -> ScriptedBackend:
    script = option(block, "script", "lexical")
    if script not in ("lexical", ""):
        raise ValueError(f"backend.script must be 'lexical', got {script!r}")
    return lexical_backend()


def build_backend(block):
    """A ChatBackend from a config block: `scripted` (the lexical agents) or any kind of the core factory.
    The OpenAI client's request seed is the block's `seed`."""
    return build_core_backend(block, seed=int(option(block, "seed", 0)), custom={"scripted": _scripted})
