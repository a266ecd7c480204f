"""Experience store and selection (reference `select_top_experiences`): an experience is
`{round, outcome, score, moves, instructor_feedback}`; selection takes the top k by score with a stable
descending sort (ties keep the older experience first); fewer than k -> all of them. `history_limit`
(LfE) keeps only the last N experiences as the pool (None / 0: all)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["select_top", "pool_of"]


def pool_of(experiences: Sequence[Mapping], history_limit: int | None = None) -> list[Mapping]:
    return list(experiences[-history_limit:]) if history_limit else list(experiences)


def select_top(experiences: Sequence[Mapping], k: int = 3) -> list[Mapping]:
    if len(experiences) < k:
        return list(experiences)
    return sorted(experiences, key=lambda e: e.get("score", 0), reverse=True)[:k]
