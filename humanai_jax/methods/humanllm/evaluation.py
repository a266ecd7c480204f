"""Evaluation (docs/humanllm.md §10): item-selection accuracy, the first-N-per-source test selection, and an LLM judge
for the free-text tasks with its rubric stored as data (`prompts/judge_free_text.txt`). The statistics and
the judge are the core's (`humanai_jax.eval.stats`, `humanai_jax.eval.judge`).

Item selection: hit iff `target.strip().lower()` is a substring of `generation.strip().lower()`; with
20 candidates, chance is 1/20 = 5%.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Sequence

import numpy as np

from humanai_jax.agents import GenConfig
from humanai_jax.eval import stats
from humanai_jax.eval.judge import Rubric, aggregate, judge
from humanai_jax.eval.registry import Evaluator, register
from humanai_jax.methods.humanllm import stages

CHANCE_ITEM_SELECTION = 1 / 20
FREE_TEXT_DIMENSIONS = ("fidelity", "style", "plausibility", "overall")


def item_hit(target: str, generation: str) -> bool:
    return target.strip().lower() in generation.strip().lower()


def first_per_source(samples: Sequence[dict], n: int = 500) -> list[dict]:
    """The first `n` test samples of each `source`, in file order (not random), as the reference does."""
    seen = collections.Counter()
    out = []
    for s in samples:
        if seen[s["source"]] < n:
            seen[s["source"]] += 1
            out.append(s)
    return out


def generate_answers(backend, samples: Sequence[dict], cfg: GenConfig, tag: str = "humanllm.eval") -> list[str]:
    """The model's reply to each sample's prompt (all turns but the last assistant one); errors raise."""
    prompts = [s["messages"][:-1] for s in samples]
    return [r.text for r in backend.chat_batch(prompts, cfg, tags=[tag] * len(prompts))]


CONTEXT_MARKERS = {"history": "purchase history:", "persona": "user persona:"}




def candidates_of(prompt: str) -> list[str]:
    """The titles of the `Candidate k: <title>` lines of an item-selection prompt."""
    return re.findall(r"^Candidate \d+: (.*)$", prompt, re.MULTILINE)


def context_of(prompt: str) -> str:
    """"history", "persona" or "persona+history": which user context an item-selection prompt holds."""
    have = [name for name, marker in CONTEXT_MARKERS.items() if marker in prompt]
    return "+".join(sorted(have, reverse=True)) if have else "none"


def item_selection_accuracy(samples: Sequence[dict], generations: Sequence[str]) -> dict:
    """Accuracy (hit = target title in the generation) with its exact 95% CI and the one-sided binomial
    p-value against chance; also accuracy per user-context type and how often the generation names
    any of the 20 candidates (a model that picks a candidate at random scores chance)."""
    hits = [item_hit(s["messages"][-1]["content"], g) for s, g in zip(samples, generations)]
    n, k = len(hits), sum(hits)
    named = [any(item_hit(c, g) for c in candidates_of(s["messages"][-2]["content"]))
             for s, g in zip(samples, generations)]
    by_context: dict[str, list[int]] = {}
    for s, h in zip(samples, hits):
        acc = by_context.setdefault(context_of(s["messages"][-2]["content"]), [0, 0])
        acc[0] += h
        acc[1] += 1
    return {"accuracy": k / max(n, 1), "n": n, "hits": k, "chance": CHANCE_ITEM_SELECTION,
            "ci95": list(stats.binomial_ci(k, n)),
            "p_value_vs_chance": stats.binomial_test(k, n, CHANCE_ITEM_SELECTION, "greater"),
            "names_a_candidate": sum(named) / max(n, 1),
            "by_context": {c: {"accuracy": h / t, "n": t} for c, (h, t) in sorted(by_context.items())}}


def free_text_rubric() -> Rubric:
    """The free-text rubric: `prompts/judge_free_text.txt`, every dimension scored 1-10."""
    return Rubric("free_text", FREE_TEXT_DIMENSIONS, template=stages.PROMPTS.text("judge_free_text"))


def judge_free_text(backend, samples: Sequence[dict], generations: Sequence[str], *,
                    cfg: GenConfig = GenConfig(temperature=0.0, max_tokens=1024), max_attempts: int = 3) -> dict:
    """Scores generations against the real responses with an LLM judge (`humanai_jax.eval.judge`); returns
    per-source mean scores and the number of failed judgments (counted, never silently dropped)."""
    items = [{"prompt": s["messages"][-2]["content"], "reference": s["messages"][-1]["content"], "generation": g}
             for s, g in zip(samples, generations)]
    judgments = judge(backend, free_text_rubric(), items, cfg=cfg, max_attempts=max_attempts,
                      tag="humanllm.judge_free_text")
    return aggregate(judgments, FREE_TEXT_DIMENSIONS, [s["source"] for s in samples])


@register("humanllm_item_selection")
class ItemSelection(Evaluator):
    """`config.evals` entry `{type: "humanllm_item_selection", every, n_per_source, max_tokens, temperature,
    seed}`: item-selection accuracy of a chat model on the context's `samples` (test samples; the first
    `n_per_source` of each `*.item_selection` source), over params through the context's `backend_fn`
    or a ChatBackend. Metrics: `accuracy`, `n`, `hits`, `ci_low`, `ci_high`, `p_value_vs_chance`,
    `names_a_candidate`. Registered when this module is imported."""

    defaults = {"n_per_source": 500, "max_tokens": 32, "temperature": 0.0, "seed": 0}
    needs = ("samples",)

    def evaluate(self, target) -> dict:
        sel = [s for s in first_per_source(self.context["samples"], self.options["n_per_source"])
               if s["source"].endswith(".item_selection")]
        if not sel:
            raise ValueError(f"evaluator {self.name!r}: no item-selection samples")
        backend = target if hasattr(target, "chat_batch") else self.context["backend_fn"](target)
        cfg = GenConfig(temperature=float(self.options["temperature"]), max_tokens=int(self.options["max_tokens"]),
                        seed=int(self.options["seed"]))
        acc = item_selection_accuracy(sel, generate_answers(backend, sel, cfg, tag=f"eval.{self.name}"))
        return {"accuracy": acc["accuracy"], "n": float(acc["n"]), "hits": float(acc["hits"]),
                "ci_low": acc["ci95"][0], "ci_high": acc["ci95"][1], "p_value_vs_chance": acc["p_value_vs_chance"],
                "names_a_candidate": acc["names_a_candidate"]}


# --------------------------------------------------------------------------------------------------
# Both model protocols on structured candidates (sample["meta"]: candidates, target_index)


def accuracy_entry(hits: Sequence[bool]) -> dict:
    """`{accuracy, ci_low, ci_high, n, hits}` with the exact (Clopper-Pearson) 95% CI."""
    n, k = len(hits), int(sum(bool(h) for h in hits))
    lo, hi = stats.binomial_ci(k, n)
    return {"accuracy": k / n if n else 0.0, "ci_low": lo, "ci_high": hi, "n": n, "hits": k}


def candidate_titles(sample: dict) -> list[str]:
    """The candidate titles of an item-selection sample, in the prompt's order."""
    return candidates_of(sample["messages"][-2]["content"])


