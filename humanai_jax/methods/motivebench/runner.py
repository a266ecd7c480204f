"""The evaluation loop: sources x orders x scenarios x tasks -> one chat call each -> letters -> metrics.

    out = evaluate(backend, scenarios_by_source, mode="direct", order_set="base6", gen_cfg=DEFAULT_GEN)

Calls go through `backend.chat_batch` in chunks (order kept). Each call is written to `traces.jsonl`
(docs/agents.md §4: run_id, step, system, agent, item_id, messages, gen_config, backend, response, parsed,
...) when a trace writer is given, so every reported number can be recomputed from the trace. A failed
call is an invalid prediction carrying its error; more than `max_errors` failures raise after the trace
is written (a broken server must not look like a weak model).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from humanai_jax.agents import GenConfig
from humanai_jax.methods.motivebench.baselines import BASELINES, baseline_letter
from humanai_jax.methods.motivebench.data import TASKS, Scenario
from humanai_jax.methods.motivebench.extract import RULES, extract
from humanai_jax.methods.motivebench.metrics import score_predictions
from humanai_jax.methods.motivebench.orders import orders as order_set_of
from humanai_jax.methods.motivebench.prompting import PROMPTS, build_messages

__all__ = ["DEFAULT_GEN", "Request", "build_requests", "evaluate", "evaluate_baselines", "scores_from_traces"]

# The reference decoding (client_eval.py): greedy, top_p 1, repetition penalty 1.05, 4096 new tokens.
DEFAULT_GEN = GenConfig(temperature=0.0, top_p=1.0, max_tokens=4096, repetition_penalty=1.05)


class Request(dict):
    """`{source, idx, task, order, item_id, messages, gold}` for one call."""


def build_requests(scenarios_by_source: Mapping[str, Sequence[Scenario]], mode: str, order_set: str,
                   system: str | None = None) -> list[Request]:
    out = []
    for source, scenarios in scenarios_by_source.items():
        for k, order in enumerate(order_set_of(order_set)):
            for sc in scenarios:
                for task in TASKS:
                    item = sc.items[task]
                    messages, gold = build_messages(item, order, mode, system)
                    out.append(Request(source=source, idx=sc.idx, task=task, order=k, item_id=item.item_id,
                                       messages=messages, gold=gold))
    return out


def _parse_with_model(parse_backend, replies: Sequence[str | None], gen_cfg: GenConfig) -> list[str | None]:
    """The reference's parse mode: a second model returns one letter; its reply's first character."""
    system = PROMPTS.text("parse_system")
    todo = [i for i, r in enumerate(replies) if r]
    results = parse_backend.chat_batch([[{"role": "system", "content": system}, {"role": "user", "content": replies[i]}]
                                        for i in todo], gen_cfg, tags=["motivebench.parse"] * len(todo))
    out: list[str | None] = [None] * len(replies)
    for i, res in zip(todo, results):
        text = res.texts[0].strip() if res.ok and res.texts else ""
        out[i] = text[0].upper() if text else None
    return out


def evaluate(backend, scenarios_by_source: Mapping[str, Sequence[Scenario]], *, mode: str, order_set: str = "base6",
             gen_cfg: GenConfig = DEFAULT_GEN, system: str | None = None, chunk: int = 64, trace=None,
             run_id: str = "", parse_backend=None, parse_cfg: GenConfig | None = None, max_errors: int = 0,
             seed: int = 0, log=print) -> dict:
    """Runs the model; returns `{rules: {rule: scores}, predictions: [...], n_calls, n_errors, ...}`.

    `trace`: an object with `write(record)` (e.g. `humanai_jax.data.jsonl.JsonlWriter`) or None.
    """
    requests = build_requests(scenarios_by_source, mode, order_set, system)
    replies: list[str | None] = [None] * len(requests)
    errors: list[str | None] = [None] * len(requests)
    # Calls go out grouped by prompt length (in-process decoding pads a batch to its longest prompt and
    # compiles per length bucket); results are put back in request order, so nothing else sees the sort.
    by_length = sorted(range(len(requests)), key=lambda i: len(requests[i]["messages"][-1]["content"]))
    start = time.perf_counter()
    for lo in range(0, len(requests), chunk):
        part = by_length[lo:lo + chunk]
        results = backend.chat_batch([requests[i]["messages"] for i in part], gen_cfg,
                                     tags=[f"motivebench.{mode}"] * len(part))
        for i, res in zip(part, results):
            req = requests[i]
            text = res.texts[0] if res.ok and res.texts else None
            replies[i], errors[i] = text, res.error
            if trace is not None:
                trace.write({"type": "llm_call", "run_id": run_id, "step": i, "system": "motivebench",
                             "agent": f"motivebench.{mode}", "item_id": req["item_id"], "round": req["order"],
                             "messages": req["messages"], "gen_config": gen_cfg.to_dict(),
                             "backend": type(backend).__name__, "model": getattr(backend, "name", ""),
                             "response": list(res.texts or []), "gold": req["gold"], "mode": mode,
                             "parsed": {rule: extract(text, mode, rule) if text is not None else None
                                        for rule in RULES},
                             "parse_error": res.error, "attempt": 1, "latency_s": res.latency_s,
                             "usage": res.usage})
        done = lo + len(part)
        log(f"  motivebench {mode}: {done}/{len(requests)} calls, {time.perf_counter() - start:.0f}s")
    rules = {rule: [extract(t, mode, rule) if t is not None else None for t in replies] for rule in RULES}
    if parse_backend is not None:
        rules["parse"] = _parse_with_model(parse_backend, replies, parse_cfg or GenConfig(max_tokens=256))
    n_orders = len(order_set_of(order_set))
    scores = {}
    for rule, preds in rules.items():
        records = [dict(source=r["source"], idx=r["idx"], task=r["task"], order=r["order"], gold=r["gold"], pred=p)
                   for r, p in zip(requests, preds)]
        scores[rule] = score_predictions(records, n_orders, seed=seed)
    n_errors = sum(e is not None for e in errors)
    out = {"rules": scores, "n_calls": len(requests), "n_errors": n_errors,
           "errors_sample": [e for e in errors if e][:5], "wall_s": time.perf_counter() - start,
           "predictions": [{"item_id": r["item_id"], "order": r["order"], "gold": r["gold"],
                            **{rule: rules[rule][i] for rule in rules}} for i, r in enumerate(requests)]}
    if n_errors > max_errors:
        raise RuntimeError(f"motivebench: {n_errors}/{len(requests)} chat calls failed (max_errors={max_errors}); "
                           f"first errors: {out['errors_sample']}")
    return out


def evaluate_baselines(scenarios_by_source: Mapping[str, Sequence[Scenario]], *, order_set: str = "base6",
                       seed: int = 0, names: Sequence[str] = BASELINES) -> dict:
    """`{baseline: scores}` on the same items and orders (the random baseline draws from `seed`)."""
    requests = build_requests(scenarios_by_source, "direct", order_set)
    items = {sc.items[t].item_id: sc.items[t] for scs in scenarios_by_source.values() for sc in scs for t in TASKS}
    orders = order_set_of(order_set)
    out = {}
    for name in names:
        rng = np.random.default_rng(seed)
        records = [dict(source=r["source"], idx=r["idx"], task=r["task"], order=r["order"], gold=r["gold"],
                        pred=baseline_letter(name, items[r["item_id"]], orders[r["order"]], rng)) for r in requests]
        out[name] = score_predictions(records, len(orders), seed=seed)
    return out


def scores_from_traces(path: str, n_orders: int, *, seed: int = 0) -> dict:
    """Recomputes `{rule: scores}` from a run's `traces.jsonl` alone (re-extracting each reply with both
    rules), so every reported number can be checked without the model."""
    from humanai_jax.data.jsonl import iter_jsonl

    records: dict[str, list] = {rule: [] for rule in RULES}
    for _, t in iter_jsonl(path):
        if t.get("type") != "llm_call" or t.get("system") != "motivebench":
            continue
        source, idx, task = t["item_id"].split("/")
        text = t["response"][0] if t["response"] else None
        for rule in RULES:
            records[rule].append(dict(source=source, idx=int(idx), task=task, order=t["round"], gold=t["gold"],
                                      pred=extract(text, t["mode"], rule) if text is not None else None))
    return {rule: score_predictions(recs, n_orders, seed=seed) for rule, recs in records.items()}
