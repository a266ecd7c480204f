"""LLM-free baselines, scored through the same orders and metrics as a model, so every table has a floor.

  random   a uniformly random letter per (item, order), from a seeded numpy Generator
  first    always the first shown option ("A")
  longest  the shown option with the most characters (ties: the first shown)
  overlap  the shown option sharing the most distinct content words with the stem (lower-cased
           alphanumeric tokens minus a small stop-word list; ties: the first shown)

`first` is the fixed-letter model: averaged over `base6` it scores exactly chance (1/6), since each
original option is shown first once. `longest` and `overlap` depend only on the option texts, so they are
order-invariant except for ties; they measure how much surface cues give the answer away.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from humanai_jax.methods.motivebench.data import Item
from humanai_jax.methods.motivebench.orders import LETTERS, permute_options

__all__ = ["BASELINES", "baseline_letter", "content_words"]

BASELINES = ("random", "first", "longest", "overlap")
_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset("""a an the and or but if of to in on at by for with from as is are was were be been being it its
this that these those he she they them his her their him i you we our your my me us do does did not no so than then
too very can will would should could may might must has have had who whom which what when where why how all any
each more most other some such only own same just into over about after before while during up down out off again
further once there here both few nor s t""".split())


def content_words(text: str) -> set[str]:
    return {t for t in _TOKEN.findall(text.lower()) if t not in _STOP}


def _argmax_first(scores: Sequence[float]) -> int:
    best = max(scores)
    return next(i for i, s in enumerate(scores) if s == best)


def baseline_letter(name: str, item: Item, order: Sequence[int], rng: np.random.Generator | None = None) -> str:
    """The letter baseline `name` answers for `item` shown in `order` (`random` needs `rng`)."""
    shown = [o.split(". ", 1)[1] for o in permute_options(item.options, order)]
    if name == "random":
        if rng is None:
            raise ValueError("the random baseline needs a numpy Generator")
        return LETTERS[int(rng.integers(6))]
    if name == "first":
        return "A"
    if name == "longest":
        return LETTERS[_argmax_first([len(t) for t in shown])]
    if name == "overlap":
        stem = content_words(item.stem)
        return LETTERS[_argmax_first([len(content_words(t) & stem) for t in shown])]
    raise ValueError(f"unknown baseline {name!r}; valid: {BASELINES}")
