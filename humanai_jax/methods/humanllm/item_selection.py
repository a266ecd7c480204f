"""HumanLLM item selection on MovieLens-100K: the user split, both model protocols (generation and likelihood
ranking) next to the baselines on the same candidates, and the aggregate over seeds (docs/humanllm.md)."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from humanai_jax import experiment
from humanai_jax.agents import GenConfig
from humanai_jax.agents.jax_backend import JaxChatBackend
from humanai_jax.eval import stats
from humanai_jax.methods.humanllm import baselines, evaluation, movielens, tasks

REPO = str(pathlib.Path(__file__).resolve().parents[3])


def movielens_samples(config, workdir: str):
    """MovieLens-100K item selection split by user: ({"train", "val", "test"}, report, data)."""
    d = config.data
    path = d.path if os.path.isabs(d.path) else os.path.join(REPO, d.path)  # relative: the repository root
    data = movielens.load_movielens(path)
    parts, report = movielens.build_samples(data, seed=d.seed, fractions=tuple(d.user_fractions),
                                            history_len=d.history_len, positions_per_user=d.positions_per_user,
                                            min_history=d.min_history)
    if config.eval.max_users:  # a quick look (tests): only the first held-out users of each split
        parts = dict(parts, val=parts["val"][:config.eval.max_users], test=parts["test"][:config.eval.max_users])
    for name, rows in parts.items():
        tasks.write_samples(os.path.join(workdir, "data", f"{name}.jsonl"), rows)
    return parts, report, data


def model_item_selection(params, model_cfg, tokenizer, config, samples, nll_fn) -> dict[str, list[bool]]:
    """Hits of both model protocols on `samples`: `model_generate` (the paper's: greedy reply, hit iff the
    target title is a substring of it) and `model_rank` (the candidate with the highest sum log-prob)."""
    backend = JaxChatBackend(params, model_cfg, tokenizer, max_batch=config.eval.batch)
    gens = evaluation.generate_answers(backend, samples, GenConfig(temperature=config.eval.temperature,
                                                                   max_tokens=config.eval.max_new_tokens,
                                                                   seed=config.seed))
    scores = evaluation.candidate_logprobs(params, model_cfg, tokenizer, samples, config.data.seq_len + 1,
                                           nll_fn=nll_fn, rows_per_batch=config.eval.rank_batch)
    ranked = baselines.choose(scores, config.seed)
    named = [any(evaluation.item_hit(c, g) for c in evaluation.candidate_titles(s)) for s, g in zip(samples, gens)]
    return {"model_generate": evaluation.generation_hits(samples, gens), "model_rank": baselines.hits(samples, ranked),
            "_generations": gens, "_names_a_candidate": named}


def evaluate_movielens(params, model_cfg, tokenizer, config, parts, data, nll_fn, workdir) -> dict:
    """Model (both protocols) and baselines on the val users, then the test users (read once)."""
    train_seqs = {s["meta"]["uid"]: data.sequences[s["meta"]["uid"]] for s in parts["train"]}
    fit_seqs = movielens.fit_sequences(parts, data)
    base = baselines.all_baselines(parts["val"], parts["test"], data, fit_seqs, train_seqs, config.seed)
    if config.eval.sasrec_steps:
        base["sasrec"] = baselines.sasrec_baseline(parts["val"], parts["test"], data.items, fit_seqs, workdir,
                                                   steps=config.eval.sasrec_steps, seed=config.seed,
                                                   max_len=config.data.history_len)
    out = {"item_selection": {}, "validation": {}, "baseline_selected": {}}
    for split, key in (("val", "validation"), ("test", "item_selection")):
        model = model_item_selection(params, model_cfg, tokenizer, config, parts[split], nll_fn)
        for name in ("model_generate", "model_rank"):
            out[key][name] = evaluation.accuracy_entry(model[name])
        out[key]["model_generate"]["names_a_candidate"] = float(np.mean(model["_names_a_candidate"]))
        for name, b in base.items():
            out[key][name] = evaluation.accuracy_entry(b["val_hits" if split == "val" else "test_hits"])
        if split == "test":
            experiment.write_json(os.path.join(workdir, "generations.json"), {"samples": [
                {"uid": s["uid"], "target": s["messages"][-1]["content"], "generation": g}
                for s, g in zip(parts["test"], model["_generations"])]})
    out["baseline_selected"] = {k: v["selected"] for k, v in base.items() if "selected" in v}
    out["chance"] = 1 / len(parts["test"][0]["meta"]["candidates"])
    return out


def aggregate_seeds(per_seed: dict[int, dict]) -> dict:
    """item_selection.<method>: mean accuracy, std (sample, over seeds), per_seed, and the exact 95% CI of the
    pooled hits/n; the same for `validation`."""
    first = next(iter(per_seed.values()))
    out = {"seeds": list(per_seed), "per_seed_wall_time_s": {s: r.get("wall_time_s") for s, r in per_seed.items()}}
    for key in ("item_selection", "validation"):
        out[key] = {}
        for method in first[key]:
            accs = [r[key][method]["accuracy"] for r in per_seed.values()]
            k = sum(r[key][method]["hits"] for r in per_seed.values())
            n = sum(r[key][method]["n"] for r in per_seed.values())
            ms = stats.mean_std(accs)
            lo, hi = stats.binomial_ci(k, n)
            out[key][method] = {"accuracy": ms.mean, "mean": ms.mean, "std": ms.std, "per_seed": accs,
                                "ci_low": lo, "ci_high": hi, "n": n, "hits": k}
    return out
