"""humanai_jax.host: the glibc malloc tunables the entry points re-execute with."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from humanai_jax import host

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tunables_env_appends_ours_and_keeps_the_users():
    env = host.tunables_env({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=4:glibc.foo=1"})
    tunables = env["GLIBC_TUNABLES"].split(":")
    assert tunables[:2] == ["glibc.malloc.arena_max=4", "glibc.foo=1"]  # the user's, unchanged, first
    assert "glibc.malloc.mmap_max=0" in tunables and f"glibc.malloc.trim_threshold={2**40}" in tunables
    assert not any(t.startswith("glibc.malloc.arena_max=1") for t in tunables)
    assert env["PATH"] == "/bin"


def test_tunables_env_returns_none_when_nothing_to_do():
    assert host.tunables_env({"HUMANAI_MALLOC_TUNABLES": "0"}) is None  # opted out
    assert host.tunables_env({"HUMANAI_MALLOC_REEXEC": "1"}) is None  # already re-executed once
    full = ":".join(f"{k}={v}" for k, v in host.MALLOC_TUNABLES.items())
    assert host.tunables_env({"GLIBC_TUNABLES": full}) is None
    assert host.tunables_env({})["GLIBC_TUNABLES"] == full


_SCRIPT = textwrap.dedent("""
    import ctypes, os, resource, sys
    print("pid", os.getpid(), flush=True)
    from humanai_jax import host
    host.reexec_with_malloc_tunables()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    size = 256 << 20

    def touch_fresh_buffer():  # malloc, write every page, free; returns the page faults it took
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        p = libc.malloc(ctypes.c_size_t(size))
        ctypes.memset(p, 1, size)
        libc.free(ctypes.c_void_p(p))
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    touch_fresh_buffer()
    print("faults", touch_fresh_buffer(), "tunables", os.environ.get("GLIBC_TUNABLES", ""), flush=True)
""")


def _run(extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "HUMANAI_MALLOC_REEXEC")}
    env.update(extra_env, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")
    pids = [line.split()[1] for line in lines if line.startswith("pid")]
    faults_line = next(line.split() for line in lines if line.startswith("faults"))
    return pids, int(faults_line[1]), faults_line[3] if len(faults_line) > 3 else ""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_reexec_keeps_freed_memory_in_the_process():
    pids, faults, tunables = _run({})
    assert len(pids) == 2 and pids[0] == pids[1]  # re-executed once, same process
    assert "glibc.malloc.mmap_max=0" in tunables
    # A second 256 MiB buffer reuses the first one's pages: no page faults (65536 4-KiB pages otherwise).
    assert faults < 1000, faults

    pids, faults, tunables = _run({"HUMANAI_MALLOC_TUNABLES": "0"})
    assert len(pids) == 1 and tunables == ""
    assert faults > 10_000, faults  # glibc's default: the buffer went back to the kernel
