"""HumanLLM rating prediction on MovieLens-100K: samples, baselines and metrics (docs/humanllm.md, "Rating").

The reference's task table (docs/humanllm.md §7.2) has no rating task; MovieLens-100K supports one, so this is
our adaptation in the paper's prompt style (§7.2: one instruction paragraph, labelled sections between
`------` rules, a closing "only output" line; the history rendered as in §5.1's Amazon profile input,
`History k: <title>. The rating is <r>.`, and the review variant's "target item name" section):
demographic persona + the user's time-ordered rated history -> the user's 1-5 rating of the target movie.

Protocol: the item-selection task's user split (`movielens.split_users`, same seed), time order inside a
user; train users give `positions_per_user` positions each (never their last item); val / test users one
sample: the rating of their LAST item (the item-selection target). Baselines (`fit_*`) see train users'
ratings and, for a held-out user, only the ratings before the evaluated one.

Metrics: RMSE and MAE with percentile-bootstrap 95% CIs over test users, exact-match accuracy (the
prediction rounded half-to-even and clipped to 1..5) with its exact Clopper-Pearson 95% CI, and n.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from humanai_jax.eval import stats
from humanai_jax.methods.humanllm import movielens

SOURCE = "movielens.Movies.rating"
RATINGS = ("1", "2", "3", "4", "5")
BIAS_L2_GRID = (1.0, 3.0, 10.0, 25.0, 50.0)


# ------------------------------------------------------------------------------------------------ samples
def rating_sample(data: movielens.MovieLens, uid: str, t: int, *, history_len: int) -> dict:
    """The sample asking for `uid`'s rating of item `t` given the `history_len` rated items before it.

    messages: [user prompt, assistant = "<rating>"]; meta: uid, position, history ids, target id, rating."""
    seq, ratings = data.sequences[uid], data.ratings[uid]
    lo = max(0, t - history_len)
    hist = "\n".join(f"History {k}: {data.titles[i]}. The rating is {r:g}."
                     for k, (i, r) in enumerate(zip(seq[lo:t], ratings[lo:t]), 1))
    sections = (f"Here's the user persona:\n------\n{movielens.profile_text(data.users[uid])}\n------\n"
                f"Here is the user's rating history:\n------\n{hist}\n------\n"
                f"Here's the target item name:\n------\n{data.titles[seq[t]]}\n------\n")
    prompt = movielens.PROMPTS.render("rating_movies", sections=sections)
    rating = ratings[t]
    if rating != int(rating) or not 1 <= rating <= 5:
        raise ValueError(f"user {uid} item {seq[t]}: rating {rating} is not an integer in 1..5")
    return {"uid": uid, "source": SOURCE,
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": f"{int(rating)}"}],
            "meta": {"uid": uid, "position": t, "history": seq[lo:t], "item": seq[t], "rating": float(rating)}}


def build_rating_samples(data: movielens.MovieLens, *, seed: int, fractions=(0.6, 0.1, 0.3), history_len: int = 10,
                         positions_per_user: int = 10, min_history: int = 5, max_users: int = 0) -> dict[str, list]:
    """{"train", "val", "test"} rating samples on the item-selection user split (same `seed` -> same users).
    `max_users` > 0 keeps only the first held-out users of each split (quick looks, tests)."""
    split = movielens.split_users(data.sequences, fractions, seed)
    rng = np.random.default_rng([seed, 3])  # its own stream: the item-selection positions do not move
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for uid in split["train"]:
        for t in movielens.training_positions(len(data.sequences[uid]) - 1, positions_per_user, min_history, rng):
            out["train"].append(rating_sample(data, uid, t, history_len=history_len))
    for part in ("val", "test"):
        uids = split[part][:max_users] if max_users else split[part]
        out[part] = [rating_sample(data, u, len(data.sequences[u]) - 1, history_len=history_len) for u in uids]
    return out


def targets(samples: Sequence[dict]) -> np.ndarray:
    return np.asarray([s["meta"]["rating"] for s in samples], np.float64)


# ------------------------------------------------------------------------------------------------ baselines
def fit_ratings(samples: dict[str, list[dict]], data: movielens.MovieLens) -> list[tuple[str, str, float]]:
    """(uid, item, rating) the baselines may fit on: every rating of the train users plus each held-out
    user's ratings before the evaluated one (never the held-out rating or anything after it)."""
    out = []
    for uid in dict.fromkeys(s["meta"]["uid"] for s in samples["train"]):
        out += [(uid, i, r) for i, r in zip(data.sequences[uid], data.ratings[uid])]
    for part in ("val", "test"):
        for s in samples[part]:
            uid, t = s["meta"]["uid"], s["meta"]["position"]
            out += [(uid, i, r) for i, r in zip(data.sequences[uid][:t], data.ratings[uid][:t])]
    return out


