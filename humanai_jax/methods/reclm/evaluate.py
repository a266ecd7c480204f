"""RecLM evaluation (docs/reclm.md §5.5): parse replies, score lists, decode with the constraint or the retriever.

Per sample: O = parsed titles, n = item_count (10), O' = O[:n], y = the target's title, rank = 1-based
index of y in O'.

  hr@10 = 1[y in O'];  ndcg@10 = 1/log2(rank+1);  mrr@10 = 1/rank  (0 when y not in O')
  ood@10        number of O' not in the catalogue (a count per list, the reference's NonExistRate)
  repeat@10     number of j with O'[j] in O'[:j]
  in_history@10 number of O' whose item is in the shown history
  exact_count   1[len(O) == n], before truncation

Means are over all samples; an empty reply counts as a miss (`n_empty` says how many; `*_skip_empty`
give the reference's skip). Counts are also given as count / n (`*_frac`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax.backbone.transformer import hidden_states, logits_from_hidden
from humanai_jax.decoding import ItemConstraint, generate
from humanai_jax.methods.reclm.retrieval import make_retriever
from humanai_jax.train.losses import token_nll

CTRL_ITEM = re.compile(r"<SOI>\s*(.*?)\s*<EOI>", re.MULTILINE)  # the reference's get_ctrl_item


def parse_tokens(tokens: Sequence[int], soi_id: int, eoi_id: int, stop_id: int) -> list[tuple[int, ...]]:
    """Title-token tuples between each `<SOI>` and its `<EOI>` before the stop token (an unclosed span is
    not an item, as the reference's regex)."""
    spans, cur = [], None
    for t in tokens:
        t = int(t)
        if t == stop_id:
            break
        if t == soi_id:
            cur = []
        elif t == eoi_id:
            if cur is not None:
                spans.append(tuple(cur))
            cur = None
        elif cur is not None:
            cur.append(t)
    return spans


def sample_metrics(titles_out: Sequence[str], target: str, history: set[str], catalog: set[str], n: int = 10) -> dict:
    """One sample's values (module docstring)."""
    top = list(titles_out)[:n]
    rank = top.index(target) + 1 if target in top else 0
    return {
        "hr@10": float(rank > 0),
        "ndcg@10": 1.0 / np.log2(rank + 1) if rank else 0.0,
        "mrr@10": 1.0 / rank if rank else 0.0,
        "ood@10": float(sum(t not in catalog for t in top)),
        "repeat@10": float(sum(t in top[:j] for j, t in enumerate(top))),
        "in_history@10": float(sum(t in history for t in top)),
        "exact_count": float(len(titles_out) == n),
        "empty": float(len(titles_out) == 0),
    }


COUNT_METRICS = ("ood@10", "repeat@10", "in_history@10")


def aggregate(samples: Sequence[dict], n: int = 10) -> dict:
    if not samples:
        raise ValueError("no samples to aggregate")
    out = {k: float(np.mean([s[k] for s in samples])) for k in samples[0] if k != "empty"}
    for k in COUNT_METRICS:
        out[f"{k}_frac"] = out[k] / n
    kept = [s for s in samples if not s["empty"]]
    for k in ("hr@10", "ndcg@10"):
        out[f"{k}_skip_empty"] = float(np.mean([s[k] for s in kept])) if kept else 0.0
    out["n"] = len(samples)
    out["n_empty"] = int(sum(s["empty"] for s in samples))
    return out


def score_lists(lists: Sequence[Sequence[str]], cases, titles: Sequence[str], n: int = 10) -> tuple[dict, list[dict]]:
    """Metrics of title lists against `cases` (data.EvalCase); returns (aggregate, per-sample)."""
    catalog = set(titles)
    per = [sample_metrics(out, titles[c.target], {titles[i] for i in c.history}, catalog, n)
           for out, c in zip(lists, cases)]
    return aggregate(per, n), per


# ------------------------------------------------------------------------------ model decoding


def decode_replies(params: dict, model_cfg, codec, prompts: Sequence[Sequence[int]], *, variant: str, trie=None,
                   title_ids=None, max_new_tokens: int, batch: int = 64, temperature: float = 0.0,
                   top_p: float | None = None, seed: int = 0, max_items: int = 16,
                   constrained: bool = True) -> list[list[int]]:
    """Generated token rows (to the stop token) for every prompt, constrained (cgen: `ItemConstraint`) or
    retrieval-forced (ret: the `<SOI>` hook over `params["proj"]`, `params["items"]`). `constrained=False`
    decodes cgen freely (the ablation that shows what the trie constraint does)."""
    constraint = retriever = None
    if variant == "cgen" and not constrained:
        pass
    elif variant == "cgen":
        constraint = ItemConstraint(trie.to_device(), max_items=max_items)
    elif variant == "ret":
        retriever = make_retriever(params["proj"], params["items"], title_ids, soi_id=codec.soi_id,
                                   eoi_id=codec.eoi_id, max_items=max_items)
    else:
        raise ValueError(f"variant must be cgen or ret, got {variant!r}")
    rng = jax.random.key(seed) if temperature > 0 else None
    out = []
    for s in range(0, len(prompts), batch):
        ids = list(range(s, min(s + batch, len(prompts))))
        toks, lens = generate(params["lm"], model_cfg, [prompts[i] for i in ids], max_new_tokens=max_new_tokens,
                              temperature=temperature, top_p=top_p, stop_token_ids=[codec.eot_id], rng=rng,
                              constraint=constraint, retriever=retriever, request_ids=np.asarray(ids))
        out += [row[:n].tolist() for row, n in zip(toks, lens)]
    return out


def replies_to_titles(rows: Sequence[Sequence[int]], codec, item_of: dict[tuple[int, ...], int],
                      titles: Sequence[str]) -> tuple[list[list[str]], dict]:
    """Per reply its parsed titles (an item's catalogue title, or the decoded text of an off-catalogue
    span), and checks that the token-level parse agrees with the reference's text regex."""
    out, disagree = [], 0
    for row in rows:
        spans = parse_tokens(row, codec.soi_id, codec.eoi_id, codec.eot_id)
        names = [titles[item_of[s]] if s in item_of else codec.tokenizer.decode(list(s)) for s in spans]
        text = codec.tokenizer.decode([t for t in row if t != codec.eot_id], skip_special_tokens=False)
        disagree += int([t.strip() for t in names] != CTRL_ITEM.findall(text))
        out.append(names)
    return out, {"parse_disagreements": disagree}


def general_loss(params_lm, model_cfg, tokenizer, docs, row_len: int) -> float:
    """Mean next-token NLL (nats/token) on non-recommendation documents, one document per row."""
    ids = [tokenizer(d, add_special_tokens=False)["input_ids"][:row_len] for d in docs]
    tokens = np.zeros((len(ids), row_len), np.int32)
    mask = np.zeros((len(ids), row_len), np.float32)
    for r, t in enumerate(ids):
        tokens[r, :len(t)], mask[r, 1:len(t)] = t, 1.0

    @jax.jit
    def nll_sum(p, tok, m):
        logits = logits_from_hidden(p, hidden_states(p, tok[:, :-1], model_cfg), model_cfg)
        return jnp.sum(token_nll(logits, tok[:, 1:]) * m[:, 1:])

    total = sum(float(nll_sum(params_lm, tokens[s:s + 32], mask[s:s + 32])) for s in range(0, len(ids), 32))
    return total / float(mask.sum())
