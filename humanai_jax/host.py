"""Host-process settings that must be in place before the process starts.

XLA:CPU allocates a step's activation and gradient buffers with glibc `malloc` and frees them when
the step ends. With glibc's defaults, buffers this large live in `mmap`ed chunks or at the top of
the heap, and `free` hands them back to the kernel; the next step page-faults every page in again
and the kernel zeroes it. For the platform benchmark's training step (batch 8 x 512, ~3 GB of
buffers per step) that was ~750k page faults and ~1.5 s of kernel time in a 11 s single-core
step (BENCHMARKS.md, "host allocator"). Keeping freed memory in the process (no `mmap` chunks,
no trimming, one arena so XLA's worker threads reuse the same free lists) removes the faults. It
is what tcmalloc/jemalloc or torch's caching allocators do; we get it from glibc's own tunables.

glibc reads `GLIBC_TUNABLES` only when a process starts (and `mallopt` cannot raise the trim
threshold past 2 GiB), so the entry points re-execute themselves once with the variable set:
`reexec_with_malloc_tunables()` at the top of their `__main__` block. The PID stays the same.
Set `HUMANAI_MALLOC_TUNABLES=0` to keep the system defaults (peak RSS then drops between steps).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

# glibc tunable -> value. 1 TiB: larger than any heap top this process will free.
MALLOC_TUNABLES: dict[str, str] = {
    "glibc.malloc.mmap_max": "0",
    "glibc.malloc.trim_threshold": str(2**40),
    "glibc.malloc.arena_max": "1",
}
_OPT_OUT = "HUMANAI_MALLOC_TUNABLES"
_REEXEC_MARK = "HUMANAI_MALLOC_REEXEC"


def tunables_env(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to re-execute with, or None if nothing needs to change.

    Tunables the user already set in `GLIBC_TUNABLES` keep their values; ours are appended.
    Returns None when opted out, after one re-exec (so a dropped variable cannot loop), or when
    every tunable is already present.
    """
    if environ.get(_OPT_OUT, "1") == "0" or environ.get(_REEXEC_MARK):
        return None
    current = [t for t in environ.get("GLIBC_TUNABLES", "").split(":") if t]
    present = {t.split("=", 1)[0] for t in current}
    missing = [f"{k}={v}" for k, v in MALLOC_TUNABLES.items() if k not in present]
    if not missing:
        return None
    env = dict(environ)
    env["GLIBC_TUNABLES"] = ":".join(current + missing)
    env[_REEXEC_MARK] = "1"
    return env


def reexec_with_malloc_tunables() -> None:
    """Replaces this process with itself under `MALLOC_TUNABLES` (Linux/glibc only; else a no-op).

    Call it first thing in a script's `__main__` block, before JAX starts threads. Returns only
    when no re-exec is needed.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    env = tunables_env(os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
