"""Implicit-feedback data sets for collaborative filtering: loaders, splits and a synthetic generator.

Everything is held as `scipy.sparse.csr_matrix` of shape [n_users, n_items] with 0/1 float32 entries,
so catalogues of Gowalla/Amazon size stay sparse. One size definition is used everywhere:
`n_users = max user id + 1`, `n_items = max item id + 1` over train, valid and test together
(the reference code mixes two definitions; see spec sad.md §7 #11).

Loaders:
  * `load_lightgcn_text(dir)`: LightGCN / BARS "_m1" text, `train.txt`, `test.txt` and an optional
    `valid.txt`, one line per user: `user_id item item ...` (0-based ids; a line may list no items).
  * `load_recbole_inter(path, split=...)`: a RecBole atomic `.inter` file (TSV with a typed header such
    as `user_id:token item_id:token rating:float timestamp:float`), split leave-one-out by time or by
    ratio.
  * `synthetic_long_tail(...)`: latent factors + power-law item popularity, split per user.
Malformed input raises `DataFormatError` naming the file and the line number.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import scipy.sparse as sp


class DataFormatError(ValueError):
    """A data file does not follow its format; the message names the file and the line."""


@dataclasses.dataclass(frozen=True)
class Interactions:
    """A split implicit-feedback data set.

    train: [n_users, n_items] CSR, 0/1 float32. Row order within a row follows the file order
      (kept for `train_pairs`, which the faithful dense stage iterates in file order).
    test: [n_users, n_items] CSR, 0/1 float32 (users with no test item have an empty row).
    valid: optional [n_users, n_items] CSR, 0/1, disjoint from train.
    train_pairs: [n_train, 2] int32 (user, item) in file order, without duplicates.
    """

    name: str
    train: sp.csr_matrix
    test: sp.csr_matrix
    valid: sp.csr_matrix | None
    train_pairs: np.ndarray

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def summary(self) -> dict:
        out = {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "train": int(self.train.nnz),
            "test": int(self.test.nnz),
        }
        if self.valid is not None:
            out["valid"] = int(self.valid.nnz)
        return out


# ----------------------------------------------------------------------------- building blocks


def pairs_to_csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """[n] user ids, [n] item ids -> [n_users, n_items] 0/1 CSR (duplicates collapse to 1)."""
    data = np.ones(len(users), np.float32)
    mat = sp.csr_matrix((data, (users, items)), shape=(n_users, n_items), dtype=np.float32)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def _dedup_in_order(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Returns the [n', 2] pairs with repeated (user, item) removed, first occurrence kept."""
    pairs = np.stack([users, items], 1).astype(np.int64)
    _, first = np.unique(pairs[:, 0] * (pairs[:, 1].max(initial=0) + 1) + pairs[:, 1], return_index=True)
    return pairs[np.sort(first)].astype(np.int32)


def make_interactions(name, train_pairs, test_pairs, valid_pairs=None, n_users=None, n_items=None):
    """Builds `Interactions` from [n, 2] (user, item) arrays, with the one shared size definition."""
    parts = [p for p in (train_pairs, test_pairs, valid_pairs) if p is not None and len(p)]
    stacked = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    n_users = int(n_users if n_users is not None else stacked[:, 0].max() + 1)
    n_items = int(n_items if n_items is not None else stacked[:, 1].max() + 1)
    train_pairs = _dedup_in_order(train_pairs[:, 0], train_pairs[:, 1])

    def csr(p):
        return pairs_to_csr(p[:, 0], p[:, 1], n_users, n_items)

    valid = None if valid_pairs is None else csr(np.asarray(valid_pairs))
    return Interactions(name, csr(train_pairs), csr(np.asarray(test_pairs)), valid, train_pairs)


# ----------------------------------------------------------------------------- LightGCN text


