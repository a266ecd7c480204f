"""Corpora: a small English-like corpus generated offline, or text read from a file.

The generated corpus is a mix of short templated stories, counting runs and arithmetic facts. It is
a deterministic function of `seed`, needs no network, and has enough regular structure (grammar,
agreement, arithmetic) that a small model's loss falls visibly within a few hundred steps.
"""

from __future__ import annotations

import os

import numpy as np

from humanai_jax.data.jsonl import read_jsonl

_NAMES = ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Juno", "Kai", "Lena", "Milo", "Nia"]
_ANIMALS = ["cat", "dog", "fox", "owl", "horse", "rabbit", "goat", "duck", "bear", "mouse"]
_ADJS = ["small", "brave", "quiet", "clever", "sleepy", "happy", "old", "young", "curious", "tired"]
_PLACES = ["forest", "river", "market", "garden", "library", "hill", "kitchen", "harbour", "field", "school"]
_OBJECTS = ["apple", "map", "key", "book", "lamp", "stone", "coin", "letter", "basket", "hat"]
_VERBS = [("walked", "walks"), ("ran", "runs"), ("went", "goes"), ("hurried", "hurries"), ("wandered", "wanders")]
_FEELINGS = ["glad", "surprised", "proud", "calm", "curious"]
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]


def _story(rng: np.random.Generator) -> str:
    name, friend = rng.choice(_NAMES, 2, replace=False)
    animal, adj, place, obj = rng.choice(_ANIMALS), rng.choice(_ADJS), rng.choice(_PLACES), rng.choice(_OBJECTS)
    past, _ = _VERBS[rng.integers(len(_VERBS))]
    n = int(rng.integers(2, 10))
    feeling = rng.choice(_FEELINGS)
    return (
        f"{name} had a {adj} {animal}. One day {name} and the {animal} {past} to the {place}. "
        f"There they found {_NUMBER_WORDS[n]} {obj}s. {name} gave one {obj} to {friend}, "
        f"so {name} kept {_NUMBER_WORDS[n - 1]} {obj}s. {friend} was {feeling}, and the {animal} was {feeling} too."
    )


def _counting(rng: np.random.Generator) -> str:
    start, step = int(rng.integers(0, 50)), int(rng.integers(1, 6))
    values = [str(start + i * step) for i in range(int(rng.integers(6, 14)))]
    return f"Counting by {step} from {start}: " + ", ".join(values) + "."


def _arithmetic(rng: np.random.Generator) -> str:
    facts = []
    for _ in range(int(rng.integers(3, 7))):
        a, b = int(rng.integers(0, 20)), int(rng.integers(0, 20))
        if rng.random() < 0.5:
            facts.append(f"{a} plus {b} is {a + b}.")
        else:
            facts.append(f"{max(a, b)} minus {min(a, b)} is {max(a, b) - min(a, b)}.")
    return " ".join(facts)


def generate_corpus(num_docs: int, seed: int = 0) -> list[str]:
    """`num_docs` generated documents (about 200 characters each); a pure function of (num_docs, seed)."""
    rng = np.random.default_rng(seed)
    makers = (_story, _story, _counting, _arithmetic)
    return [makers[int(rng.integers(len(makers)))](rng) for _ in range(num_docs)]


def read_text_corpus(path: str, *, text_field: str = "text") -> list[str]:
    """Documents from a file: `.jsonl` (one JSON object per line with a `text_field` string) or plain
    text (documents separated by blank lines). Malformed lines raise with the file and line number."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"corpus file {path} does not exist")
    if path.endswith((".jsonl", ".jsonl.gz")):
        def text_of(record: dict) -> str:
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                raise ValueError(f"expected an object with a string field {text_field!r}")
            return record[text_field]

        return read_jsonl(path, validate=text_of, objects_only=False)
    with open(path) as f:
        return [d.strip() for d in f.read().split("\n\n") if d.strip()]
