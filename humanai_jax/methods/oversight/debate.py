"""Debate (docs/oversight.md §2; Irving et al. 2018, Khan et al. 2024) over ChatBackends.

Item = {id, question, answers: [a0, a1], correct: 0|1, context}; the judge never sees `context`.
Protocols, each run with both answer orders (position bias cancels):
  debate       two debaters (full context) argue for answer 0 / 1 for `rounds` rounds of at most `words`
               words (round 1 simultaneous, later rounds see all earlier ones); quotes are re-tagged verified
               (<v_quote>) or unverified (<u_quote>) by exact substring match after whitespace normalisation;
               the judge returns {"answer", "p_correct_0"} via chat_json (fallback: first 0/1 or A/B in the reply)
  consultancy  one consultant argues for an assigned answer (correct in half of the runs), `rounds` turns
  naive        the judge alone, no transcript
  expert       the judge with the context
  strong_alone the debater model answers with the context
Every judgment is an `event` record ("judgment"), from which `metrics_from_events` recomputes the metrics.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from humanai_jax.agents.backend import ChatBackend, GenConfig
from humanai_jax.agents.prompts import PromptLibrary
from humanai_jax.agents.structured import StructuredOutputError, chat_json
from humanai_jax.eval.stats import bootstrap_ci
from humanai_jax.methods.oversight import metrics
from humanai_jax.methods.oversight.traces import TraceLog

PROMPTS = PromptLibrary("humanai_jax.methods.oversight")
PROTOCOLS = ("debate", "consultancy", "naive", "expert", "strong_alone")
_QUOTE = re.compile(r"<quote>(.*?)</quote>", re.S)


@dataclasses.dataclass(frozen=True)
class DebateConfig:
    rounds: int = 3
    words: int = 150
    gen: GenConfig = GenConfig(temperature=0.0, max_tokens=400)
    protocols: tuple[str, ...] = PROTOCOLS


def normalise_ws(text: str) -> str:
    return " ".join(text.split())


def tag_quotes(text: str, context: str) -> tuple[str, int, int]:
    """<quote>q</quote> -> <v_quote>q</v_quote> if normalise_ws(q) is a substring of normalise_ws(context),
    else <u_quote>q</u_quote>. Returns (text, n_verified, n_unverified)."""
    ctx = normalise_ws(context)
    counts = [0, 0]

    def retag(m: re.Match) -> str:
        q = normalise_ws(m.group(1))
        ok = bool(q) and q in ctx
        counts[0 if ok else 1] += 1
        return f"<v_quote>{m.group(1)}</v_quote>" if ok else f"<u_quote>{m.group(1)}</u_quote>"

    return _QUOTE.sub(retag, text), counts[0], counts[1]


def limit_words(text: str, words: int) -> tuple[str, bool]:
    """The first `words` whitespace-separated words (an open <quote> is closed); (text, was_cut)."""
    parts = text.split()
    if len(parts) <= words:
        return text.strip(), False
    cut = " ".join(parts[:words])
    if cut.count("<quote>") > cut.count("</quote>"):
        cut += "</quote>"
    return cut, True


def displayed(item: dict, order: int) -> tuple[list[str], int]:
    """(answers as shown, index of the correct one) for order 0 (as stored) or 1 (swapped)."""
    answers = list(item["answers"]) if order == 0 else list(item["answers"])[::-1]
    return answers, item["correct"] if order == 0 else 1 - item["correct"]


def _transcript(turns: Sequence[dict], context: str | None) -> str:
    """Turns as "Round r, Debater X: text"; with `context` the quotes are verification-tagged."""
    if not turns:
        return "(no arguments yet)"
    lines = []
    for t in turns:
        text = tag_quotes(t["text"], context)[0] if context is not None else t["text"]
        lines.append(f"Round {t['round']}, {t['speaker']}: {text}")
    return "\n\n".join(lines)


def parse_judgment(raw: str) -> tuple[int | None, float]:
    """Fallback when the judge's JSON fails: the first standalone 0/1 or A/B (answer 0/1); p = 0.5."""
    m = re.search(r"\b([01AB])\b", raw)
    if not m:
        return None, 0.5
    answer = {"0": 0, "1": 1, "A": 0, "B": 1}[m.group(1)]
    return answer, float(answer == 0)