def read_user_item_lists(path: str) -> np.ndarray:
    """Reads `user item item ...` lines into [n, 2] int64 (user, item) pairs in file order."""
    users, items = [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                ids = [int(x) for x in fields]
            except ValueError:
                raise DataFormatError(
                    f"{path}:{lineno}: expected integer ids `user item item ...`, got {line.strip()[:80]!r}"
                ) from None
            if min(ids) < 0:
                raise DataFormatError(f"{path}:{lineno}: negative id in {line.strip()[:80]!r}")
            users.extend([ids[0]] * (len(ids) - 1))
            items.extend(ids[1:])
    return np.stack([np.asarray(users, np.int64), np.asarray(items, np.int64)], 1).reshape(-1, 2)


def load_lightgcn_text(directory: str, name: str | None = None) -> Interactions:
    """Loads `train.txt`, `test.txt` and (if present) `valid.txt` from a LightGCN/BARS folder."""
    for required in ("train.txt", "test.txt"):
        if not os.path.exists(os.path.join(directory, required)):
            raise FileNotFoundError(f"{os.path.join(directory, required)} not found (LightGCN text data set)")
    train = read_user_item_lists(os.path.join(directory, "train.txt"))
    test = read_user_item_lists(os.path.join(directory, "test.txt"))
    valid_path = os.path.join(directory, "valid.txt")
    valid = read_user_item_lists(valid_path) if os.path.exists(valid_path) else None
    return make_interactions(name or os.path.basename(os.path.normpath(directory)), train, test, valid)


# ----------------------------------------------------------------------------- RecBole atomic


def read_recbole_inter(path: str) -> dict[str, np.ndarray]:
    """Reads a RecBole `.inter` file: returns {"user": str[n], "item": str[n], "rating"?, "timestamp"?}."""
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        names = [h.split(":")[0] for h in header]
        for required in ("user_id", "item_id"):
            if required not in names:
                raise DataFormatError(f"{path}:1: header {header} has no `{required}:token` field")
        columns = {n: [] for n in names}
        for lineno, line in enumerate(f, 2):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(names):
                raise DataFormatError(
                    f"{path}:{lineno}: expected {len(names)} tab-separated fields {names}, got {len(fields)}"
                )
            for n, v in zip(names, fields):
                columns[n].append(v)
    out = {"user": np.asarray(columns["user_id"]), "item": np.asarray(columns["item_id"])}
    for field in ("rating", "timestamp"):
        if field in columns:
            try:
                out[field] = np.asarray(columns[field], np.float64)
            except ValueError as e:
                raise DataFormatError(f"{path}: non-numeric `{field}` value ({e})") from None
    return out


def load_recbole_inter(
    path: str,
    *,
    split: str = "leave_one_out",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    min_rating: float = 0.0,
    with_valid: bool = True,
    seed: int = 0,
) -> Interactions:
    """Loads a RecBole `.inter` file as implicit feedback and splits it per user.

    split="leave_one_out": each user's last interaction (by timestamp, then file order) is the test item
      and, if `with_valid`, the one before is the valid item (users with fewer than 3 keep the rest in train).
    split="ratio": each user's interactions, in time order (random order with `seed` if there is no
      timestamp), are cut into train/valid/test by `ratios`.
    Ratings below `min_rating` are dropped. Tokens map to ids in order of first appearance.
    """
    raw = read_recbole_inter(path)
    keep = raw["rating"] >= min_rating if "rating" in raw else np.ones(len(raw["user"]), bool)
    user_tok, item_tok = raw["user"][keep], raw["item"][keep]
    users = _tokens_to_ids(user_tok)
    items = _tokens_to_ids(item_tok)
    rng = np.random.default_rng(seed)
    order_key = raw["timestamp"][keep] if "timestamp" in raw else rng.permutation(len(users)).astype(np.float64)
    # Sort by user, then time, then file position (stable) so each user's history is chronological.
    order = np.lexsort((np.arange(len(users)), order_key, users))
    users, items = users[order], items[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    role = np.zeros(len(users), np.int8)  # 0 train, 1 valid, 2 test
    for s, e in zip(starts, ends):
        n = e - s
        if split == "leave_one_out":
            if n >= 2:
                role[e - 1] = 2
            if with_valid and n >= 3:
                role[e - 2] = 1
        elif split == "ratio":
            n_test = int(round(n * ratios[2]))
            n_valid = int(round(n * ratios[1])) if with_valid else 0
            n_train = max(n - n_test - n_valid, 1)
            role[s + n_train : s + n_train + n_valid] = 1
            role[s + n_train + n_valid : e] = 2
        else:
            raise ValueError(f"Unknown split {split!r}; expected 'leave_one_out' or 'ratio'")
    pairs = np.stack([users, items], 1)
    name = os.path.splitext(os.path.basename(path))[0]
    return make_interactions(
        name,
        pairs[role == 0],
        pairs[role == 2],
        pairs[role == 1] if with_valid else None,
        n_users=users.max() + 1,
        n_items=items.max() + 1,
    )


def _tokens_to_ids(tokens: np.ndarray) -> np.ndarray:
    _, first, inverse = np.unique(tokens, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse]


# ----------------------------------------------------------------------------- splits


def carve_validation(data: Interactions, fraction: float = 0.1, seed: int = 0) -> Interactions:
    """Moves a seeded `fraction` of each user's train items into `valid` (users with < 2 keep all).

    The honest protocol selects epochs and fusion constants on this split (spec sad.md §8).
    """
    rng = np.random.default_rng(seed)
    pairs = data.train_pairs
    is_valid = np.zeros(len(pairs), bool)
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    ends = np.r_[starts[1:], len(pairs)]
    for s, e in zip(starts, ends):
        n_valid = int(np.floor((e - s) * fraction))
        if e - s >= 2 and n_valid > 0:
            is_valid[s + rng.choice(e - s, n_valid, replace=False)] = True
    return make_interactions(
        data.name + "_carved", pairs[~is_valid], _csr_pairs(data.test), pairs[is_valid],
        n_users=data.n_users, n_items=data.n_items,
    )


def with_train_as(data: Interactions, train_pairs: np.ndarray, test: sp.csr_matrix, name: str) -> Interactions:
    """Same catalogue, new train pairs and test matrix (used to evaluate on valid during selection)."""
    return make_interactions(name, train_pairs, _csr_pairs(test), None, n_users=data.n_users, n_items=data.n_items)


def _csr_pairs(mat: sp.csr_matrix) -> np.ndarray:
    coo = mat.tocoo()
    return np.stack([coo.row, coo.col], 1).astype(np.int64).reshape(-1, 2)


# ----------------------------------------------------------------------------- synthetic


def synthetic_long_tail(
    n_users: int = 600,
    n_items: int = 400,
    dim: int = 8,
    mean_items_per_user: float = 30.0,
    popularity_exponent: float = 1.0,
    temperature: float = 3.0,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.0,
    seed: int = 0,
) -> Interactions:
    """A long-tail implicit data set: latent taste + power-law item popularity.

    User u picks n_u ~ 1 + Poisson(mean - 1) distinct items with probability
    proportional to `rank(i)^-popularity_exponent * exp(temperature * <z_u, v_i>)` (Gumbel top-k),
    with z_u, v_i ~ N(0, I/sqrt(dim)). Each user's items are split at random into train/valid/test.
    """
    rng = np.random.default_rng(seed)
    # Scaled so that <z_u, v_i> has unit variance whatever `dim` is.
    z = rng.normal(size=(n_users, dim)) / dim**0.25
    v = rng.normal(size=(n_items, dim)) / dim**0.25
    log_pop = -popularity_exponent * np.log(np.arange(1, n_items + 1))[rng.permutation(n_items)]
    logits = log_pop[None, :] + temperature * z @ v.T  # [n_users, n_items]
    counts = np.minimum(1 + rng.poisson(mean_items_per_user - 1, n_users), n_items - 1)
    gumbel = rng.gumbel(size=logits.shape)
    chosen = np.argsort(-(logits + gumbel), axis=1)
    train, valid, test = [], [], []
    for u in range(n_users):
        items = chosen[u, : counts[u]]
        n_test = max(1, int(round(len(items) * test_fraction)))
        n_valid = int(round(len(items) * valid_fraction))
        test += [(u, i) for i in items[:n_test]]
        valid += [(u, i) for i in items[n_test : n_test + n_valid]]
        train += [(u, i) for i in np.sort(items[n_test + n_valid :])]
    as_arr = lambda p: np.asarray(p, np.int64).reshape(-1, 2)
    return make_interactions(
        "synthetic", as_arr(train), as_arr(test), as_arr(valid) if valid_fraction > 0 else None,
        n_users=n_users, n_items=n_items,
    )
