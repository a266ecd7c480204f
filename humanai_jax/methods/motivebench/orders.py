"""Option orders (debiasing permutations) and the gold remapping of the reference (`client_eval.py`).

An order is a list of 6 original option numbers (1-based). Shown option at position i (0-based) is the
original option `order[i]`, relabelled with the letter of position i; the new gold letter is
`LETTERS[order.index(g + 1)]` for the original 0-based gold index g. `base6` is the set of
`chicosirius/MotiveBench`; `all18` appends the 12 orders of `microsoft/AnthropomorphicIntelligence`.
Every order of `base6` puts a different original option first (a Latin-square column), so a model that
always answers one fixed letter scores exactly 1/6 averaged over `base6`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BASE6", "EXTRA12", "orders", "permute_options", "permuted_gold", "original_index"]

LETTERS = "ABCDEF"
BASE6 = ((1, 2, 3, 4, 5, 6), (6, 5, 4, 3, 2, 1), (3, 1, 6, 5, 4, 2), (2, 3, 5, 6, 1, 4), (5, 4, 1, 2, 6, 3),
         (4, 6, 2, 1, 3, 5))
EXTRA12 = ((1, 4, 3, 2, 5, 6), (2, 5, 4, 3, 6, 1), (3, 1, 2, 5, 4, 6), (2, 3, 5, 4, 1, 6), (3, 4, 1, 2, 6, 5),
           (5, 6, 2, 1, 3, 4), (1, 3, 2, 4, 5, 6), (6, 5, 4, 2, 3, 1), (3, 1, 5, 6, 4, 2), (2, 3, 6, 5, 1, 4),
           (5, 4, 1, 6, 2, 3), (4, 2, 6, 1, 3, 5))


def orders(name: str) -> tuple[tuple[int, ...], ...]:
    """The order set by name: `base6` (default of the paper's released code) or `all18`."""
    if name == "base6":
        return BASE6
    if name == "all18":
        return BASE6 + EXTRA12
    raise ValueError(f"unknown permutation set {name!r}; valid: base6, all18")


def _check(order: Sequence[int]) -> None:
    if sorted(order) != [1, 2, 3, 4, 5, 6]:
        raise ValueError(f"an order must be a permutation of 1..6, got {list(order)}")


def permute_options(options: Sequence[str], order: Sequence[int]) -> list[str]:
    """The reference's `rearrange_options`: `"<new letter>. <text of original option order[i]>"`."""
    _check(order)
    return [f"{LETTERS[i]}. {options[j - 1].split('. ', 1)[1]}" for i, j in enumerate(order)]


def permuted_gold(gold: str, order: Sequence[int]) -> str:
    """The reference's `get_new_correct_answer`: the letter under which the original gold option is shown."""
    _check(order)
    return LETTERS[list(order).index(LETTERS.index(gold) + 1)]


def original_index(letter: str, order: Sequence[int]) -> int:
    """0-based original option index of the option shown as `letter` under `order`."""
    return order[LETTERS.index(letter)] - 1
