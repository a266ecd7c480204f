"""LfI, Learning from Instructor, on math problems (reference `learning_from_instructor_experiment.py`)
plus our tutoring protocol (docs/learnarena.md §5, ours, not the reference).

Data: JSONL with `question` (or `input`, as the README shows) and `answer`; errors name file and line.
Modes:
  no_hint      the reference: the student ("you are a mathematician") answers the question alone.
  passive      (ours) the instructor writes one worked hint without the final answer; the student answers.
  interactive  (ours) up to `max_questions` rounds: the student may ask ("QUESTION: ...") and the
               instructor answers; "READY" (or anything else) ends the dialogue; then the student answers.
The checker (reference prompt) compares the reply with the ground truth; correct when its reply contains
"the answer is correct" or "the answer is approximated but should be correct" (case-insensitive).
Decoding (reference): student temperature 0.7, 512 tokens; checker temperature 0.7, 256 tokens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from humanai_jax.agents import BackendError, GenConfig
from humanai_jax.data.jsonl import JsonlReader
from humanai_jax.eval import stats
from humanai_jax.methods.learnarena.prompting import PROMPTS

__all__ = ["load_math", "checker_correct", "solve", "evaluate_math", "MODES", "STUDENT_CFG", "CHECKER_CFG"]

MODES = ("no_hint", "passive", "interactive")
STUDENT_CFG = GenConfig(temperature=0.7, max_tokens=512)
CHECKER_CFG = GenConfig(temperature=0.7, max_tokens=256)
_QUESTION = re.compile(r"QUESTION:\s*(.+)", re.S | re.I)


def load_math(path: str) -> list[dict]:
    """`[{id, question, answer}]` from a JSONL file; `question` falls back to `input`."""
    reader = JsonlReader(path)
    out = []
    for line, rec in reader:
        q = rec.get("question", rec.get("input"))
        if not isinstance(q, str) or not q.strip():
            raise reader.error(line, "needs a non-empty 'question' (or 'input') string")
        if "answer" not in rec:
            raise reader.error(line, "missing field 'answer'")
        out.append({"id": f"{os.path.basename(path)}:{line}", "question": q, "answer": str(rec["answer"])})
    return out


def checker_correct(reply: str) -> bool:
    r = reply.lower()
    return "the answer is correct" in r or "the answer is approximated but should be correct" in r


def _chat(backend, system: str, user: str, cfg: GenConfig, tag: str) -> str:
    return backend.chat([{"role": "system", "content": system}, {"role": "user", "content": user}], cfg, tag=tag).text


def solve(problem: Mapping, mode: str, student, instructor, *, max_questions: int = 3,
          student_cfg: GenConfig = STUDENT_CFG, instructor_cfg: GenConfig = STUDENT_CFG) -> tuple[str, int]:
    """`(student's final reply, instructor turns used)` for one problem."""
    q = problem["question"]
    sys_student = PROMPTS.text("math_student_system")
    if mode == "no_hint":
        return _chat(student, sys_student, q, student_cfg, "learnarena.math.student"), 0
    sys_instr = PROMPTS.text("math_instructor_system")
    if mode == "passive":
        hint = _chat(instructor, sys_instr, PROMPTS.render("math_hint_user", question=q), instructor_cfg,
                     "learnarena.math.instructor")
        return _chat(student, sys_student, PROMPTS.render("math_student_with_hint", question=q, hint=hint), student_cfg,
                     "learnarena.math.student"), 1
    if mode != "interactive":
        raise ValueError(f"unknown LfI mode {mode!r}; valid: {MODES}")
    dialogue, turns = "", 0
    for _ in range(max_questions):
        ask = _chat(student, sys_student, PROMPTS.render("math_student_ask", question=q, dialogue=dialogue or "(none)\n"),
                    student_cfg, "learnarena.math.ask")
        m = _QUESTION.search(ask)
        if m is None:
            break
        question = m.group(1).strip()
        answer = _chat(instructor, sys_instr, PROMPTS.render("math_instructor_answer", question=q,
                                                             student_question=question),
                       instructor_cfg, "learnarena.math.instructor")
        dialogue += f"Student: {question}\nInstructor: {answer}\n"
        turns += 1
    return _chat(student, sys_student, PROMPTS.render("math_student_final", question=q, dialogue=dialogue or "(none)\n"),
                 student_cfg, "learnarena.math.student"), turns


def evaluate_math(problems_by_file: Mapping[str, Sequence[Mapping]], student, instructor, checker, *,
                  modes: Sequence[str] = MODES, max_questions: int = 3, checker_cfg: GenConfig = CHECKER_CFG,
                  student_cfg: GenConfig = STUDENT_CFG, log=print) -> dict:
    """`{mode: {per_file: {file: acc}, pooled: acc, mean_turns}}`, accuracies with exact 95% CIs.
    A failed call makes that item wrong and is counted under `errors`."""
    out = {}
    for mode in modes:
        per_file, hits_all, turns_all, errors = {}, [], [], 0
        for name, problems in problems_by_file.items():
            hits = []
            for p in problems:
                try:
                    reply, turns = solve(p, mode, student, instructor, max_questions=max_questions,
                                         student_cfg=student_cfg)
                    verdict = _chat(checker, PROMPTS.text("math_checker_system"),
                                    PROMPTS.render("math_checker_user", question=p["question"], reply=reply,
                                                   answer=p["answer"]), checker_cfg, "learnarena.math.checker")
                    hits.append(checker_correct(verdict))
                    turns_all.append(turns)
                except BackendError:
                    hits.append(False)
                    errors += 1
            per_file[name] = stats.accuracy_with_ci(hits)
            hits_all += hits
        out[mode] = {"per_file": per_file, "pooled": stats.accuracy_with_ci(hits_all), "errors": errors,
                     "mean_turns": sum(turns_all) / len(turns_all) if turns_all else 0.0}
        log(f"  LfI {mode}: {out[mode]['pooled']['accuracy']:.3f} (n={len(hits_all)})")
    return out