def generation_hits(samples: Sequence[dict], generations: Sequence[str]) -> list[bool]:
    """The paper's protocol: hit iff the target title is a substring of the generation (case-insensitive)."""
    return [item_hit(s["messages"][-1]["content"], g) for s, g in zip(samples, generations)]


def sequence_nll(params, model_cfg, encoded: Sequence[tuple[np.ndarray, np.ndarray]], row_len: int, *, nll_fn,
                 rows_per_batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence (tokens, loss mask) the sum of the masked next-token NLL [n] and the number of masked
    tokens [n]; one sequence per row, batches padded to `rows_per_batch` rows (one compiled shape).
    A sequence longer than `row_len` raises (a truncated one would be scored on fewer tokens)."""
    from humanai_jax.methods.humanllm import tokenize

    for i, (tok, _) in enumerate(encoded):
        if len(tok) > row_len:
            raise ValueError(f"sequence {i}: {len(tok)} tokens > row length {row_len}; raise data.seq_len")
    sums, counts = np.zeros(len(encoded)), np.zeros(len(encoded), np.int64)
    filler = (np.zeros(2, np.int32), np.zeros(2, np.int8))
    for start in range(0, len(encoded), rows_per_batch):
        chunk = list(encoded[start:start + rows_per_batch])
        pb = tokenize.pack(chunk + [filler] * (rows_per_batch - len(chunk)), row_len, max_segments=1)
        nll, mask = nll_fn(params, {k: np.asarray(v) for k, v in pb.as_dict().items()}, model_cfg)
        row_sum, row_cnt = np.asarray((nll * mask).sum(-1)), np.asarray(mask.sum(-1))
        for r, members in enumerate(pb.sample_index):
            if members[0] < len(chunk):
                sums[start + members[0]] = float(row_sum[r])
                counts[start + members[0]] = int(row_cnt[r])
    return sums, counts


def reply_logprobs(params, model_cfg, tokenizer, samples: Sequence[dict], options: Sequence[Sequence[str]],
                   row_len: int, *, nll_fn, rows_per_batch: int = 32) -> np.ndarray:
    """[n_samples, max options] sum of log p(option tokens + end-of-turn | prompt), each option scored as
    the assistant reply of the sample's chat (the training format, so the scored tokens are exactly the
    ones the SFT loss masks in); -inf where a sample has fewer options."""
    from humanai_jax.methods.humanllm import tokenize

    encoded, where = [], []
    for i, (s, opts) in enumerate(zip(samples, options)):
        for j, text in enumerate(opts):
            tok, mask = tokenize.tokenize_chat(tokenizer, [*s["messages"][:-1], {"role": "assistant", "content": text}])
            if len(tok) > row_len:
                raise ValueError(f"sample {i} option {j + 1}: {len(tok)} tokens > row length {row_len}; "
                                 f"raise data.seq_len")
            encoded.append((tok, mask))
            where.append((i, j))
    out = np.full((len(samples), max((len(o) for o in options), default=0)), -np.inf)
    sums, _ = sequence_nll(params, model_cfg, encoded, row_len, nll_fn=nll_fn, rows_per_batch=rows_per_batch)
    for (i, j), v in zip(where, sums):
        out[i, j] = -v
    return out


def candidate_logprobs(params, model_cfg, tokenizer, samples: Sequence[dict], row_len: int, *, nll_fn,
                       rows_per_batch: int = 32) -> np.ndarray:
    """Likelihood ranking: [n_samples, n_candidates] sum of log p(title tokens + end-of-turn | prompt)
    (`reply_logprobs` over the prompt's candidate titles). Candidates that do not fit `row_len` raise."""
    return reply_logprobs(params, model_cfg, tokenizer, samples, [candidate_titles(s) for s in samples], row_len,
                          nll_fn=nll_fn, rows_per_batch=rows_per_batch)
