"""Interaction filters on integer arrays (docs/humanllm.md §3.5 steps 4-5).

`pairs` is an int array `[n_interactions, 2]` of (user index, item index). Each function returns a
boolean keep-mask `[n_interactions]`, so the caller decides what to do with the dropped rows.
"""

from __future__ import annotations

import numpy as np


def top_items_mask(pairs: np.ndarray, n_items: int, fraction: float = 0.5) -> np.ndarray:
    """Keeps interactions with the `floor(n_items_present * fraction)` most frequent items.

    Ties in frequency break by the lower item index (a stable sort), so the result is deterministic.
    """
    counts = np.bincount(pairs[:, 1], minlength=n_items)
    present = np.flatnonzero(counts)
    n_keep = int(np.floor(len(present) * fraction))
    order = present[np.argsort(-counts[present], kind="stable")]
    keep_items = np.zeros(n_items, dtype=bool)
    keep_items[order[:n_keep]] = True
    return keep_items[pairs[:, 1]]


def min_user_count_mask(pairs: np.ndarray, n_users: int, min_count: int) -> np.ndarray:
    counts = np.bincount(pairs[:, 0], minlength=n_users)
    return counts[pairs[:, 0]] >= min_count


def kcore_mask(pairs: np.ndarray, n_users: int, n_items: int, user_core: int, item_core: int) -> np.ndarray:
    """Iterative k-core: drop users with < user_core and items with < item_core interactions until stable."""
    keep = np.ones(len(pairs), dtype=bool)
    while True:
        live = pairs[keep]
        ucount = np.bincount(live[:, 0], minlength=n_users)
        icount = np.bincount(live[:, 1], minlength=n_items)
        new_keep = keep & (ucount[pairs[:, 0]] >= user_core) & (icount[pairs[:, 1]] >= item_core)
        if new_keep.sum() == keep.sum():
            return new_keep
        keep = new_keep
