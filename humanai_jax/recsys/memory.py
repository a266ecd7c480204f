"""Memory plans for the recsys stages: estimate before allocating, refuse with a clear error.

A Gowalla-sized run once died to the kernel's OOM killer at 23.7 GB resident with no message from the
program (issue 22). Each stage now states what it will hold, component by component, and compares it
with the memory the process may use, before it allocates anything large:

    [memory plan] sparse_origin (SLIM, dense I x I): Gram 6.26 GiB + W 6.26 GiB + ... = 37.6 GiB; limit 21.9 GiB

`check` prints that line and raises `MemoryBudgetError` (naming the stage, the need and the limit) when
the need exceeds the limit. The estimates are of the large arrays only (what dominates at scale), so the
limit keeps a safety margin (`HEADROOM`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

GIB = 1024**3
HEADROOM = 0.85  # of the available memory: interpreter, XLA, scipy temporaries not itemised here


class MemoryBudgetError(MemoryError):
    """A stage would need more memory than the limit; the message names the stage, the need and the limit."""


def available_bytes() -> int:
    """Memory this process may still use: MemAvailable, capped by a cgroup (v2 or v1) limit if there is one."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                raw = f.read().strip()
            if raw == "max" or int(raw) > 2**60:
                continue
            with open(usage_file) as f:
                usage = int(f.read().strip())
            cg = max(int(raw) - usage, 0)
            avail = cg if avail is None else min(avail, cg)
        except (OSError, ValueError):
            continue
    return int(avail if avail is not None else 8 * GIB)


def limit_bytes(limit_gb: float = 0.0) -> int:
    """The configured limit (GiB), or HEADROOM x the available memory when `limit_gb` is 0."""
    return int(limit_gb * GIB) if limit_gb > 0 else int(HEADROOM * available_bytes())


def fmt(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB / 100 else f"{n / 1024**2:.1f} MiB"


def check(stage: str, components: dict[str, float], limit: int, *, hint: str = "",
          log: Callable[[str], None] = print) -> int:
    """Prints the plan of `stage` ({what: bytes}) and raises MemoryBudgetError if the total exceeds `limit`.
    Returns the total in bytes."""
    total = int(sum(components.values()))
    parts = " + ".join(f"{k} {fmt(v)}" for k, v in components.items())
    log(f"[memory plan] {stage}: {parts} = {fmt(total)}; limit {fmt(limit)}")
    if total > limit:
        raise MemoryBudgetError(
            f"stage {stage!r} needs about {fmt(total)} ({parts}) but the limit is {fmt(limit)}"
            + (f"; {hint}" if hint else "")
        )
    return total


# ----------------------------------------------------------------------------- estimates (bytes, float32)


def dense_item_item(n_items: int, model: str) -> dict[str, float]:
    """The I x I arrays a dense sparse-view fit holds at its peak."""
    sq = 4.0 * n_items**2
    if model == "slim":  # Gram, W, duality-gap temporaries (masked Gram, G W, X^T a), top-k scatter target
        return {"Gram I x I": sq, "W I x I": sq, "gap temporaries 3 x I x I": 3 * sq, "top-k W": sq}
    if model == "ease":  # Gram, inverse (+ LU workspace), W
        return {"Gram I x I": sq, "inverse I x I": sq, "LU workspace I x I": sq, "W I x I": sq}
    if model == "itemknn":  # Gram, similarities, top-k scatter target
        return {"Gram I x I": sq, "similarity I x I": sq, "top-k W": sq}
    if model == "slim_sklearn":  # W (float32) and the per-column Gram scikit-learn precomputes (float64)
        return {"W I x I": sq, "Gram I x I (float64)": 2 * sq}
    raise ValueError(f"no memory estimate for model {model!r}")


def blocked_item_item(n_items: int, block: int, nnz_out: int, candidates: int = 0) -> dict[str, float]:
    """A blocked sparse-view fit: [I, block] Gram columns (+ a copy for the top-k), the candidate Grams
    [block, c, c] of candidate SLIM (x3: the grams, the padded copy, the device copy), and the sparse output."""
    out = {"Gram columns I x block (x3)": 3 * 4.0 * n_items * block, "sparse W": 12.0 * nnz_out}
    if candidates:
        out["candidate Grams block x c x c (x3)"] = 3 * 4.0 * block * candidates**2
    return out


def dense_training(n_users: int, n_items: int, dim: int, n_pairs: int, batch: int, n_neg: int,
                   group: int) -> dict[str, float]:
    """Embedding tables with Adam state and gradients, the pair arrays, one step's negatives."""
    tables = 4.0 * (n_users + n_items) * dim
    return {"tables + Adam + grads (x4)": 4 * tables, "pairs + epoch order (x4)": 4 * 8.0 * n_pairs,
            "step negatives": 3 * 4.0 * (batch // group) * n_neg * dim + 3 * 4.0 * batch * n_neg}


RANKING_BLOCKS = 16  # [block, I] float32 blocks a ranking stage holds at its peak, as measured (docs/sad.md, Scale)


def ranking_block(n_items: int, block: int, n_users: int, k: int) -> dict[str, float]:
    """Blocked full ranking: [block, I] score matrices and the [U, k] top lists.

    Counts RANKING_BLOCKS score blocks. Itemised, a block needs 4 (host scores, device copy, masked copy,
    top-k buffers), but the measured evaluation stages on the full synthetic shapes added 10-15 blocks' worth
    of resident memory (Amazon-Book: 5.3 GiB for 0.35 GiB blocks), so the plan uses the measured figure."""
    return {f"scores block x I (x{RANKING_BLOCKS}, measured)": RANKING_BLOCKS * 4.0 * block * n_items,
            "top lists U x k": 4.0 * n_users * k}


def column_block(n_users: int, block: int) -> dict[str, float]:
    """Blocked top users per item: [U, block] score columns (x3: scores, transpose, top-k)."""
    return {"score columns U x block (x3)": 3 * 4.0 * n_users * block}


def peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM) since the last `reset_peak_rss`."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs); False if not possible."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
