"""Binary data sets for weak-to-strong training (docs/oversight.md §1.3). Every loader returns a `BinaryData`
{train, test} of `BinarySplit`s: labels int {0, 1} [N], texts (text sets) and/or numeric arrays (toy).

  toy_latent          synthetic, CPU: y = 1(w·x > 0); the strong model's features hold w·x (+ noise) and
                      irrelevant noise dimensions; the weak model sees a noisy subset of x
  motivebench_binary  ../shared/data/motivebench/*_questions.json: "Q: {stem} A: {option}", gold option
                      (label 1) or one random wrong option (label 0) by a coin flip per item; 600 items
                      (3 tasks × 200 scenarios); test = a fixed 20% of the scenarios
  blog_need           ../shared/data/motivebench/blog_extracted.json: blog_text -> "Love and Belonging
                      Needs" (1) vs other (0); test = a fixed 20% of the posts
  hf                  any HF `datasets` set with a text and a binary label column (local files or cache)

Malformed records raise naming the file and line (JSON files) or the split and row (HF sets).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence

import numpy as np

QUESTION_FILES = ("Amazon_questions.json", "Blog_questions.json", "Persona_questions.json")
TASK_KEYS = (("Motivation Reasoning Question", "Options 1", "Correct Answer 1"),
             ("Behavior Reasoning Question", "Options 2", "Correct Answer 2"),
             ("Motivation and Behavior Reasoning Question", "Options 3", "Correct Answer 3"))
NEED_KEY, POSITIVE_NEED = "High-level Need Category", "Love and Belonging Needs"
TEST_SPLIT_SEED = 0  # the fixed test split of the offline sets (independent of the run seed)


@dataclasses.dataclass
class BinarySplit:
    labels: np.ndarray  # int32 [N] in {0, 1}
    texts: list[str] | None = None
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # name -> [N, ...]
    ids: list[str] | None = None

    def __post_init__(self):
        self.labels = np.asarray(self.labels, np.int32)
        n = len(self.labels)
        if not np.isin(self.labels, (0, 1)).all():
            raise ValueError("labels must be 0 or 1")
        for name, a in self.arrays.items():
            if len(a) != n:
                raise ValueError(f"array {name!r} has {len(a)} rows, labels {n}")
        if self.texts is not None and len(self.texts) != n:
            raise ValueError(f"{len(self.texts)} texts for {n} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: Sequence[int]) -> BinarySplit:
        idx = np.asarray(idx, dtype=np.int64)
        return BinarySplit(self.labels[idx], None if self.texts is None else [self.texts[i] for i in idx],
                           {k: v[idx] for k, v in self.arrays.items()},
                           None if self.ids is None else [self.ids[i] for i in idx])


@dataclasses.dataclass
class BinaryData:
    train: BinarySplit
    test: BinarySplit
    name: str = ""


# ------------------------------------------------------------------------------------------ toy
def toy_latent(*, n_train: int = 4000, n_test: int = 1000, dim: int = 16, weak_dims: int = 6,
               weak_noise: float = 0.5, noise_features: int = 64, signal_noise: float = 0.1,
               seed: int = 0) -> BinaryData:
    """x ~ N(0, I_dim), w ~ N(0, I) / |w|, y = 1(w·x > 0).

    features [N, 1 + noise_features] (the strong model's latent knowledge): [w·x + signal_noise·ε, z] with
        z ~ N(0, I) irrelevant dimensions, in which a linear head trained on few noisy labels can memorise
        label noise (imitate its supervisor's errors);
    weak_x [N, weak_dims]: the first `weak_dims` coordinates of x plus weak_noise·N(0, 1).
    A pure function of the arguments.
    """
    if not 0 < weak_dims <= dim:
        raise ValueError(f"toy_latent: weak_dims must be in [1, dim={dim}], got {weak_dims}")
    rng = np.random.default_rng(seed)
    w = rng.normal(size=dim)
    w /= np.linalg.norm(w)
    n = n_train + n_test
    x = rng.normal(size=(n, dim))
    score = x @ w
    labels = (score > 0).astype(np.int32)
    signal = score + signal_noise * rng.normal(size=n)
    features = np.concatenate([signal[:, None], rng.normal(size=(n, noise_features))], axis=1).astype(np.float32)
    weak_x = (x[:, :weak_dims] + weak_noise * rng.normal(size=(n, weak_dims))).astype(np.float32)
    full = BinarySplit(labels, arrays={"features": features, "weak_x": weak_x}, ids=[f"toy{i}" for i in range(n)])
    return BinaryData(full.take(range(n_train)), full.take(range(n_train, n)), "toy_latent")


# ------------------------------------------------------------------------------------------ JSON files
def _array_record_lines(text: str, path: str) -> list[int]:
    """1-based line of each element of a top-level JSON array (for error messages)."""
    decoder, lines = json.JSONDecoder(), []
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return lines
        lines.append(text.count("\n", 0, pos) + 1)
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None


def _load_json(path: str):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist (MotiveBench data: ../shared/data/motivebench/)")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None


_LETTER_PREFIX = re.compile(r"^\s*([A-F])[.)]\s*")


def motivebench_items(data_dir: str) -> list[dict]:
    """All MotiveBench multiple-choice items: {id, scenario, task, stem, options (prefix stripped), gold (index)}."""
    items = []
    for fname in QUESTION_FILES:
        path = os.path.join(data_dir, fname)
        text, records = _load_json(path)
        if not isinstance(records, list):
            raise ValueError(f"{path}:1: expected a JSON array of scenarios")
        lines = _array_record_lines(text, path)
        source = fname.split("_")[0].lower()
        for rec, line in zip(records, lines):
            for task, (q_key, o_key, a_key) in enumerate(TASK_KEYS):
                missing = [k for k in (q_key, o_key, a_key, "idx") if k not in rec]
                if missing:
                    raise ValueError(f"{path}:{line}: scenario record lacks {missing}")
                opts, gold = rec[o_key], str(rec[a_key]).strip()
                letters = [(_LETTER_PREFIX.match(o) or [None, None])[1] for o in opts]
                if gold not in letters:
                    raise ValueError(f"{path}:{line}: {a_key}={gold!r} is not one of the option letters {letters}")
                items.append({"id": f"{source}/{rec['idx']}/{task + 1}", "scenario": f"{source}/{rec['idx']}",
                              "task": task + 1, "stem": rec[q_key].strip(),
                              "options": [_LETTER_PREFIX.sub("", o).strip() for o in opts],
                              "gold": letters.index(gold)})
    return items


def _scenario_test_split(keys: Sequence[str], test_frac: float) -> np.ndarray:
    """Bool [N]: rows whose key is in a fixed `test_frac` of the distinct keys (seed TEST_SPLIT_SEED)."""
    distinct = sorted(set(keys))
    perm = np.random.default_rng(TEST_SPLIT_SEED).permutation(len(distinct))
    test = {distinct[i] for i in perm[: round(test_frac * len(distinct))]}
    return np.array([k in test for k in keys])


def motivebench_binary(data_dir: str, *, test_frac: float = 0.2, seed: int = 0) -> BinaryData:
    """sciq-style binarised MotiveBench (module doc); `seed` draws the coin flips and wrong options."""
    items = motivebench_items(data_dir)
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for it in items:
        label = int(rng.random() < 0.5)
        wrong = [i for i in range(len(it["options"])) if i != it["gold"]]
        opt = it["gold"] if label else wrong[int(rng.integers(len(wrong)))]
        texts.append(f"Q: {it['stem']} A: {it['options'][opt]}")
        labels.append(label)
    full = BinarySplit(np.array(labels), texts, ids=[it["id"] for it in items])
    test = _scenario_test_split([it["scenario"] for it in items], test_frac)
    return BinaryData(full.take(np.flatnonzero(~test)), full.take(np.flatnonzero(test)), "motivebench_binary")


def blog_need(path: str, *, test_frac: float = 0.2) -> BinaryData:
    """blog_text -> 1 if the high-level need is "Love and Belonging Needs" else 0 (233 / 398)."""
    text, records = _load_json(path)
    if not isinstance(records, dict):
        raise ValueError(f"{path}:1: expected a JSON object of posts keyed by id")
    ids, texts, labels = [], [], []
    for key, rec in records.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("blog_text"), str) or NEED_KEY not in rec:
            line = text.count("\n", 0, max(text.find(json.dumps(key)), 0)) + 1
            raise ValueError(f"{path}:{line}: post {key!r} needs a string 'blog_text' and {NEED_KEY!r}")
        ids.append(key)
        texts.append(rec["blog_text"].strip())
        labels.append(int(rec[NEED_KEY] == POSITIVE_NEED))
    full = BinarySplit(np.array(labels), texts, ids=ids)
    test = _scenario_test_split(ids, test_frac)
    return BinaryData(full.take(np.flatnonzero(~test)), full.take(np.flatnonzero(test)), "blog_need")


# ------------------------------------------------------------------------------------------ HF datasets
def _hf_split(ds, split_name: str, text_field: str, label_field: str) -> BinarySplit:
    for f in (text_field, label_field):
        if f not in ds.column_names:
            raise ValueError(f"HF split {split_name!r} has no column {f!r}; columns: {ds.column_names}")
    texts, labels = [], []
    for i, (t, y) in enumerate(zip(ds[text_field], ds[label_field])):
        if not isinstance(t, str):
            raise ValueError(f"HF split {split_name!r} row {i}: {text_field!r} is not a string: {t!r}")
        if y not in (0, 1, True, False):
            raise ValueError(f"HF split {split_name!r} row {i}: {label_field!r} must be 0/1 or bool, got {y!r}")
        texts.append(t)
        labels.append(int(y))
    return BinarySplit(np.array(labels), texts, ids=[f"{split_name}/{i}" for i in range(len(texts))])


def hf_binary(path: str, *, name: str = "", data_files: str = "", train_split: str = "train",
              test_split: str = "test", text_field: str = "text", label_field: str = "label") -> BinaryData:
    """A HF `datasets` set with a text and a 0/1 (or bool) label column, e.g. path="json",
    data_files="/data/x.jsonl" (then `train_split`/`test_split` may be slices such as "train[:80%]"),
    or a local dataset dir / a cached hub name (offline)."""
    try:
        import datasets
    except ImportError as e:
        raise ImportError("data.name='hf' needs the `datasets` package (pip install datasets)") from e
    kw = {"data_files": data_files} if data_files else {}
    load = lambda split: datasets.load_dataset(path, name or None, split=split, **kw)  # noqa: E731
    return BinaryData(_hf_split(load(train_split), train_split, text_field, label_field),
                      _hf_split(load(test_split), test_split, text_field, label_field), f"hf:{path}")


def build(data_cfg, shared_dir: str) -> BinaryData:
    """The data set named by `data_cfg.name` (toy_latent | motivebench_binary | blog_need | hf)."""
    name = data_cfg.name
    if name == "toy_latent":
        t = data_cfg.toy
        return toy_latent(n_train=t.n_train, n_test=t.n_test, dim=t.dim, weak_dims=t.weak_dims,
                          weak_noise=t.weak_noise, noise_features=t.noise_features, signal_noise=t.signal_noise,
                          seed=data_cfg.seed)
    if name == "motivebench_binary":
        return motivebench_binary(data_cfg.dir or os.path.join(shared_dir, "motivebench"), seed=data_cfg.seed)
    if name == "blog_need":
        return blog_need(os.path.join(data_cfg.dir or os.path.join(shared_dir, "motivebench"), "blog_extracted.json"))
    if name == "hf":
        h = data_cfg.hf
        return hf_binary(h.path, name=h.name, data_files=h.data_files, train_split=h.train_split,
                         test_split=h.test_split, text_field=h.text_field, label_field=h.label_field)
    raise ValueError(f"data.name must be toy_latent, motivebench_binary, blog_need or hf, got {name!r}")


def encode_texts(tokenizer, texts: Sequence[str], max_ctx: int, *, truncate: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tokens int32 [N_kept, T], mask int32 [N_kept, T], kept bool [N]): right-padded with the pad id (EOS if
    none); T = the longest kept input. Inputs of >= max_ctx tokens are dropped (docs/oversight.md §1.1), or with
    `truncate` cut to their first max_ctx - 1 tokens (a deviation for long-text sets such as blog_need)."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    if truncate:
        ids = [x[: max_ctx - 1] for x in ids]
    kept = np.array([0 < len(x) < max_ctx for x in ids])
    rows = [x for x, k in zip(ids, kept) if k]
    if not rows:
        raise ValueError(f"every input has >= max_ctx={max_ctx} tokens (or none): nothing to train on")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    T = max(len(x) for x in rows)
    tokens = np.full((len(rows), T), pad, np.int32)
    mask = np.zeros((len(rows), T), np.int32)
    for i, x in enumerate(rows):
        tokens[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return tokens, mask, kept
