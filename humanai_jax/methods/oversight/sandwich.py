"""Sandwiching (docs/oversight.md §3; Bowman et al. 2022) over ChatBackends, on 6-option MotiveBench items.

Expert = the gold labels. Assistant = the strong model with the full stem (may be wrong). Non-expert = the
weak model, or any model restricted to the first `nonexpert_chars` characters of the stem.
Conditions: (a) non-expert alone; (b) assistant alone; (c) assisted: up to `turns` turns in which the
non-expert asks one question (or says DONE) and the assistant answers, then the non-expert answers
{"answer": letter, "confidence": 0-100}. Unparseable answers count as wrong (answer None, confidence 0).
Metrics: accuracy per condition (bootstrap 95% CI), success = acc_c > max(acc_a, acc_b), gap closed =
(acc_c - acc_a) / (1 - acc_a), ECE of the stated confidence (10 bins), turns used. `metrics_from_events`
recomputes all of it from the "answer" events of traces.jsonl.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np
import pydantic

from humanai_jax.agents.backend import ChatBackend, GenConfig
from humanai_jax.agents.prompts import PromptLibrary
from humanai_jax.agents.structured import StructuredOutputError, chat_json
from humanai_jax.eval.stats import bootstrap_ci
from humanai_jax.methods.oversight import metrics
from humanai_jax.methods.oversight.traces import TraceLog

PROMPTS = PromptLibrary("humanai_jax.methods.oversight")
CONDITIONS = ("alone", "assistant", "assisted")
LETTERS = "ABCDEF"


@dataclasses.dataclass(frozen=True)
class SandwichConfig:
    turns: int = 3
    nonexpert_chars: int = 200  # 0 = the whole stem (then the non-expert differs only by model)
    gen: GenConfig = GenConfig(temperature=0.0, max_tokens=200)


def options_block(options: Sequence[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


def truncate(stem: str, chars: int) -> str:
    return stem if not chars or len(stem) <= chars else stem[:chars].rstrip() + " …"


class StatedAnswer(pydantic.BaseModel):
    """{"answer": letter A-F (case and a trailing '.' tolerated), "confidence": 0-100}."""

    answer: str
    confidence: float

    @pydantic.field_validator("answer")
    @classmethod
    def _letter(cls, v: str) -> str:
        letter = v.strip().upper()[:1]
        if not letter or letter not in LETTERS:
            raise ValueError(f"'answer' must be one letter of {list(LETTERS)}, got {v!r}")
        return letter

    @pydantic.field_validator("confidence")
    @classmethod
    def _range(cls, v: float) -> float:
        if not 0 <= v <= 100:
            raise ValueError(f"'confidence' must be in 0-100, got {v}")
        return v


def parse_answer(obj, n_options: int) -> tuple[int, float]:
    """(option index, confidence in [0, 1]) from a StatedAnswer or its dict; a letter beyond the item's
    options or a bad field raises ValueError."""
    if not isinstance(obj, StatedAnswer):
        try:
            obj = StatedAnswer.model_validate(obj)
        except pydantic.ValidationError as e:
            raise ValueError(str(e)) from None
    index = LETTERS.index(obj.answer)
    if index >= n_options:
        raise ValueError(f"'answer' {obj.answer!r} is beyond the {n_options} options")
    return index, obj.confidence / 100.0


def _answer(backend, messages, cfg: SandwichConfig, trace: TraceLog, n_options: int, *, agent: str, **meta):
    """chat_json with the StatedAnswer schema (capped repair turns); failure -> (None, 0.0), traced."""
    try:
        obj, raw = chat_json(backend, messages, StatedAnswer, cfg.gen, tag=agent)
        answer, conf = parse_answer(obj, n_options)
        trace.parsed(agent, raw, {"answer": answer, "confidence": conf}, None, messages=messages, **meta)
        return answer, conf
    except (StructuredOutputError, ValueError) as err:
        raw = [a["text"] for a in getattr(err, "attempts", [])]
        trace.parsed(agent, raw, None, str(err), messages=messages, **meta)
        return None, 0.0


def _record(trace, condition, item, answer, conf, turns) -> dict:
    rec = {"condition": condition, "item_id": item["id"], "gold": item["gold"], "answer": answer,
           "confidence": conf, "turns": turns}
    trace.event("answer", **rec)
    return rec


def run_item(assistant: ChatBackend, nonexpert: ChatBackend, item: dict, cfg: SandwichConfig,
             trace: TraceLog) -> list[dict]:
    """The three conditions on one item {id, stem, options, gold}."""
    n, opts, letters = len(item["options"]), options_block(item["options"]), "/".join(LETTERS[:len(item["options"])])
    qblock = PROMPTS.render("sandwich_question", stem=truncate(item["stem"], cfg.nonexpert_chars), options=opts)
    sys_ne = {"role": "system", "content": PROMPTS.text("sandwich_nonexpert_system")}
    final = lambda dialogue: [sys_ne, {"role": "user", "content": PROMPTS.render(  # noqa: E731
        "sandwich_final", question_block=qblock, dialogue=dialogue, letters=letters)}]
    out = [_record(trace, "alone", item, *_answer(nonexpert, final(""), cfg, trace, n, agent="sandwich.alone",
                                                   item_id=item["id"]), 0)]
    alone_msgs = [{"role": "user", "content": PROMPTS.render("sandwich_assistant_alone", stem=item["stem"],
                                                             options=opts, letters=letters)}]
    out.append(_record(trace, "assistant", item, *_answer(assistant, alone_msgs, cfg, trace, n,
                                                           agent="sandwich.assistant_alone", item_id=item["id"]), 0))
    sys_as = {"role": "system", "content": PROMPTS.render("sandwich_assistant_system", stem=item["stem"], options=opts)}
    dialogue, asked, chat = "", 0, []
    for turn in range(1, cfg.turns + 1):
        ask = [sys_ne, {"role": "user", "content": PROMPTS.render("sandwich_ask", question_block=qblock,
                                                                  dialogue=dialogue, turn=turn, turns=cfg.turns)}]
        question = trace.call(nonexpert, ask, cfg.gen, agent="sandwich.ask", item_id=item["id"], round=turn).strip()
        if not question or re.fullmatch(r"\W*DONE\W*", question, re.I):
            break
        asked += 1
        chat += [{"role": "user", "content": question}]
        reply = trace.call(assistant, [sys_as, *chat], cfg.gen, agent="sandwich.assistant", item_id=item["id"],
                           round=turn).strip()
        chat += [{"role": "assistant", "content": reply}]
        dialogue += f"\nYou asked: {question}\nAssistant: {reply}\n"
    out.append(_record(trace, "assisted", item, *_answer(nonexpert, final(dialogue), cfg, trace, n,
                                                          agent="sandwich.final", item_id=item["id"]), asked))
    return out


def run_all(assistant: ChatBackend, nonexpert: ChatBackend, items: Sequence[dict], cfg: SandwichConfig,
            trace: TraceLog) -> list[dict]:
    return [r for item in items for r in run_item(assistant, nonexpert, item, cfg, trace)]


def metrics_from_events(records: Sequence[dict], *, n_resamples: int = 2000, seed: int = 0) -> dict:
    """{condition: {accuracy, accuracy_ci95, ece, mean_confidence, n}, assisted.turns_used, success, gap_closed}."""
    out: dict = {}
    for cond in CONDITIONS:
        recs = [r for r in records if r["condition"] == cond]
        if not recs:
            continue
        hit = np.array([r["answer"] == r["gold"] for r in recs], float)
        conf = [r["confidence"] for r in recs]
        ci = (list(bootstrap_ci(hit, n_resamples=n_resamples, seed=seed)) if len(hit) > 1 and np.ptp(hit) > 0
              else [float(hit.mean())] * 2)
        out[cond] = {"accuracy": float(hit.mean()), "accuracy_ci95": ci, "n": len(recs),
                     "ece": metrics.expected_calibration_error(conf, hit), "mean_confidence": float(np.mean(conf)),
                     "unparsed": int(sum(r["answer"] is None for r in recs))}
        if cond == "assisted":
            out[cond]["turns_used"] = float(np.mean([r["turns"] for r in recs]))
    if all(c in out for c in CONDITIONS):
        a, b, c = (out[k]["accuracy"] for k in CONDITIONS)
        out["success"] = bool(c > max(a, b))
        out["gap_closed"] = metrics.gap_closed(c, a)
    return out
