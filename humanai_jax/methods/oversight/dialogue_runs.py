"""Runners for the debate and sandwich variants: MotiveBench items -> protocol -> traces.jsonl + results.

Debate items (docs/oversight.md §2): context = the full stem; question = the fixed type question of the task
(prompts/questions.json); answers = gold + one wrong option (wrong_option "random" with the data seed, or
"hardest" = the wrong option most chosen in a MotiveBench predictions.jsonl), the gold's position drawn with
the seed. Sandwich items: the 6-option items as they are.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable

import numpy as np

from humanai_jax.agents.backend import GenConfig
from humanai_jax.methods.oversight import backends, data as data_lib, debate, sandwich
from humanai_jax.methods.oversight.traces import TraceLog, read_events


def hardest_wrong(predictions_path: str) -> dict[str, int]:
    """{item id: most-chosen wrong option index} from JSONL records {id, pred (index), gold (index)}."""
    counts: dict[str, Counter] = {}
    with open(predictions_path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            try:
                r = json.loads(line)
                if r["pred"] is not None and r["pred"] != r["gold"]:
                    counts.setdefault(r["id"], Counter())[int(r["pred"])] += 1
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{predictions_path}:{line_no}: expected {{id, pred, gold}}: {e}") from None
    return {k: c.most_common(1)[0][0] for k, c in counts.items()}


def debate_items(items: list[dict], *, seed: int, wrong_option: str = "random", hardest_from: str = "") -> list[dict]:
    questions = debate.PROMPTS.json("questions")
    hardest = hardest_wrong(hardest_from) if wrong_option == "hardest" else {}
    if wrong_option not in ("random", "hardest"):
        raise ValueError(f"dialogue.wrong_option must be random or hardest, got {wrong_option!r}")
    rng = np.random.default_rng(seed)
    out = []
    for it in items:
        wrong_choices = [i for i in range(len(it["options"])) if i != it["gold"]]
        wrong = hardest.get(it["id"], wrong_choices[int(rng.integers(len(wrong_choices)))])
        correct = int(rng.integers(2))
        pair = [it["options"][wrong], it["options"][wrong]]
        pair[correct] = it["options"][it["gold"]]
        out.append({"id": it["id"], "question": questions[str(it["task"])], "answers": pair, "correct": correct,
                    "context": it["stem"]})
    return out


def select_items(config, shared_dir: str) -> list[dict]:
    d = config.dialogue
    items = [it for it in data_lib.motivebench_items(config.data.dir or os.path.join(shared_dir, "motivebench"))
             if it["task"] in tuple(d.tasks)]
    if d.limit:
        idx = np.random.default_rng(config.data.seed).permutation(len(items))[: d.limit]
        items = [items[i] for i in sorted(idx)]
    return items


def run(config, workdir: str, shared_dir: str, log: Callable[[str], None] = print) -> dict:
    d = config.dialogue
    strong, weak = backends.build_backend(config.backend_strong), backends.build_backend(config.backend_weak)
    items = select_items(config, shared_dir)
    gen = GenConfig(temperature=d.temperature, max_tokens=d.max_tokens, seed=config.seed)
    path = os.path.join(workdir, "traces.jsonl")
    trace = TraceLog(path, config.protocol, run_id=os.path.basename(os.path.normpath(workdir)))
    if config.protocol == "debate":
        ditems = debate_items(items, seed=config.data.seed, wrong_option=d.wrong_option, hardest_from=d.hardest_from)
        debate.run_all(strong, weak, ditems, debate.DebateConfig(rounds=d.rounds, words=d.words, gen=gen), trace)
        result = debate.metrics_from_events(read_events(path, "judgment"), n_resamples=d.n_resamples,
                                            seed=config.seed)
    else:
        sandwich.run_all(strong, weak, items, sandwich.SandwichConfig(turns=d.turns, nonexpert_chars=d.nonexpert_chars,
                                                                      gen=gen), trace)
        result = sandwich.metrics_from_events(read_events(path, "answer"), n_resamples=d.n_resamples,
                                              seed=config.seed)
    calls = sum(r["type"] == "llm_call" for r in trace.records)
    log(f"{config.protocol}: {len(items)} items, {calls} model calls; {json.dumps(result, indent=1)[:1500]}")
    return {"protocol": config.protocol, "n_items": len(items), "n_calls": calls,
            "backend_strong": getattr(strong, "name", ""), "backend_weak": getattr(weak, "name", ""),
            "traces": path, **result}
