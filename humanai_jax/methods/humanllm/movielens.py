"""HumanLLM item selection on real user behaviour: MovieLens-100K (RecBole atomic files).

The paper's item-selection task (docs/humanllm.md §7.3) on the ratings of 943 real users: the user's profile (age,
gender, occupation) and time-ordered history of rated titles -> the title of the next movie the user
rates, among 20 candidates (the true next item + 19 items the user never rated, sampled uniformly from
the catalogue, deterministically from (seed, user, position)).

Protocol (no leakage between users, time order inside a user):
  * users are split at random (seeded) into train / val / test users;
  * training samples come from train users only: `positions_per_user` next-item positions per user, each
    with the `history_len` items before it;
  * val / test samples: one per held-out user, the user's LAST item as the target;
  * the tokenizer is fit on the training samples' text only (experiments/humanllm.py).

Every sample keeps its structure in `meta` (uid, history item ids, candidate ids, target index) so the
baselines (`baselines.py`) score exactly the same candidates as the model.

Files: `ml-100k.inter` (user_id, item_id, rating, timestamp), `ml-100k.item` (item_id, movie_title,
release_year, class = genres), `ml-100k.user` (user_id, age, gender, occupation, zip_code). Items with the
same title and year (ML-100K lists 18 movies twice) are merged onto the first id; a user's repeated item
keeps its first rating. Malformed lines raise `DataFormatError` naming file and line.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import string

import numpy as np

from humanai_jax.agents.prompts import PromptLibrary
from humanai_jax.recsys.data import DataFormatError, read_atomic_rows, read_recbole_inter

PROMPTS = PromptLibrary("humanai_jax.methods.humanllm", "prompts/sft")
SOURCE = "movielens.Movies.item_selection"
GENDER = {"M": "man", "F": "woman"}


@dataclasses.dataclass(frozen=True)
class MovieLens:
    """titles/genres per item id; per user the demographics and the time-ordered (item, rating) sequence."""

    titles: dict[str, str]                 # item id -> "Title (year)"
    genres: dict[str, tuple[str, ...]]     # item id -> genres
    users: dict[str, dict]                 # uid -> {"age": int, "gender": str, "occupation": str}
    sequences: dict[str, list[str]]        # uid -> item ids in time order (ties: file order)
    ratings: dict[str, list[float]]        # uid -> ratings aligned with `sequences`

    @property
    def items(self) -> list[str]:
        return sorted(self.titles, key=int)


def _read_atomic(path: str, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(field names, [(line number, fields)]) of a RecBole atomic file; checks the header and field count."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found (RecBole atomic MovieLens-100K file)")
    return read_atomic_rows(path, required, encoding="latin-1")


def load_movielens(directory: str) -> MovieLens:
    """Reads `ml-100k.{item,user,inter}` from `directory` (see the module docstring)."""
    base = os.path.join(directory, os.path.basename(os.path.normpath(directory)))
    names, rows = _read_atomic(base + ".item", ("item_id", "movie_title", "release_year", "class"))
    col = {n: i for i, n in enumerate(names)}
    titles, genres, canonical, first_of_title = {}, {}, {}, {}
    for lineno, f in rows:
        item, title, year = f[col["item_id"]], f[col["movie_title"]].strip(), f[col["release_year"]].strip()
        if not title:
            raise DataFormatError(f"{base}.item:{lineno}: empty movie_title for item {item}")
        text = f"{title} ({year})" if year else title
        canonical[item] = first_of_title.setdefault(text.lower(), item)
        if canonical[item] == item:
            titles[item] = text
            genres[item] = tuple(g for g in f[col["class"]].split() if g != "unknown")
    names, rows = _read_atomic(base + ".user", ("user_id", "age", "gender", "occupation"))
    col = {n: i for i, n in enumerate(names)}
    users = {}
    for lineno, f in rows:
        try:
            age = int(f[col["age"]])
        except ValueError:
            raise DataFormatError(f"{base}.user:{lineno}: age {f[col['age']]!r} is not an integer") from None
        users[f[col["user_id"]]] = {"age": age, "gender": f[col["gender"]], "occupation": f[col["occupation"]]}
    inter = read_recbole_inter(base + ".inter")
    if "timestamp" not in inter or "rating" not in inter:
        raise DataFormatError(f"{base}.inter:1: needs rating:float and timestamp:float fields")
    order = np.lexsort((np.arange(len(inter["user"])), inter["timestamp"], inter["user"]))
    sequences: dict[str, list[str]] = {}
    ratings: dict[str, list[float]] = {}
    seen: set[tuple[str, str]] = set()
    for k in order:
        uid, raw_item = str(inter["user"][k]), str(inter["item"][k])
        if raw_item not in canonical:
            raise DataFormatError(f"{base}.inter:{k + 2}: item {raw_item} is not in {base}.item")
        if uid not in users:
            raise DataFormatError(f"{base}.inter:{k + 2}: user {uid} is not in {base}.user")
        item = canonical[raw_item]
        if (uid, item) in seen:
            continue
        seen.add((uid, item))
        sequences.setdefault(uid, []).append(item)
        ratings.setdefault(uid, []).append(float(inter["rating"][k]))
    return MovieLens(titles, genres, users, sequences, ratings)


def split_users(uids, fractions: tuple[float, float, float], seed: int) -> dict[str, list[str]]:
    """Seeded random split of users into {"train", "val", "test"} (fractions of the users; sorted lists)."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) <= 0:
        raise ValueError(f"data.user_fractions must be 3 positive numbers summing to 1, got {fractions}")
    uids = sorted(uids, key=int)
    perm = np.random.default_rng(seed).permutation(len(uids))
    n_train, n_val = int(round(fractions[0] * len(uids))), int(round(fractions[1] * len(uids)))
    parts = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}
    return {k: sorted((uids[i] for i in v), key=int) for k, v in parts.items()}


