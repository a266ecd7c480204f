"""RecLM data (spec decoding-reclm.md §5.1-§5.2): readers, the paper's filtering, unique titles,
the leave-one-out split and the SFT samples redrawn on every access.

Readers return `(interactions, titles)`: `interactions` a list of (user, item, time) raw tokens in
file order, `titles` {raw item: title}. Every format error names the file and the line:

* `read_recbole(inter_path, item_path)`: RecBole atomic files (the offline ML-100K stand-in);
* `read_amazon(review_path, meta_path)`: Amazon 2018 5-core reviews (`reviewerID`, `asin`,
  `overall`, `unixReviewTime`) and metadata (`asin`, `title`, `category`), JSON lines, `.gz` or plain;
* `read_steam(review_path, meta_path)`: the SASRec Steam set (`username`, `product_id`, `date`
  YYYY-MM-DD; games `id`, `app_name` or `title`), JSON or Python-literal dict lines.

`build_dataset` applies §5.1 (items with a title [and category], first interaction per (user, item),
time order, users with >= `min_len` kept and truncated to their first `max_len`, `n_users` drawn with
`random.seed(seed); random.choices` i.e. with replacement), makes titles unique with the reference's
" (k)" suffixes and maps everything to dense ids (item i = `titles[i]`).
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import gzip
import json
import random
from collections.abc import Callable, Sequence

import numpy as np

from humanai_jax.recsys.data import DataFormatError, read_atomic_rows

# ------------------------------------------------------------------------------ readers


def _open(path: str):
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")


def _records(path: str, *, literal_ok: bool = False):
    """(line number, dict) per non-empty line of a JSON-lines (or Python-literal) file."""
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                if not literal_ok:
                    raise DataFormatError(f"{path}:{lineno}: not a JSON object ({e.msg})") from None
                try:
                    rec = ast.literal_eval(line.strip())
                except (ValueError, SyntaxError):
                    raise DataFormatError(f"{path}:{lineno}: neither JSON nor a Python dict literal") from None
            if not isinstance(rec, dict):
                raise DataFormatError(f"{path}:{lineno}: expected an object, got {type(rec).__name__}")
            yield lineno, rec


def _field(rec: dict, names: Sequence[str], path: str, lineno: int):
    for n in names:
        if n in rec:
            return rec[n]
    raise DataFormatError(f"{path}:{lineno}: missing field {' / '.join(repr(n) for n in names)}")


def read_recbole(inter_path: str, item_path: str) -> tuple[list[tuple[str, str, float]], dict[str, str]]:
    """RecBole `.inter` (`user_id`, `item_id`, `timestamp`) and `.item` (`item_id` and a title field:
    `movie_title` or `title`)."""
    names, rows = read_atomic_rows(inter_path, ("user_id", "item_id", "timestamp"))
    col = {n: i for i, n in enumerate(names)}
    inter = []
    for lineno, fields in rows:
        try:
            ts = float(fields[col["timestamp"]])
        except ValueError:
            raise DataFormatError(f"{inter_path}:{lineno}: timestamp {fields[col['timestamp']]!r} is not a "
                                  "number") from None
        inter.append((fields[col["user_id"]], fields[col["item_id"]], ts))
    names, rows = read_atomic_rows(item_path, ("item_id",))
    title_col = next((n for n in ("movie_title", "title") if n in names), None)
    if title_col is None:
        raise DataFormatError(f"{item_path}:1: header {names} has no `movie_title` or `title` field")
    col = {n: i for i, n in enumerate(names)}
    titles = {fields[col["item_id"]]: fields[col[title_col]].strip() for _, fields in rows}
    return inter, titles


def read_amazon(review_path: str, meta_path: str) -> tuple[list[tuple[str, str, float]], dict[str, str]]:
    """Amazon 2018 reviews + metadata. Items need a non-empty title and category (the reference);
    the rating filter `overall <= -0.1` of the reference keeps everything, so `overall` is only checked."""
    titles = {}
    for lineno, rec in _records(meta_path):
        asin = _field(rec, ("asin",), meta_path, lineno)
        title, category = rec.get("title"), rec.get("category")
        if not title or not category:
            continue
        if not isinstance(title, str):
            raise DataFormatError(f"{meta_path}:{lineno}: title is {type(title).__name__}, not a string")
        # the reference: re.sub(r'\n\t', ' ', title).strip()
        titles[str(asin)] = title.replace("\n\t", " ").strip()
    inter = []
    for lineno, rec in _records(review_path):
        user = _field(rec, ("reviewerID",), review_path, lineno)
        item = _field(rec, ("asin",), review_path, lineno)
        try:
            float(_field(rec, ("overall",), review_path, lineno))
            ts = float(_field(rec, ("unixReviewTime",), review_path, lineno))
        except (TypeError, ValueError):
            raise DataFormatError(f"{review_path}:{lineno}: `overall` / `unixReviewTime` is not a number") from None
        if str(item) in titles:
            inter.append((str(user), str(item), ts))
    return inter, titles


def read_steam(review_path: str, meta_path: str) -> tuple[list[tuple[str, str, float]], dict[str, str]]:
    """Steam reviews (`username`/`user_id`, `product_id`, `date` as YYYY-MM-DD) and games (`id`,
    `app_name`/`title`). Lines may be JSON or Python dict literals (the SASRec release uses the latter)."""
    titles = {}
    for _, rec in _records(meta_path, literal_ok=True):
        if "id" not in rec:
            continue  # the games file has a few rows without an id; they cannot be referenced
        title = rec.get("app_name") or rec.get("title")
        if title:
            titles[str(rec["id"])] = str(title).strip()
    inter = []
    for lineno, rec in _records(review_path, literal_ok=True):
        user = _field(rec, ("username", "user_id"), review_path, lineno)
        item = _field(rec, ("product_id",), review_path, lineno)
        date = _field(rec, ("date",), review_path, lineno)
        try:
            ts = datetime.datetime.strptime(str(date), "%Y-%m-%d").timestamp()
        except ValueError:
            raise DataFormatError(f"{review_path}:{lineno}: date {date!r} is not YYYY-MM-DD") from None
        if str(item) in titles:
            inter.append((str(user), str(item), ts))
    return inter, titles


# ------------------------------------------------------------------------------ the data set


@dataclasses.dataclass(frozen=True)
class RecData:
    """`titles [I]` unique strings (item i's title); `sequences [U]` item ids in time order (length
    `max_len` after filtering); `report`: counts of each filtering step."""

    name: str
    titles: list[str]
    sequences: list[list[int]]
    report: dict

    @property
    def n_items(self) -> int:
        return len(self.titles)


def unique_titles(titles: Sequence[str]) -> list[str]:
    """The reference's `reformat_repeat_title`: a title already taken gets the first free " (k)", k >= 1."""
    seen, out = set(), []
    for t in titles:
        if t in seen:
            k = 1
            while f"{t} ({k})" in seen:
                k += 1
            t = f"{t} ({k})"
        seen.add(t)
        out.append(t)
    return out


