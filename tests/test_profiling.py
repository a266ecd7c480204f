"""humanai_jax.profiling: a real jax.profiler trace of a jitted function joined with its compiled HLO's source
locations attributes each executed op to the Python function that wrote it (matmul vs other)."""

import jax
import jax.numpy as jnp
import pytest

from humanai_jax import profiling


def project(x, w):
    return x @ w


def normalise(y):
    return y * jax.lax.rsqrt(jnp.mean(y * y, axis=-1, keepdims=True) + 1e-6)


def model(x, w):
    return normalise(project(x, w))


def test_ops_are_attributed_to_their_functions(tmp_path):
    f = jax.jit(model)
    x, w = jnp.ones((256, 512)), jnp.full((512, 384), 0.01)
    compiled = f.lower(x, w).compile()
    compiled(x, w).block_until_ready()
    with jax.profiler.trace(str(tmp_path), create_perfetto_trace=True):
        for _ in range(3):
            compiled(x, w).block_until_ready()
    times = profiling.op_times(str(tmp_path))
    sources = profiling.op_sources(compiled.as_text(), roots=("tests",))
    assert times and set(times) <= set(sources)  # every executed op is an instruction of the module
    table = profiling.breakdown(times, sources)
    assert table.get(("matmul", "test_profiling.project"), 0) > 0
    assert any(kind == "other" and label == "test_profiling.normalise" for kind, label in table)
    assert not any(kind == "matmul" and label == "test_profiling.normalise" for kind, label in table)
    assert sum(table.values()) == pytest.approx(sum(times.values()))


def test_missing_trace_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no perfetto_trace.json.gz"):
        profiling.op_times(str(tmp_path))
