"""NAMeGEn constants: the task, the five objective keys (exact strings), flags and the threshold schedule."""

from __future__ import annotations

import math

__all__ = ["TASK", "KEYS", "FLAG_REGENERATE", "FLAG_REWRITE_EXPLANATION", "FLAG_ACCEPT", "FLAG_HISTORY_BEST",
           "FLAG_FAIL", "tau", "numbered_keys"]

TASK = "给孩子取名"
KEYS = ("文化内涵（古诗）", "父母期待", "五行八字", "个人特征（性别、生肖、出生年月等）", "其他需求")

FLAG_REGENERATE = 0  # regenerate name and explanation
FLAG_REWRITE_EXPLANATION = 1  # keep 结果, rewrite 解释
FLAG_ACCEPT = 2  # accept the current result
FLAG_HISTORY_BEST = 3  # return the historical best explicit result
FLAG_FAIL = 4  # over the round limit and no explicit score ever


def tau(t: int, *, lr: float = 0.8, alpha: float = 0.8, warmup: int = 2) -> float:
    """Threshold after t scorings: lr for t < 2, else lr / (alpha * ln(t + warmup)) (docs/namegen.md §2 step 10)."""
    if t < 0:
        raise ValueError(f"tau: t must be >= 0, got {t}")
    return lr if t < 2 else lr / (alpha * math.log(t + warmup))


def numbered_keys() -> list[str]:
    """"1.文化内涵（古诗）" ... "5.其他需求": the keys of the generator's 解释 dict."""
    return [f"{i}.{k}" for i, k in enumerate(KEYS, start=1)]
