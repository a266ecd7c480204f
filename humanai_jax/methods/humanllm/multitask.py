"""The real-data tasks trained beside item selection in one multi-task SFT run (as the reference mixes all its
task sources, docs/humanllm.md §7.1): MovieLens rating prediction (`rating.py`) and Blogger post continuation
(`writing.py`): their samples, their evaluation next to their baselines, and their 3-seed aggregate."""

from __future__ import annotations

import os

import numpy as np

from humanai_jax import experiment
from humanai_jax.agents import GenConfig
from humanai_jax.agents.jax_backend import JaxChatBackend
from humanai_jax.eval import stats
from humanai_jax.methods.humanllm import evaluation, rating, tasks, tokenize, writing
from humanai_jax.methods.humanllm.item_selection import REPO


def _abs(path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(REPO, path)


def rating_samples(config, data, workdir: str) -> dict[str, list[dict]]:
    d = config.data
    parts = rating.build_rating_samples(data, seed=d.seed, fractions=tuple(d.user_fractions), history_len=d.history_len,
                                        positions_per_user=d.rating_positions_per_user, min_history=d.min_history,
                                        max_users=config.eval.max_users)
    for name, rows in parts.items():
        tasks.write_samples(os.path.join(workdir, "data", f"rating_{name}.jsonl"), rows)
    return parts


def writing_samples(config, workdir: str) -> tuple[dict[str, list[dict]], dict]:
    d = config.data
    posts = writing.load_posts(_abs(d.blog_path))
    parts, report = writing.build_writing_samples(posts, seed=d.seed, fractions=tuple(d.user_fractions),
                                                  max_words=d.blog_max_words, max_posts=config.eval.max_users)
    for name, rows in parts.items():
        tasks.write_samples(os.path.join(workdir, "data", f"writing_{name}.jsonl"), rows)
    return parts, report


# ------------------------------------------------------------------------------------------------ rating
def model_ratings(params, model_cfg, tokenizer, config, samples, nll_fn) -> dict:
    """Predictions of the model's three protocols: `model_expected` (sum_k k p(k), p renormalised over the
    five rating replies), `model_argmax`, `model_generate` (greedy reply, first digit 1-5; a reply without
    one is counted in `parse_failures` and predicted as `fallback`, the train users' mean, set by the caller)."""
    lp = evaluation.reply_logprobs(params, model_cfg, tokenizer, samples, [rating.RATINGS] * len(samples),
                                   config.data.seq_len + 1, nll_fn=nll_fn, rows_per_batch=config.eval.rank_batch)
    expected, argmax = rating.expected_and_argmax(lp)
    backend = JaxChatBackend(params, model_cfg, tokenizer, max_batch=config.eval.batch)
    gens = evaluation.generate_answers(backend, samples, GenConfig(temperature=0.0, max_tokens=config.eval.rating_max_tokens,
                                                                   seed=config.seed), tag="humanllm.eval.rating")
    return {"model_expected": expected, "model_argmax": argmax, "_generations": gens,
            "_parsed": [rating.parse_rating(g) for g in gens]}


def evaluate_rating(params, model_cfg, tokenizer, config, parts, data, nll_fn, workdir) -> dict:
    """{"rating": {method: rating_entry}, "rating_validation": ..., "rating_selected": {"bias": {"l2"}}}."""
    base = rating.all_baselines(parts, data)
    fallback = float(base["global_mean"]["test"][0]) if len(parts["test"]) else 3.0
    out = {"rating": {}, "rating_validation": {}}
    for split, key in (("val", "rating_validation"), ("test", "rating")):
        ss = parts[split]
        true = rating.targets(ss)
        model = model_ratings(params, model_cfg, tokenizer, config, ss, nll_fn)
        preds = {"model_expected": model["model_expected"], "model_argmax": model["model_argmax"],
                 "model_generate": np.asarray([fallback if p is None else p for p in model["_parsed"]])}
        preds.update({name: b[split] for name, b in base.items()})
        for name, pred in preds.items():
            out[key][name] = rating.rating_entry(pred, true, seed=config.seed)
        for name in ("model_expected", "model_argmax", "model_generate"):  # the model against the strongest baseline
            out[key][name]["sq_error_minus_bias"] = paired(preds[name], preds["bias"], true, config.seed)
        out[key]["model_generate"]["parse_failures"] = sum(p is None for p in model["_parsed"])
        if split == "test":
            experiment.write_json(os.path.join(workdir, "rating_generations.json"), {"samples": [
                {"uid": s["uid"], "rating": s["meta"]["rating"], "generation": g, "expected": float(e)}
                for s, g, e in zip(ss, model["_generations"], model["model_expected"])]})
    out["rating_selected"] = {"bias": base["bias"]["selected"]}
    return out


def paired(pred, base, true, seed: int) -> dict | None:
    """Paired bootstrap of the mean squared-error difference (model - baseline) over the same users:
    {diff, ci, p_value} (`stats.paired_bootstrap`); diff < 0 with ci below 0 = the model is better."""
    if len(true) < 2:
        return None
    sq = lambda p: (np.asarray(p, np.float64) - true) ** 2  # noqa: E731
    return stats.paired_bootstrap(sq(pred), sq(base), seed=seed, n_resamples=2000)


# ------------------------------------------------------------------------------------------------ writing
def evaluate_writing(params, model_cfg, tokenizer, config, parts, nll_fn) -> dict:
    """{"writing": {method: nll_entry}, "writing_validation": ..., "writing_selected"}: the model's per-token
    NLL of the held-out continuations, the same model with less context (`model_no_first_part`,
    `model_no_prompt`: does it use the post's beginning?), and unigram / bigram LMs on the same tokens."""
    row_len = config.data.seq_len + 1
    base = writing.ngram_baselines(tokenizer, parts)
    out = {"writing": {}, "writing_validation": {}}
    for split, key in (("val", "writing_validation"), ("test", "writing")):
        ss = parts[split]
        variants = {"model": ss, "model_no_first_part": [writing.ablated(s, "no_first_part") for s in ss],
                    "model_no_prompt": [writing.ablated(s, "no_prompt") for s in ss]}
        per_post = {}  # per-token NLL of each post, for the paired comparison with the bigram
        for name, samples in variants.items():
            enc = [tokenize.tokenize_chat(tokenizer, s["messages"]) for s in samples]
            sums, counts = evaluation.sequence_nll(params, model_cfg, enc, row_len, nll_fn=nll_fn,
                                                   rows_per_batch=config.eval.rank_batch)
            out[key][name] = writing.nll_entry(sums, counts, seed=config.seed)
            per_post[name] = sums / np.maximum(counts, 1)
        for name, b in base.items():
            out[key][name] = writing.nll_entry([float(x.sum()) for x in b[split]], [len(x) for x in b[split]],
                                               seed=config.seed)
        if len(ss) >= 2:
            bigram = np.asarray([x.mean() for x in base["bigram"][split]])
            for name in variants:
                out[key][name]["post_nll_minus_bigram"] = stats.paired_bootstrap(
                    per_post[name], bigram, seed=config.seed, n_resamples=2000)
    out["writing_selected"] = {k: v["selected"] for k, v in base.items()}
    return out


# ------------------------------------------------------------------------------------------------ seeds
def aggregate_metrics(per_seed: dict[int, dict], key: str, metrics: tuple[str, ...]) -> dict:
    """{method: {metric: mean, metric_std, metric_per_seed, n (summed)}} over the seeds' `key` block."""
    first = next(iter(per_seed.values()))
    out = {}
    for method in first[key]:
        entry = {"n": sum(r[key][method]["n"] for r in per_seed.values())}
        for m in metrics:
            vals = [r[key][method][m] for r in per_seed.values()]
            ms = stats.mean_std(vals)
            entry.update({m: ms.mean, f"{m}_std": ms.std, f"{m}_per_seed": vals})
        out[method] = entry
    return out


def aggregate_seeds(per_seed: dict[int, dict]) -> dict:
    """The rating and writing blocks of a multi-seed run (whichever the runs hold)."""
    first = next(iter(per_seed.values()))
    out = {}
    for key, metrics in (("rating", ("rmse", "mae", "accuracy")), ("rating_validation", ("rmse", "mae", "accuracy")),
                         ("writing", ("nll_per_token",)), ("writing_validation", ("nll_per_token",))):
        if key in first:
            out[key] = aggregate_metrics(per_seed, key, metrics)
    return out