def build_dataset(
    name: str,
    interactions: Sequence[tuple[str, str, float]],
    titles: dict[str, str],
    *,
    min_len: int = 17,
    max_len: int = 17,
    n_users: int = 10000,
    seed: int = 0,
    title_fn: Callable[[str], str] | None = None,
) -> RecData:
    """§5.1 filtering (module docstring). `title_fn` maps a raw title to the reference's `title_t`
    (decode(encode(title))); uniqueness is enforced after it."""
    first: dict[tuple[str, str], float] = {}
    order: list[tuple[str, str]] = []
    dropped_no_title = 0
    for user, item, ts in interactions:
        if not titles.get(item):
            dropped_no_title += 1
            continue
        if (user, item) not in first:  # keep the first record of a repeated (user, item)
            first[(user, item)] = ts
            order.append((user, item))
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    for pos, (user, item) in enumerate(order):
        per_user.setdefault(user, []).append((first[(user, item)], pos, item))
    seqs = {u: [it for _, _, it in sorted(v)][:max_len] for u, v in per_user.items() if len(v) >= min_len}
    if not seqs:
        raise ValueError(f"{name}: no user has >= {min_len} interactions with titled items")
    random.seed(seed)  # the reference: random.seed(0); random.choices(list(valid_users), k=10000)
    drawn = random.choices(list(seqs), k=n_users)
    users = list(dict.fromkeys(drawn))  # a dict of the draws: duplicates collapse, first-draw order kept
    item_ids: dict[str, int] = {}
    for u in users:
        for it in seqs[u]:
            item_ids.setdefault(it, len(item_ids))
    raw = [titles[it] for it in item_ids]
    if title_fn is not None:
        raw = [title_fn(t) for t in raw]
    uniq = unique_titles(raw)
    sequences = [[item_ids[it] for it in seqs[u]] for u in users]
    report = {"interactions": len(interactions), "dropped_no_title": dropped_no_title,
              "unique_pairs": len(order), "users_total": len(per_user), f"users_ge_{min_len}": len(seqs),
              "users_drawn": n_users, "users_unique": len(users), "items": len(uniq),
              "titles_suffixed": int(sum(a != b for a, b in zip(raw, uniq)))}
    return RecData(name, uniq, sequences, report)


# ------------------------------------------------------------------------------ split


@dataclasses.dataclass(frozen=True)
class EvalCase:
    """One held-out prediction: `user` index, `history` item ids (oldest first), `target` item id,
    `seen` every item of the user before the target (for full-ranking baselines)."""

    user: int
    history: list[int]
    target: int
    seen: list[int]


def train_part(seq: Sequence[int]) -> list[int]:
    return list(seq[:-2])