def train_ratings(samples: dict[str, list[dict]], data: movielens.MovieLens) -> list[tuple[str, str, float]]:
    """Every rating of the train users only."""
    uids = dict.fromkeys(s["meta"]["uid"] for s in samples["train"])
    return [(u, i, r) for u in uids for i, r in zip(data.sequences[u], data.ratings[u])]


def global_mean_predictions(samples: Sequence[dict], train: Sequence[tuple]) -> np.ndarray:
    mu = float(np.mean([r for _, _, r in train]))
    return np.full(len(samples), mu)


def user_mean_predictions(samples: Sequence[dict], data: movielens.MovieLens, fallback: float) -> np.ndarray:
    """Mean of the user's ratings before the evaluated position (`fallback` when there are none)."""
    out = []
    for s in samples:
        prior = data.ratings[s["meta"]["uid"]][:s["meta"]["position"]]
        out.append(float(np.mean(prior)) if prior else fallback)
    return np.asarray(out)


def item_mean_predictions(samples: Sequence[dict], train: Sequence[tuple], fallback: float) -> np.ndarray:
    """Mean rating of the target item by the train users (`fallback` for an item no train user rated)."""
    sums: dict[str, list[float]] = {}
    for _, i, r in train:
        acc = sums.setdefault(i, [0.0, 0])
        acc[0] += r
        acc[1] += 1
    return np.asarray([sums[i][0] / sums[i][1] if (i := s["meta"]["item"]) in sums else fallback for s in samples])


