"""The notebooks in notebooks/ are committed without outputs and run green on small settings.

Each notebook is executed with nbclient in a python3 kernel of the current interpreter, with
HUMANAI_NOTEBOOK_SMALL=1 (CI-sized settings), a temporary HUMANAI_NOTEBOOK_WORKDIR and no network
(HF_HUB_OFFLINE=1); any cell error fails the test. See docs/notebooks.md.
"""

import os
import pathlib
import sys
import time

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300
# Per-notebook environment on top of the common one: tpu.ipynb builds its mesh over 4 simulated CPU devices.
EXTRA_ENV = {"tpu": {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}}
# Notebooks that read the real data in ../shared/data (see its README): skipped, saying so, where it is absent.
NEEDS_DATA = {"humanllm": NOTEBOOKS[0].parents[2] / "shared/data/recsys/ml-100k/ml-100k.inter"}


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"quickstart", "sad", "humanllm", "plus", "reclm", "tpu"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or an execution_count; clear them before committing"
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "find_spec(\"humanai_jax\")" in code[0] and "pip install" in code[0], "first code cell: the install cell"
    assert "jax.devices()" in code[1], "second code cell: the device check"
    assert any("SMALL" in src and "HUMANAI_NOTEBOOK_SMALL" in src for src in code), "a parameters cell with SMALL"


def _kernel_env(workdir, name):
    """The kernel's environment: small settings, a temp workdir, offline, and this interpreter first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env.update(
        HUMANAI_NOTEBOOK_SMALL="1",
        HUMANAI_NOTEBOOK_WORKDIR=str(workdir),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        JAX_PLATFORMS="cpu",
        MPLBACKEND="Agg",
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        PYTHONPATH=str(NOTEBOOKS[0].parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    env.update(EXTRA_ENV.get(name, {}))
    return env


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    needed = NEEDS_DATA.get(path.stem)
    if needed is not None and not needed.exists():
        pytest.skip(f"{path.name} reads {needed}, which is absent (../shared/data/README.md)")

    nb = nbformat.read(path, as_version=4)
    workdir = tmp_path / "work"
    workdir.mkdir()
    # Kernel "python3", pinned to this interpreter (a user-level kernelspec could point elsewhere).
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.kernel_spec.argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.time()
    try:
        client.execute(env=_kernel_env(workdir, path.stem))
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{path.name}: a cell failed\n{e}")
    print(f"{path.name}: {time.time() - start:.1f} s")
