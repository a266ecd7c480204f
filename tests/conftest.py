"""Test setup. Must run before JAX initialises: 4 simulated CPU devices for sharding tests."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pathlib

import jax
import pytest

jax.config.update("jax_default_matmul_precision", "highest")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """`../shared/data`; tests that need a file in it skip with a reason when it is absent."""
    return SHARED_DATA


def require_shared(relpath: str) -> pathlib.Path:
    """Returns `../shared/data/<relpath>` or skips the test, saying which file is missing."""
    path = SHARED_DATA / relpath
    if not path.exists():
        pytest.skip(f"shared data file {path} is absent (see ../shared/data/README.md for its source)")
    return path