def fit_bias(ratings: Sequence[tuple[str, str, float]], l2: float) -> dict:
    """The regularised bias model r ≈ mu + b_u + b_i minimising
    sum (r - mu - b_u - b_i)^2 + l2 (sum b_u^2 + sum b_i^2) (mu unpenalised), solved exactly: the normal
    equations (X^T X + diag(0, l2, ..., l2)) theta = X^T r of the sparse one-hot design X = [1 | user | item]
    (positive definite for l2 > 0; 1 + n_users + n_items unknowns). Returns {mu, user: {uid: b}, item: {id: b}}."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    if l2 <= 0:
        raise ValueError(f"fit_bias needs l2 > 0, got {l2}")
    if not ratings:
        raise ValueError("fit_bias needs at least one rating")
    users, u_idx = np.unique([u for u, _, _ in ratings], return_inverse=True)
    items, i_idx = np.unique([i for _, i, _ in ratings], return_inverse=True)
    r = np.asarray([x for _, _, x in ratings], np.float64)
    n, nu = len(r), len(users)
    rows = np.repeat(np.arange(n), 3)
    cols = np.stack([np.zeros(n, np.int64), 1 + u_idx, 1 + nu + i_idx], 1).ravel()
    x = sp.csr_matrix((np.ones(3 * n), (rows, cols)), shape=(n, 1 + nu + len(items)))
    penalty = sp.diags(np.r_[0.0, np.full(nu + len(items), float(l2))])
    theta = spsolve((x.T @ x + penalty).tocsc(), x.T @ r)
    return {"mu": float(theta[0]), "user": dict(zip(users.tolist(), theta[1:1 + nu].tolist())),
            "item": dict(zip(items.tolist(), theta[1 + nu:].tolist()))}


def bias_predictions(samples: Sequence[dict], model: dict) -> np.ndarray:
    """mu + b_u + b_i (an unseen user or item contributes 0)."""
    return np.asarray([model["mu"] + model["user"].get(s["meta"]["uid"], 0.0) + model["item"].get(s["meta"]["item"], 0.0)
                       for s in samples])


def all_baselines(samples: dict[str, list[dict]], data: movielens.MovieLens) -> dict[str, dict]:
    """{method: {"val": predictions, "test": predictions, "selected"?}}; the bias model's l2 is chosen on
    the val users (lowest RMSE, first in the grid on ties), then read once on test."""
    train = train_ratings(samples, data)
    mu = float(np.mean([r for _, _, r in train]))
    out = {}
    for part in ("val", "test"):
        ss = samples[part]
        out.setdefault("global_mean", {})[part] = global_mean_predictions(ss, train)
        out.setdefault("user_mean", {})[part] = user_mean_predictions(ss, data, mu)
        out.setdefault("item_mean", {})[part] = item_mean_predictions(ss, train, mu)
    fit = fit_ratings(samples, data)
    best = None
    for l2 in BIAS_L2_GRID:
        model = fit_bias(fit, l2)
        val_rmse = rmse(bias_predictions(samples["val"], model), targets(samples["val"]))
        if best is None or val_rmse < best[0]:
            best = (val_rmse, l2, model)
    _, l2, model = best
    out["bias"] = {"val": bias_predictions(samples["val"], model), "test": bias_predictions(samples["test"], model),
                   "selected": {"l2": l2}}
    return out


# ------------------------------------------------------------------------------------------------ model
def expected_and_argmax(option_logprobs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From [n, 5] sum log p("k" + end-of-turn | prompt) for k = 1..5: the expected rating under the
    distribution renormalised over the five options, and the most likely rating (ties: the lower)."""
    lp = np.asarray(option_logprobs, np.float64)
    p = np.exp(lp - lp.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    values = np.arange(1, lp.shape[-1] + 1, dtype=np.float64)
    return p @ values, values[np.argmax(lp, -1)]


def parse_rating(text: str) -> float | None:
    """The first standalone digit 1-5 of a generated reply, or None."""
    m = re.search(r"(?<!\d)([1-5])(?!\d)", text)
    return float(m.group(1)) if m else None


# ------------------------------------------------------------------------------------------------ metrics
def rmse(pred, true) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - np.asarray(true, np.float64)) ** 2)))


def mae(pred, true) -> float:
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - np.asarray(true, np.float64))))


def as_rating(pred) -> np.ndarray:
    """A prediction as a rating value: rounded half-to-even (numpy's rint), clipped to 1..5."""
    return np.clip(np.rint(np.asarray(pred, np.float64)), 1, 5)


def rating_entry(pred, true, *, seed: int = 0, n_resamples: int = 2000) -> dict:
    """{rmse, rmse_ci_low/high, mae, mae_ci_low/high, accuracy, ci_low, ci_high, hits, n}: RMSE and MAE with
    percentile-bootstrap 95% CIs over the evaluated users, exact match (`as_rating`) with its exact CI."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    sq, ab = (pred - true) ** 2, np.abs(pred - true)
    out = {"rmse": rmse(pred, true), "mae": mae(pred, true), "n": int(len(true))}
    if len(true) >= 2:
        lo, hi = stats.bootstrap_ci(sq, lambda x, axis=-1: np.sqrt(np.mean(x, axis=axis)), seed=seed,
                                    n_resamples=n_resamples)
        out.update(rmse_ci_low=lo, rmse_ci_high=hi)
        lo, hi = stats.bootstrap_ci(ab, np.mean, seed=seed, n_resamples=n_resamples)
        out.update(mae_ci_low=lo, mae_ci_high=hi)
    k = int(np.sum(as_rating(pred) == true))
    lo, hi = stats.binomial_ci(k, len(true))
    out.update(accuracy=k / len(true) if len(true) else 0.0, ci_low=lo, ci_high=hi, hits=k)
    return out