def eval_cases(sequences: Sequence[Sequence[int]], split: str, history_len: int = 10) -> list[EvalCase]:
    """Leave-one-out (§5.2): val target `seq[-2]` with history `seq[-12:-2]`; test `seq[-1]`, `seq[-11:-1]`."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    end = -2 if split == "val" else -1
    out = []
    for u, seq in enumerate(sequences):
        if len(seq) < 3:
            raise ValueError(f"user {u} has {len(seq)} interactions; leave-one-out needs >= 3")
        t = len(seq) + end
        out.append(EvalCase(u, list(seq[max(0, t - history_len):t]), int(seq[t]), list(seq[:t])))
    return out


# ------------------------------------------------------------------------------ SFT samples

SYSTEM_PROMPT = "You are an expert recommender engine as well as a helpful, respectful and honest assistant."
_CS = ("Each item should be enclosed by <SOI> and <EOI>. <SOI> should be generated before item title, and <EOI> "
       "should be generated after item title.")
# SeqRec_CS_MR_group (RecAI RecLM-cgen/train_utils/template.py), verbatim, including the missing space
# after each first sentence.
TRAIN_TEMPLATES = (
    "You need to generate a recommendation list considering user's preference from historical interactions."
    "The historical interactions are provided as follows: {history}. "
    "Please generate a recommendation list with {item_count} different items. " + _CS,
    "You need to select a recommendation list considering user's preference from historical interactions."
    "The historical interactions are provided as follows: {history}. "
    "The candidate items are: {candidate_titles}. "
    "Please select a recommendation list with {item_count} different items from candidate items. " + _CS,
    "Your task is generating a recommendation list according user's preference from historical interactions."
    "The historical interactions are provided as follows: {history}. "
    "Please generate a recommendation list with {item_count} different items.",
    "Your task is selecting a recommendation list according user's preference from historical interactions."
    "The historical interactions are provided as follows: {history}. "
    "The candidate items are: {candidate_titles}. "
    "Please select a recommendation list with {item_count} different items from candidate items.",
)
# ValSeqRec_MR_group: the test prompt (no <SOI> instruction).
TEST_TEMPLATE = ("You need to generate a recommendation list considering user's preference from historical "
                 "interactions. The historical interactions are provided as follows: {history}. "
                 "Could you recommend me a list {item_count} different items? ")


def history_text(titles: Sequence[str], items: Sequence[int]) -> str:
    """Quoted titles joined by " → " (`get_history_text` over quoted titles)."""
    return " → ".join(f'"{titles[i]}"' for i in items)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One SFT example: the user message and the reply's item ids (the true next item first)."""

    prompt: str
    items: list[int]
    template: int


TeacherFn = Callable[[Sequence[int], int], list[int]]  # (history, k) -> top-k item ids


def draw_train_sample(rng: np.random.Generator, seq: Sequence[int], titles: Sequence[str], teacher: TeacherFn,
                      *, history_len: int = 10, max_items: int = 10) -> Sample:
    """§5.2: `t ~ U{1..len-1}` in the train part, `start ~ U{max(0, t-10)..t-1}`, `item_count ~ U{1..10}`;
    reply = ([target] + teacher top-k minus target)[:item_count]; candidate templates add random
    other items drawn with replacement up to 10, shuffled."""
    train = train_part(seq)
    if len(train) < 2:
        raise ValueError(f"a user's train part has {len(train)} items; samples need >= 2")
    t = int(rng.integers(1, len(train)))
    start = int(rng.integers(max(0, t - history_len), t))
    history, target = train[start:t], train[t]
    count = int(rng.integers(1, max_items + 1))
    reply = [target] + [i for i in teacher(history, count) if i != target]
    reply = reply[:count]
    template = int(rng.integers(len(TRAIN_TEMPLATES)))
    fields = {"history": history_text(titles, history), "item_count": count}
    if template in (1, 3):
        cands = list(reply)
        while len(cands) < max_items:
            cands.append(int(rng.integers(len(titles))))  # with replacement, as the reference
        rng.shuffle(cands)
        fields["candidate_titles"] = ", ".join(f'"{titles[i]}"' for i in cands)
    return Sample(TRAIN_TEMPLATES[template].format(**fields), reply, template)


# ValSeqRec_CS_MR_group: the test prompt with the <SOI> instruction.
TEST_TEMPLATE_CS = ("You need to generate a recommendation list considering user's preference from historical "
                    "interactions. The historical interactions are provided as follows: {history}. "
                    "Could you recommend me a list {item_count} different items? " + _CS)
EVAL_PROMPTS = {"reference": TEST_TEMPLATE, "reference_cs": TEST_TEMPLATE_CS, "train": TRAIN_TEMPLATES[0]}


def test_prompt(titles: Sequence[str], history: Sequence[int], item_count: int = 10, kind: str = "reference") -> str:
    """The evaluation prompt. kind: "reference" (ValSeqRec_MR_group, the reference's test prompt),
    "reference_cs" (ValSeqRec_CS_MR_group) or "train" (the first training template: the only phrasing
    a model trained from scratch has seen)."""
    if kind not in EVAL_PROMPTS:
        raise ValueError(f"unknown eval prompt {kind!r}; choose one of {sorted(EVAL_PROMPTS)}")
    return EVAL_PROMPTS[kind].format(history=history_text(titles, history), item_count=item_count)
