"""HumanLLM writing on real blog posts: continuation of a Blogger post, scored by held-out per-token NLL
(docs/humanllm.md, "Writing").

Data: `../shared/data/motivebench/blog_extracted.json`, 631 posts of the Blog Authorship Corpus extracted by
MotiveBench: `{post id: {blog_text, score, scenario, profile, behavior, motivation, ...}}`. Only `blog_text`
is the person's own writing; the other fields are MotiveBench's LLM annotations written from the whole
post (so they would leak the continuation and are not used). There are no author ids, dates or other
posts of the same author, so of the reference's writing tasks (§7.2) only the continuation without
history is supported: `writing_imitation_type2` needs 1-5 other posts of the same user, type 1/3 a topic
summary or style description built from the user's posts, type 4 a style description; no per-user
profile or persona can be built. The split is by post (seeded); whether two posts share an author is
unknown.

Sample: the post's first `max_words` words are cut at a random word in [0.3 W, 0.7 W] (the reference's
`split_continuation`, §7.1); the prompt holds the first part, the target is the rest.

Baselines, on the same tokens as the model's loss (the assistant tokens incl. end-of-turn, each with the
token before it in the chat sequence): a unigram and an interpolated bigram LM fit on the training
samples' target tokens (the tokens the model was trained to predict), smoothing chosen on val posts.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

import numpy as np

from humanai_jax.eval import stats
from humanai_jax.methods.humanllm import movielens, tasks, tokenize

SOURCE = "blogger.writing_imitation_type2"
UNIGRAM_ADD_GRID = (0.01, 0.1, 0.5, 1.0)
BIGRAM_LAMBDA_GRID = (0.1, 0.3, 0.5, 0.7, 0.9)


def load_posts(path: str) -> dict[str, str]:
    """{post id: text} of a MotiveBench `blog_extracted.json`; a missing or empty `blog_text` raises."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object {{post id: record}}, got {type(raw).__name__}")
    out = {}
    for pid, rec in raw.items():
        text = rec.get("blog_text") if isinstance(rec, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}: post {pid!r} has no non-empty 'blog_text'")
        out[str(pid)] = " ".join(text.split())  # newlines and runs of spaces -> one space (as §3.4's filter)
    return out


def continuation_sample(pid: str, text: str, rng: random.Random, max_words: int) -> dict | None:
    """The continuation sample of one post (None when `split_continuation` rejects it)."""
    words = text.split(" ")[:max_words]
    cut = tasks.split_continuation(" ".join(words), rng)
    if cut is None:
        return None
    first, second = cut
    sections = f"Here's the first part:\n------\n{first}\n------\n"
    prompt = movielens.PROMPTS.render("writing_continuation", sections=sections, num=tasks.word_hint(second))
    return {"uid": pid, "source": SOURCE,
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": second}],
            "meta": {"post": pid, "first": first, "num": tasks.word_hint(second)}}


def ablated(sample: dict, kind: str) -> dict:
    """The same target with less context: `no_first_part` (the prompt without the post's beginning) or
    `no_prompt` (an empty user turn)."""
    if kind == "no_first_part":
        prompt = movielens.PROMPTS.render("writing_continuation", sections="", num=sample["meta"]["num"])
    elif kind == "no_prompt":
        prompt = ""
    else:
        raise ValueError(f"unknown ablation {kind!r}")
    return dict(sample, messages=[{"role": "user", "content": prompt}, sample["messages"][-1]])


def build_writing_samples(posts: dict[str, str], *, seed: int, fractions=(0.6, 0.1, 0.3), max_words: int = 120,
                          max_posts: int = 0) -> tuple[dict[str, list[dict]], dict]:
    """{"train", "val", "test"} continuation samples split by post, and a report (posts per split, rejected)."""
    split = movielens.split_users(posts, fractions, seed)  # seeded split of the (integer) post ids
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    rejected = 0
    for part in ("train", "val", "test"):
        for pid in split[part]:
            s = continuation_sample(pid, posts[pid], rng, max_words)
            if s is None:
                rejected += 1
            else:
                out[part].append(s)
        if max_posts and part != "train":
            out[part] = out[part][:max_posts]
    return out, {"posts": {k: len(v) for k, v in split.items()}, "samples": {k: len(v) for k, v in out.items()},
                 "rejected_too_short": rejected, "max_words": max_words}