def judge(backend: ChatBackend, system: str, user: str, gen: GenConfig, trace: TraceLog, *, agent: str,
          **meta) -> tuple[int | None, float, bool]:
    """(answer 0|1|None, p_correct_0, parsed_from_json). Invalid p is clipped to [0, 1]."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    try:
        obj, raw = chat_json(backend, messages, None, gen, tag=agent)
        answer = obj.get("answer") if isinstance(obj, dict) else None
        answer = int(answer) if answer in (0, 1, "0", "1") else None
        p0 = obj.get("p_correct_0") if isinstance(obj, dict) else None
        p0 = float(np.clip(float(p0), 0, 1)) if isinstance(p0, (int, float)) else (
            float(answer == 0) if answer is not None else 0.5)
        if answer is None:
            raise StructuredOutputError(agent, [{"attempt": len(raw), "text": raw[-1], "error": "no answer 0/1"}])
        trace.parsed(agent, raw, {"answer": answer, "p_correct_0": p0}, None, messages=messages, **meta)
        return answer, p0, True
    except StructuredOutputError as err:
        raw = [a["text"] for a in err.attempts]
        answer, p0 = parse_judgment(raw[-1] if raw else "")
        trace.parsed(agent, raw, {"answer": answer, "p_correct_0": p0}, str(err), messages=messages, **meta)
        return answer, p0, False


def _argue(backend, system: str, item: dict, answers: list[str], turns: list[dict], rnd: int, cfg: DebateConfig,
           trace: TraceLog, *, agent: str, **meta) -> str:
    user = PROMPTS.render("debater_turn", question=item["question"], answer0=answers[0], answer1=answers[1],
                          transcript=_transcript(turns, None), round=rnd)
    text = trace.call(backend, [{"role": "system", "content": system}, {"role": "user", "content": user}], cfg.gen,
                      agent=agent, item_id=item["id"], round=rnd, **meta)
    return limit_words(text, cfg.words)[0]


def run_debate(strong: ChatBackend, weak: ChatBackend, item: dict, order: int, cfg: DebateConfig,
               trace: TraceLog) -> dict:
    answers, correct = displayed(item, order)
    systems = [PROMPTS.render("debater_system", position=i, answer=answers[i], words=cfg.words,
                              context=item["context"]) for i in (0, 1)]
    turns: list[dict] = []
    for rnd in range(1, cfg.rounds + 1):
        seen = list(turns)  # simultaneous within a round: both see only earlier rounds
        for i, speaker in enumerate(("Debater A", "Debater B")):
            text = _argue(strong, systems[i], item, answers, seen, rnd, cfg, trace, agent=f"debate.debater{i}",
                          order=order)
            turns.append({"round": rnd, "speaker": f"{speaker} (answer {i})", "text": text})
    return _judge_transcript(weak, item, order, answers, correct, turns, cfg, trace, "debate")


def run_consultancy(strong: ChatBackend, weak: ChatBackend, item: dict, order: int, assigned: int,
                    cfg: DebateConfig, trace: TraceLog) -> dict:
    answers, correct = displayed(item, order)
    system = PROMPTS.render("consultant_system", position=assigned, answer=answers[assigned], words=cfg.words,
                            context=item["context"])
    turns: list[dict] = []
    for rnd in range(1, cfg.rounds + 1):
        text = _argue(strong, system, item, answers, list(turns), rnd, cfg, trace, agent="consultancy.consultant",
                      order=order, assigned=assigned)
        turns.append({"round": rnd, "speaker": f"Consultant (answer {assigned})", "text": text})
    return _judge_transcript(weak, item, order, answers, correct, turns, cfg, trace, "consultancy",
                             assigned=assigned)


def _judge_transcript(weak, item, order, answers, correct, turns, cfg, trace, protocol, **extra) -> dict:
    tagged = [tag_quotes(t["text"], item["context"]) for t in turns]
    user = PROMPTS.render("judge_user", question=item["question"], answer0=answers[0], answer1=answers[1],
                          transcript=_transcript(turns, item["context"]))
    answer, p0, ok = judge(weak, PROMPTS.text("judge_system"), user, cfg.gen, trace, agent=f"{protocol}.judge",
                           item_id=item["id"], order=order)
    return _record(trace, protocol, item, order, correct, answer, p0, ok, rounds=len({t["round"] for t in turns}),
                   verified=sum(v for _, v, _ in tagged), unverified=sum(u for _, _, u in tagged), **extra)


def run_single(backend: ChatBackend, item: dict, order: int, cfg: DebateConfig, trace: TraceLog, protocol: str) -> dict:
    """naive (judge, no context), expert (judge with context) or strong_alone (debater model with context)."""
    answers, correct = displayed(item, order)
    system = (PROMPTS.text("naive_judge_system") if protocol == "naive"
              else PROMPTS.render("expert_judge_system", context=item["context"]))
    user = PROMPTS.render("judge_user", question=item["question"], answer0=answers[0], answer1=answers[1],
                          transcript="(none)")
    answer, p0, ok = judge(backend, system, user, cfg.gen, trace, agent=f"{protocol}.judge", item_id=item["id"],
                           order=order)
    return _record(trace, protocol, item, order, correct, answer, p0, ok, rounds=0)


def _record(trace, protocol, item, order, correct, answer, p0, parsed, **extra) -> dict:
    rec = {"protocol": protocol, "item_id": item["id"], "order": order, "correct_index": correct,
           "answer": answer, "p_correct_0": p0, "parsed": parsed, **extra}
    trace.event("judgment", **rec)
    return rec


def run_all(strong: ChatBackend, weak: ChatBackend, items: Sequence[dict], cfg: DebateConfig,
            trace: TraceLog) -> list[dict]:
    """Every protocol in cfg.protocols × item × order (consultancy also × assigned answer)."""
    out = []
    for item in items:
        for order in (0, 1):
            for protocol in cfg.protocols:
                if protocol == "debate":
                    out.append(run_debate(strong, weak, item, order, cfg, trace))
                elif protocol == "consultancy":
                    out += [run_consultancy(strong, weak, item, order, a, cfg, trace) for a in (0, 1)]
                elif protocol in ("naive", "expert"):
                    out.append(run_single(weak, item, order, cfg, trace, protocol))
                elif protocol == "strong_alone":
                    out.append(run_single(strong, item, order, cfg, trace, protocol))
                else:
                    raise ValueError(f"unknown debate protocol {protocol!r}; valid: {PROTOCOLS}")
    return out


def metrics_from_events(records: Sequence[dict], *, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Per protocol: accuracy (mean over items of the per-item mean over runs) with a bootstrap 95% CI over
    items, mean confidence (probability of the chosen answer), Brier score of p(correct), share parsed from
    JSON; debate/consultancy: win rate of the side assigned the correct vs the wrong answer; verified and
    unverified quotes per transcript. A missing answer counts as wrong with p(correct) = 0.5."""
    by_protocol: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_protocol[r["protocol"]].append(r)
    out = {}
    for protocol, recs in by_protocol.items():
        per_item: dict[str, list[float]] = defaultdict(list)
        p_correct, conf = [], []
        for r in recs:
            per_item[r["item_id"]].append(float(r["answer"] == r["correct_index"]))
            p_correct.append(r["p_correct_0"] if r["correct_index"] == 0 else 1 - r["p_correct_0"])
            conf.append(max(r["p_correct_0"], 1 - r["p_correct_0"]))
        item_acc = np.array([np.mean(v) for v in per_item.values()])
        m = {"accuracy": float(item_acc.mean()), "n_items": len(item_acc), "n_runs": len(recs),
             "mean_confidence": float(np.mean(conf)), "brier": metrics.brier(p_correct),
             "parsed_share": float(np.mean([r["parsed"] for r in recs]))}
        if len(item_acc) > 1 and np.ptp(item_acc) > 0:
            m["accuracy_ci95"] = list(bootstrap_ci(item_acc, n_resamples=n_resamples, seed=seed))
        else:
            m["accuracy_ci95"] = [m["accuracy"], m["accuracy"]]
        if protocol == "debate":  # debater i argues displayed answer i: it wins when the judge picks i
            m["win_rate_assigned_correct"] = m["accuracy_runs"] = float(np.mean(
                [r["answer"] == r["correct_index"] for r in recs]))
            m["win_rate_assigned_wrong"] = float(np.mean([r["answer"] == 1 - r["correct_index"] for r in recs]))
        if protocol == "consultancy":
            right = [r for r in recs if r["assigned"] == r["correct_index"]]
            wrong = [r for r in recs if r["assigned"] != r["correct_index"]]
            m["win_rate_assigned_correct"] = float(np.mean([r["answer"] == r["assigned"] for r in right]))
            m["win_rate_assigned_wrong"] = float(np.mean([r["answer"] == r["assigned"] for r in wrong]))
        if protocol in ("debate", "consultancy"):
            m["verified_quotes_per_run"] = float(np.mean([r["verified"] for r in recs]))
            m["unverified_quotes_per_run"] = float(np.mean([r["unverified"] for r in recs]))
        out[protocol] = m
    return out
