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
    return read_user_item_lists_with_lines(path)[0]


def read_user_item_lists_with_lines(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads `user item item ...` lines: ([n, 2] int64 (user, item) pairs in file order, [n] line numbers)."""
    users, items, lines = [], [], []
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
            lines.extend([lineno] * (len(ids) - 1))
    pairs = np.stack([np.asarray(users, np.int64), np.asarray(items, np.int64)], 1).reshape(-1, 2)
    return pairs, np.asarray(lines, np.int64)


# An id space may have gaps (items filtered out upstream), but max id + 1 sizes every matrix: ids this far
# beyond the number of distinct ids are a corrupt file, not a catalogue (spec sad.md §9: contiguous ids).
MAX_ID_SPARSITY = 2.0
MAX_ID_SLACK = 1000


def check_id_ranges(files: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Refuses ids so large that sizing matrices by max id + 1 would be absurd (e.g. 10^7 among 3,000 items).

    files: {path: ([n, 2] pairs, [n] line numbers)}. Raises DataFormatError naming the file and line of the
    largest id, before anything of size max id + 1 is allocated.
    """
    for col, kind in ((0, "user"), (1, "item")):
        ids = np.concatenate([p[:, col] for p, _ in files.values()])
        if not len(ids):
            continue
        n_distinct = len(np.unique(ids))
        top = int(ids.max())
        if top + 1 > MAX_ID_SPARSITY * n_distinct + MAX_ID_SLACK:
            path, line = _locate(files, col, top)
            raise DataFormatError(
                f"{path}:{line}: {kind} id {top:,} but only {n_distinct:,} distinct {kind} ids in "
                f"{', '.join(os.path.basename(f) for f in files)}; ids must be 0-based and (nearly) contiguous, "
                f"since every matrix is sized max id + 1 = {top + 1:,}. Re-index the ids."
            )


def _locate(files, col: int, value: int) -> tuple[str, int]:
    for path, (pairs, lines) in files.items():
        hit = np.flatnonzero(pairs[:, col] == value)
        if len(hit):
            return path, int(lines[hit[0]])
    raise AssertionError("value not found")


TEST_ONLY_POLICIES = ("error", "drop", "keep")


def check_test_only_ids(train_file, other_files: dict, policy: str = "error") -> dict:
    """Users or items that appear in test/valid but never in train (cold ids).

    train_file: (path, pairs, lines); other_files: {path: (pairs, lines)}. policy "error" raises a
    DataFormatError naming the first such id's file and line; "drop" removes those pairs (returned counts
    say how many); "keep" keeps them (item-item models can never rank a cold item). Returns
    {"test_only_items": n, "test_only_users": n, "dropped_pairs": n} and drops in place in `other_files`.
    """
    if policy not in TEST_ONLY_POLICIES:
        raise ValueError(f"test_only_ids={policy!r} is not supported; choose one of {TEST_ONLY_POLICIES}")
    train_path, train_pairs, _ = train_file
    known = [set(np.unique(train_pairs[:, 0]).tolist()), set(np.unique(train_pairs[:, 1]).tolist())]
    stats = {"test_only_users": 0, "test_only_items": 0, "dropped_pairs": 0}
    for path, (pairs, lines) in list(other_files.items()):
        cold = np.zeros(len(pairs), bool)
        for col, kind in ((0, "user"), (1, "item")):
            is_cold = ~np.isin(pairs[:, col], np.fromiter(known[col], np.int64, len(known[col])))
            stats[f"test_only_{kind}s"] += len(np.unique(pairs[is_cold, col]))
            if is_cold.any() and policy == "error":
                first = int(np.flatnonzero(is_cold)[0])
                raise DataFormatError(
                    f"{path}:{lines[first]}: {kind} id {int(pairs[first, col])} appears here but never in "
                    f"{train_path} ({int(is_cold.sum())} such pairs in this file); set data.test_only_ids="
                    f"'drop' to remove them or 'keep' to keep them as cold {kind}s"
                )
            cold |= is_cold
        if policy == "drop" and cold.any():
            other_files[path] = (pairs[~cold], lines[~cold])
            stats["dropped_pairs"] += int(cold.sum())
    return stats


def load_lightgcn_text(directory: str, name: str | None = None, *, test_only_ids: str = "error") -> Interactions:
    """Loads `train.txt`, `test.txt` and (if present) `valid.txt` from a LightGCN/BARS folder.

    Refused with a DataFormatError naming the file (and line): an empty train or test file, an id far
    beyond the number of distinct ids (`check_id_ranges`), and (unless `test_only_ids` is "drop" or
    "keep") a user or item id that appears in test/valid but never in train.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory} is not a directory (LightGCN text data set: train.txt, test.txt)")
    for required in ("train.txt", "test.txt"):
        if not os.path.exists(os.path.join(directory, required)):
            raise FileNotFoundError(f"{os.path.join(directory, required)} not found (LightGCN text data set)")
    paths = {split: os.path.join(directory, f"{split}.txt") for split in ("train", "test", "valid")}
    files = {paths[s]: read_user_item_lists_with_lines(paths[s]) for s in ("train", "test")}
    if os.path.exists(paths["valid"]):
        files[paths["valid"]] = read_user_item_lists_with_lines(paths["valid"])
    for split in ("train", "test"):
        if not len(files[paths[split]][0]):
            raise DataFormatError(f"{paths[split]}: no (user, item) pairs; a {split} file must list at least one "
                                  f"`user item` line")
    check_id_ranges(files)
    train_pairs, train_lines = files.pop(paths["train"])
    check_test_only_ids((paths["train"], train_pairs, train_lines), files, test_only_ids)
    valid = files[paths["valid"]][0] if paths["valid"] in files else None
    return make_interactions(name or os.path.basename(os.path.normpath(directory)), train_pairs,
                             files[paths["test"]][0], valid)


# ----------------------------------------------------------------------------- RecBole atomic


def read_atomic_rows(path: str, required=(), *, encoding: str = "utf-8") -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(field names without their `:type`, [(line number, fields)]) of a RecBole atomic file (`.inter`, `.item`,
    `.user`: a typed tab-separated header, then one record per line; blank lines skipped). Raises
    DataFormatError naming file and line for a header without a `required` field or a row of the wrong width."""
    with open(path, encoding=encoding) as f:
        header = f.readline().rstrip("\n").split("\t")
        names = [h.split(":")[0] for h in header]
        missing = [r for r in required if r not in names]
        if missing:
            raise DataFormatError(f"{path}:1: header {header} has no {', '.join(f'`{r}`' for r in missing)} field")
        rows = []
        for lineno, line in enumerate(f, 2):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(names):
                raise DataFormatError(
                    f"{path}:{lineno}: expected {len(names)} tab-separated fields {names}, got {len(fields)}"
                )
            rows.append((lineno, fields))
    return names, rows


def read_recbole_inter(path: str) -> dict[str, np.ndarray]:
    """Reads a RecBole `.inter` file: returns {"user": str[n], "item": str[n], "rating"?, "timestamp"?}."""
    names, rows = read_atomic_rows(path, ("user_id", "item_id"))
    columns = {n: [fields[i] for _, fields in rows] for i, n in enumerate(names)}
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


def holdout_pairs(pairs: np.ndarray, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Splits [n, 2] (user, item) train pairs, grouped by user, into (train [n - v, 2], valid [v, 2]).

    Each user with >= 2 pairs gives floor(fraction * n_u) random pairs (seeded) to valid; file order is kept.
    Reads nothing but `pairs`: the honest protocol builds its validation split without the test set.
    """
    rng = np.random.default_rng(seed)
    is_valid = np.zeros(len(pairs), bool)
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    ends = np.r_[starts[1:], len(pairs)]
    for s, e in zip(starts, ends):
        n_valid = int(np.floor((e - s) * fraction))
        if e - s >= 2 and n_valid > 0:
            is_valid[s + rng.choice(e - s, n_valid, replace=False)] = True
    return pairs[~is_valid], pairs[is_valid]


def carve_validation(data: Interactions, fraction: float = 0.1, seed: int = 0) -> Interactions:
    """Moves a seeded `fraction` of each user's train items into `valid` (users with < 2 keep all).

    The honest protocol selects epochs and fusion constants on this split (spec sad.md §8).
    """
    train, valid = holdout_pairs(data.train_pairs, fraction, seed)
    return make_interactions(
        data.name + "_carved", train, _csr_pairs(data.test), valid,
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


# Published shapes of the BARS "_m1" splits (spec sad.md §9; LightGCN releases): users, items, train + test.
SHAPES = {
    "gowalla_m1": dict(n_users=29_858, n_items=40_981, n_interactions=1_027_370),
    "yelp18_m1": dict(n_users=31_668, n_items=38_048, n_interactions=1_561_406),
    "amazonbooks_m1": dict(n_users=52_643, n_items=91_599, n_interactions=2_984_108),
    "ml1m_m1": dict(n_users=6_022, n_items=3_043, n_interactions=895_699),
}


def synthetic_shaped(
    n_users: int,
    n_items: int,
    n_interactions: int,
    *,
    popularity_exponent: float = 0.8,
    min_degree: int = 10,
    n_clusters: int = 50,
    in_cluster: float = 0.7,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str = "synthetic_shaped",
) -> Interactions:
    """A data set with a given number of users, items and interactions and a long-tailed item popularity,
    sampled in O(interactions) memory (no U x I array), for testing scale without the real files.

    User degrees: `min_degree` + a geometric-like tail (the LightGCN sets are 10-core), scaled so the total
    is close to `n_interactions`. Items: Zipf popularity `rank^-popularity_exponent` plus a floor that gives
    every item about `min_degree` expected interactions. Structure: users and items fall in `n_clusters`
    clusters; a fraction `in_cluster` of each user's items is drawn (by popularity) from the user's own
    cluster, the rest from the whole catalogue, so item-item and embedding models have something to learn.
    Duplicates are removed (the total then falls a little short). Each user's items are split at random into
    train / test (`test_fraction`, at least one test item). Deterministic in `seed`.
    """
    rng = np.random.default_rng(seed)
    mean = n_interactions / n_users
    tail = rng.exponential(max(mean - min_degree, 1.0), n_users)
    # Oversampled by 15% for the duplicates removed below; trimmed back to n_interactions afterwards.
    degree = np.minimum(np.round(1.15 * (min_degree + tail)).astype(np.int64), n_items // 2)
    zipf = np.arange(1, n_items + 1, dtype=np.float64) ** -popularity_exponent
    weight = zipf / zipf.sum()
    floor = min_degree / n_interactions  # every item gets ~min_degree expected interactions
    weight = (weight + floor) / (1.0 + floor * n_items)
    weight = weight[rng.permutation(n_items)]
    item_cluster = rng.integers(0, n_clusters, n_items)
    user_cluster = rng.integers(0, n_clusters, n_users)
    # Per-cluster item lists with their cumulative popularity, for searchsorted sampling.
    order = np.argsort(item_cluster, kind="stable")
    bounds = np.searchsorted(item_cluster[order], np.arange(n_clusters + 1))
    cum_global = np.cumsum(weight)
    users = np.repeat(np.arange(n_users), degree)
    own = rng.random(len(users)) < in_cluster
    items = np.searchsorted(cum_global, rng.random(len(users)) * cum_global[-1])
    for c in range(n_clusters):
        members = order[bounds[c] : bounds[c + 1]]
        pick = own & (user_cluster[users] == c)
        if not len(members) or not pick.any():
            continue
        cum = np.cumsum(weight[members])
        items[pick] = members[np.searchsorted(cum, rng.random(int(pick.sum())) * cum[-1])]
    items = np.minimum(items, n_items - 1)
    keys = np.unique(users * n_items + items)  # sorted by user: dedup
    for _ in range(20):  # top up what the duplicates cost, from global popularity, to the target count
        short = n_interactions - len(keys)
        if short <= 0:
            break
        extra_users = rng.choice(users, int(short * 1.3) + 10)
        extra_items = np.searchsorted(cum_global, rng.random(len(extra_users)) * cum_global[-1])
        keys = np.union1d(keys, extra_users * n_items + np.minimum(extra_items, n_items - 1))
    if len(keys) > n_interactions:
        keys = np.sort(rng.choice(keys, n_interactions, replace=False))
    users, items = keys // n_items, keys % n_items
    # Per-user random train/test split.
    rank = np.empty(len(users), np.int64)
    perm = np.lexsort((rng.random(len(users)), users))
    starts = np.searchsorted(users[perm], np.arange(n_users))
    rank[perm] = np.arange(len(users)) - np.repeat(starts, np.bincount(users, minlength=n_users))
    n_user = np.bincount(users, minlength=n_users)
    n_test = np.maximum(1, np.round(n_user * test_fraction).astype(np.int64))
    is_test = rank < n_test[users]
    pairs = np.stack([users, items], 1)
    return make_interactions(name, pairs[~is_test], pairs[is_test], None, n_users=n_users, n_items=n_items)
