"""Baselines for item selection, scoring exactly the candidates the model sees (sample["meta"]).

Each scorer returns scores [n_samples, n_candidates] (higher = more likely the next item); `choose`
turns them into one pick per sample, breaking ties uniformly at random from a seed (a scorer that cannot
tell the candidates apart therefore scores chance, not "always candidate 1").

  random       all-equal scores: the pick is a seeded uniform draw (expected 1/20; the measured value is reported)
  popularity   how many train users rated the candidate
  genre        overlap of the candidate's genres with the history's genre distribution
  itemknn/ease item-item models of `humanai_jax.recsys.neighbors`, fit on the train users' sequences plus each
               held-out user's items before the held-out one (`movielens.fit_sequences`); the score of
               candidate j is (x_u W)_j with x_u the user's 0/1 history row
  sasrec       `humanai_jax.recsys.sasrec` (a sequential recommender) fit on the same sequences, the step kept
               by val accuracy; the score of candidate j is its next-item logit after the last `max_len` items
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from humanai_jax.methods.humanllm.movielens import MovieLens
from humanai_jax.recsys import neighbors


def candidates_matrix(samples: Sequence[dict]) -> list[list[str]]:
    return [s["meta"]["candidates"] for s in samples]


def choose(scores: np.ndarray, seed: int) -> np.ndarray:
    """Index of the best candidate per row [n]; ties broken uniformly at random (seeded)."""
    scores = np.asarray(scores, np.float64)
    noise = np.random.default_rng(seed).random(scores.shape)
    # lexsort: last key is primary -> sort by score, then by the random key; the last column wins
    return np.lexsort((noise, scores), axis=-1)[:, -1]


def hits(samples: Sequence[dict], chosen: np.ndarray) -> list[bool]:
    return [int(c) == s["meta"]["target_index"] for s, c in zip(samples, chosen)]


def random_scores(samples: Sequence[dict]) -> np.ndarray:
    return np.zeros((len(samples), len(samples[0]["meta"]["candidates"])))


def popularity_scores(samples: Sequence[dict], train_sequences: dict[str, list[str]]) -> np.ndarray:
    """Number of train users who rated each candidate; `train_sequences` = the TRAIN users' sequences."""
    counts = collections.Counter(i for seq in train_sequences.values() for i in set(seq))
    return np.array([[counts[c] for c in cands] for cands in candidates_matrix(samples)], np.float64)


def genre_scores(samples: Sequence[dict], data: MovieLens) -> np.ndarray:
    """sum over the candidate's genres of that genre's share among the history's genre labels."""
    out = []
    for s in samples:
        hist = collections.Counter(g for i in s["meta"]["history"] for g in data.genres[i])
        total = max(sum(hist.values()), 1)
        out.append([sum(hist[g] for g in data.genres[c]) / total for c in s["meta"]["candidates"]])
    return np.array(out, np.float64)


def interaction_matrix(sequences: dict[str, list[str]], items: Sequence[str]) -> tuple[sp.csr_matrix, dict, dict]:
    """0/1 CSR [n_users, n_items] of `sequences`, with the user -> row and item -> column maps."""
    col = {i: k for k, i in enumerate(items)}
    row = {u: k for k, u in enumerate(sequences)}
    users = [row[u] for u, seq in sequences.items() for _ in seq]
    cols = [col[i] for seq in sequences.values() for i in seq]
    x = sp.csr_matrix((np.ones(len(users), np.float32), (users, cols)), shape=(len(row), len(col)))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x, row, col


def item_item_scores(samples: Sequence[dict], x: sp.csr_matrix, row: dict, col: dict, w) -> np.ndarray:
    """(x_u W)[candidates] per sample; x_u is the evaluated user's row of the fitting matrix."""
    w = np.asarray(w, np.float32)
    users = [row[s["meta"]["uid"]] for s in samples]
    full = np.asarray(x[users] @ w)  # [n, n_items]
    idx = np.array([[col[c] for c in s["meta"]["candidates"]] for s in samples])
    return np.take_along_axis(full, idx, axis=1).astype(np.float64)


def fit_item_item(kind: str, x: sp.csr_matrix, value: float):
    if kind == "ease":
        return neighbors.fit_ease(x, l2=float(value))
    if kind == "itemknn":
        return neighbors.fit_itemknn(x, k=int(value))
    raise ValueError(f"unknown item-item baseline {kind!r}; expected 'ease' or 'itemknn'")


def sasrec_baseline(val: Sequence[dict], test: Sequence[dict], items: Sequence[str],
                    fit_seqs: dict[str, list[str]], workdir: str, *, steps: int, seed: int, max_len: int) -> dict:
    """SASRec fit on `fit_seqs` with the shared Trainer; the parameters of the eval step with the best val
    accuracy are kept (`fit_sasrec`'s early stopping), then test is read once."""
    from humanai_jax.recsys import sasrec

    col = {i: k for k, i in enumerate(items)}
    cfg = sasrec.SASRecConfig(n_items=len(items), max_len=max_len)
    tc = sasrec.SASRecTrainConfig(steps=steps, eval_every=max(1, steps // 6), seed=seed)

    def scores(params, samples):
        full = sasrec.score_histories(params, cfg, [[col[i] for i in s["meta"]["history"]] for s in samples])
        idx = np.array([[col[c] for c in s["meta"]["candidates"]] for s in samples])
        return np.take_along_axis(full, idx, axis=1).astype(np.float64)

    fit = sasrec.fit_sasrec([[col[i] for i in seq] for seq in fit_seqs.values()], cfg, workdir, tc,
                            evaluate=lambda p: float(np.mean(hits(val, choose(scores(p, val), seed)))),
                            log=lambda _: None)
    return {"val_hits": hits(val, choose(scores(fit["params"], val), seed)),
            "test_hits": hits(test, choose(scores(fit["params"], test), seed + 1)),
            "selected": {"step": fit["best_step"], "max_len": max_len}}


GRIDS = {"ease": (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0), "itemknn": (10, 20, 50, 100, 200, 400)}


def all_baselines(val: Sequence[dict], test: Sequence[dict], data: MovieLens, fit_seqs: dict[str, list[str]],
                  train_seqs: dict[str, list[str]], seed: int) -> dict[str, dict]:
    """{method: {"val_hits", "test_hits", "selected"?}}; ItemKNN's k and EASE's l2 are chosen on `val`
    (best val accuracy, first in the grid on ties), then read once on `test`."""
    out = {}
    simple = {"random": lambda ss: random_scores(ss), "popularity": lambda ss: popularity_scores(ss, train_seqs),
              "genre": lambda ss: genre_scores(ss, data)}
    for name, fn in simple.items():
        out[name] = {"val_hits": hits(val, choose(fn(val), seed)), "test_hits": hits(test, choose(fn(test), seed + 1))}
    x, row, col = interaction_matrix(fit_seqs, data.items)
    for kind, grid in GRIDS.items():
        best = None
        for value in grid:
            w = fit_item_item(kind, x, value)
            val_hits = hits(val, choose(item_item_scores(val, x, row, col, w), seed))
            if best is None or sum(val_hits) > sum(best[1]):
                best = (value, val_hits, w)
        value, val_hits, w = best
        out[kind] = {"val_hits": val_hits, "test_hits": hits(test, choose(item_item_scores(test, x, row, col, w),
                                                                           seed + 1)),
                     "selected": {"l2" if kind == "ease" else "k": value}}
    return out