# ------------------------------------------------------------------------------------------------ n-gram LMs
def scored_pairs(tokenizer, samples: Sequence[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sample (previous token, target token) at the loss positions (assistant tokens incl. end-of-turn)."""
    out = []
    for s in samples:
        tok, mask = tokenize.tokenize_chat(tokenizer, s["messages"])
        t = np.nonzero(mask[1:])[0] + 1  # mask marks targets; the loss at t predicts tok[t] from tok[:t]
        out.append((tok[t - 1], tok[t]))
    return out


def fit_ngram(pairs: Sequence[tuple[np.ndarray, np.ndarray]], vocab: int) -> dict:
    """Unigram and bigram counts over the training pairs."""
    prev = np.concatenate([p for p, _ in pairs])
    nxt = np.concatenate([y for _, y in pairs])
    uni = np.bincount(nxt, minlength=vocab).astype(np.float64)
    big: dict[int, dict[int, int]] = {}
    for a, b in zip(prev.tolist(), nxt.tolist()):
        row = big.setdefault(a, {})
        row[b] = row.get(b, 0) + 1
    return {"uni": uni, "big": big, "vocab": vocab}


def unigram_nll(lm: dict, y: np.ndarray, add: float) -> np.ndarray:
    """-log p(y) with add-`add` smoothing over the vocabulary."""
    p = (lm["uni"][y] + add) / (lm["uni"].sum() + add * lm["vocab"])
    return -np.log(p)


def bigram_nll(lm: dict, prev: np.ndarray, y: np.ndarray, lam: float, add: float) -> np.ndarray:
    """-log(lam c(prev, y) / c(prev) + (1 - lam) p_uni(y)); an unseen `prev` uses p_uni alone."""
    p_uni = np.exp(-unigram_nll(lm, y, add))
    out = np.empty(len(y))
    for k, (a, b) in enumerate(zip(prev.tolist(), y.tolist())):
        row = lm["big"].get(a)
        if row:
            out[k] = lam * row.get(b, 0) / sum(row.values()) + (1 - lam) * p_uni[k]
        else:
            out[k] = p_uni[k]
    return -np.log(out)


def ngram_baselines(tokenizer, samples: dict[str, list[dict]]) -> dict[str, dict]:
    """{"unigram"|"bigram": {"val": [per-sample nll arrays], "test": [...], "selected": {...}}}; the
    smoothing (unigram add-k, then the bigram's interpolation weight) is chosen on the val posts."""
    pairs = {k: scored_pairs(tokenizer, v) for k, v in samples.items()}
    lm = fit_ngram(pairs["train"], len(tokenizer))

    def total(nlls):
        return float(np.sum(np.concatenate(nlls)))

    add = min(UNIGRAM_ADD_GRID, key=lambda a: total([unigram_nll(lm, y, a) for _, y in pairs["val"]]))
    lam = min(BIGRAM_LAMBDA_GRID, key=lambda w: total([bigram_nll(lm, p, y, w, add) for p, y in pairs["val"]]))
    out = {"unigram": {"selected": {"add": add}}, "bigram": {"selected": {"add": add, "lambda": lam}}}
    for part in ("val", "test"):
        out["unigram"][part] = [unigram_nll(lm, y, add) for _, y in pairs[part]]
        out["bigram"][part] = [bigram_nll(lm, p, y, lam, add) for p, y in pairs[part]]
    return out


# ------------------------------------------------------------------------------------------------ metrics
def nll_entry(nll_sums: Sequence[float], n_tokens: Sequence[int], *, seed: int = 0, n_resamples: int = 2000) -> dict:
    """Corpus per-token NLL (sum over posts / tokens over posts; nats) with a percentile-bootstrap 95% CI
    over posts (each post keeps its tokens together), its perplexity, and n (posts, tokens)."""
    s, n = np.asarray(nll_sums, np.float64), np.asarray(n_tokens, np.float64)
    out = {"nll_per_token": float(s.sum() / n.sum()), "perplexity": float(np.exp(s.sum() / n.sum())),
           "n": int(len(s)), "n_tokens": int(n.sum())}
    if len(s) >= 2:
        def ratio(idx, axis=-1):
            idx = idx.astype(np.int64)
            return s[idx].sum(axis) / n[idx].sum(axis)

        out["ci_low"], out["ci_high"] = stats.bootstrap_ci(np.arange(len(s), dtype=np.float64), ratio, seed=seed,
                                                           n_resamples=n_resamples)
    return out