@functools.cache
def _scenarios() -> list[str]:
    return PROMPTS.json("item_selection_movies_scenarios")


def profile_text(user: dict) -> str:
    """The demographic persona: 'The user is a 24-year-old man who works as a technician.'"""
    who = GENDER.get(user["gender"], "person")
    job = user["occupation"]
    work = ("has no occupation" if job == "none" else "is retired" if job == "retired"
            else "is a student" if job == "student" else f"works as {'an' if job[0] in 'aeiou' else 'a'} {job}")
    return f"The user is a {user['age']}-year-old {who} who {work}."


def never_rated(data: MovieLens, uid: str) -> list[str]:
    """The catalogue items `uid` never rated (at any time), in item-id order."""
    rated = set(data.sequences[uid])
    return [i for i in data.items if i not in rated]


def sample_negatives(data: MovieLens, uid: str, n: int, seed: int, position: int,
                     pool: list[str] | None = None) -> list[str]:
    """`n` items the user never rated (at any time), uniformly without replacement; a pure function of
    (seed, user, position). `pool`: `never_rated(data, uid)` when already computed."""
    pool = never_rated(data, uid) if pool is None else pool
    rng = np.random.default_rng([seed, int(uid), position])
    return [pool[j] for j in rng.choice(len(pool), n, replace=False)]


def item_selection_sample(data: MovieLens, uid: str, t: int, *, seed: int, history_len: int,
                          n_negatives: int = 19, pool: list[str] | None = None) -> dict:
    """The sample predicting item `t` of `uid`'s sequence from the `history_len` items before it.

    messages: [user prompt, assistant = target title]; meta: uid, position, history / candidate item
    ids, the target's index among the candidates."""
    seq = data.sequences[uid]
    target = seq[t]
    rng = np.random.default_rng([seed, int(uid), t, 1])
    candidates = sample_negatives(data, uid, n_negatives, seed, t, pool)
    at = int(rng.integers(n_negatives + 1))
    candidates.insert(at, target)
    scenarios = _scenarios()
    cand_text = "\n".join(f"Candidate {k}: {data.titles[c]}" for k, c in enumerate(candidates, 1))
    scenario = string.Template(scenarios[int(rng.integers(len(scenarios)))]).substitute(candidates=cand_text)
    history = seq[max(0, t - history_len):t]
    hist_text = "\n".join(f"History {k}: {data.titles[i]}" for k, i in enumerate(history, 1))
    sections = (f"Here's the user persona:\n------\n{profile_text(data.users[uid])}\n------\n"
                f"Here is the user's watching history:\n------\n{hist_text}\n------\n")
    prompt = PROMPTS.render("item_selection_movies", scenario=scenario, sections=sections)
    return {"uid": uid, "source": SOURCE,
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": data.titles[target]}],
            "meta": {"uid": uid, "position": t, "history": history, "candidates": candidates, "target_index": at}}


def training_positions(n_items: int, k: int, min_history: int, rng: np.random.Generator) -> list[int]:
    """Up to `k` distinct next-item positions in [min_history, n_items - 1] (sorted)."""
    positions = np.arange(min_history, n_items)
    if len(positions) > k:
        positions = np.sort(rng.choice(positions, k, replace=False))
    return [int(p) for p in positions]


def build_samples(data: MovieLens, *, seed: int, fractions=(0.6, 0.1, 0.3), history_len: int = 10,
                  positions_per_user: int = 20, min_history: int = 5) -> tuple[dict[str, list[dict]], dict]:
    """{"train", "val", "test"} samples and a report; train users give `positions_per_user` positions each
    (never their last item, so no train target coincides with an evaluation position), held-out users one
    sample: their last item. The split and every draw are functions of `seed`."""
    split = split_users(data.sequences, fractions, seed)
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    rng = np.random.default_rng([seed, 2])
    for uid in split["train"]:
        n, pool = len(data.sequences[uid]), never_rated(data, uid)
        for t in training_positions(n - 1, positions_per_user, min_history, rng):
            out["train"].append(item_selection_sample(data, uid, t, seed=seed, history_len=history_len, pool=pool))
    for part in ("val", "test"):
        for uid in split[part]:
            t = len(data.sequences[uid]) - 1
            out[part].append(item_selection_sample(data, uid, t, seed=seed, history_len=history_len))
    report = {"users": {k: len(v) for k, v in split.items()}, "samples": {k: len(v) for k, v in out.items()},
              "items": len(data.titles), "history_len": history_len, "positions_per_user": positions_per_user}
    return out, report


def fit_sequences(samples: dict[str, list[dict]], data: MovieLens) -> dict[str, list[str]]:
    """What the collaborative baselines may fit on: every train user's whole sequence plus each held-out
    user's items before the evaluated one (never the held-out item or anything after it)."""
    out = {uid: data.sequences[uid] for uid in dict.fromkeys(s["meta"]["uid"] for s in samples["train"])}
    for part in ("val", "test"):
        for s in samples[part]:
            m = s["meta"]
            out[m["uid"]] = data.sequences[m["uid"]][:m["position"]]
    return out
