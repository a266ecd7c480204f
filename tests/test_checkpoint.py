"""Orbax checkpoints: round trip onto another sharding, async save followed by a donating step,
keep-N, and never silently restoring a partial or corrupt checkpoint."""

import glob
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from humanai_jax.checkpoint import Checkpointer, CheckpointError, abstract_like
from humanai_jax.sharding import make_mesh
from humanai_jax.train.state import new_train_state

TX = optax.adamw(1e-3)


def _state(seed=0, sharding=None):
    k = jax.random.PRNGKey(seed)
    params = {"w": jax.random.normal(k, (8, 16)), "norm": jnp.ones((16,)) * (seed + 1)}
    state = new_train_state(params, TX, jax.random.PRNGKey(seed + 100))
    state["step"] = jnp.asarray(seed, jnp.int32)
    if sharding is not None:
        state = jax.device_put(state, sharding(state))
    return state


def _shardings(mesh, w_spec):
    def make(state):
        def pick(path, x):
            return NamedSharding(mesh, w_spec if x.shape == (8, 16) else P())

        return jax.tree_util.tree_map_with_path(pick, state)

    return make


def _assert_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_onto_another_sharding(tmp_path):
    fsdp = make_mesh({"fsdp": 4})
    tp = make_mesh({"tensor": 4})
    state = _state(3, _shardings(fsdp, P("fsdp", None)))
    ck = Checkpointer(str(tmp_path), max_to_keep=2)
    ck.save(3, state, {"data_position": 3})
    ck.wait()
    # restore as column-sharded over another mesh, and onto one device
    for target in (_shardings(tp, P(None, "tensor")), lambda s: jax.tree.map(lambda _: jax.devices()[0], s)):
        shardings = target(state)
        if not isinstance(jax.tree.leaves(shardings)[0], NamedSharding):
            shardings = jax.tree.map(lambda d: jax.sharding.SingleDeviceSharding(d), shardings)
        abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
        restored, meta = ck.restore(3, abstract)
        _assert_equal(restored, state)
        assert restored["params"]["w"].sharding == shardings["params"]["w"]
        assert meta["data_position"] == 3 and meta["step"] == 3
    ck.close()


def test_async_save_then_donating_step(tmp_path):
    state = _state(1)
    expected = jax.device_get(state)
    ck = Checkpointer(str(tmp_path), async_save=True)
    ck.save(1, state)
    bump = jax.jit(lambda s: jax.tree.map(lambda x: x + 1, s), donate_argnums=0)
    # Donates the buffers being checkpointed in the background. (On CPU the pending host copy is a
    # zero-copy view that pins the buffer, so XLA may copy instead of reusing it; on accelerators the
    # buffer is reused. Either way the checkpoint must hold the values from before the step.)
    new = bump(state)
    np.testing.assert_array_equal(np.asarray(new["params"]["w"]), expected["params"]["w"] + 1)
    ck.wait()
    restored, _ = ck.restore(1, abstract_like(new))
    _assert_equal(restored, expected)
    ck.close()


def test_keeps_only_the_newest_n(tmp_path):
    ck = Checkpointer(str(tmp_path), max_to_keep=2)
    for s in range(1, 6):
        ck.save(s, _state(s))
    ck.wait()
    assert ck.all_steps() == [4, 5] and ck.latest_step() == 5
    ck.close()


_WRITE_THREE = """
import sys
sys.path.insert(0, {tests!r})
from test_checkpoint import Checkpointer, _state
ck = Checkpointer({path!r}, max_to_keep=5)
for s in (1, 2, 3):
    ck.save(s, _state(s))
ck.close()
"""


@pytest.fixture(scope="module")
def three_checkpoints_template(tmp_path_factory):
    """Checkpoints 1, 2, 3 written by *another process*: the writer's TensorStore cache would
    otherwise serve the bytes this test corrupts on disk, as a resumed run never could."""
    path = str(tmp_path_factory.mktemp("ckpt_template") / "ckpts")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    code = _WRITE_THREE.format(tests=os.path.dirname(os.path.abspath(__file__)), path=path)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, timeout=600)
    return path


def _three_checkpoints(template, path):
    shutil.copytree(template, str(path), dirs_exist_ok=True)
    return Checkpointer(str(path), max_to_keep=5)


def _data_files(path, step):
    """OCDBT data files of a checkpoint (top-level `state/d` and per-process `ocdbt.process_*/d`)."""
    return sorted(glob.glob(os.path.join(path, str(step), "state", "**", "d", "*"), recursive=True))


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete_data", "drop_meta_item", "foreign_state"])
def test_corrupt_newest_falls_back_to_newest_readable(three_checkpoints_template, tmp_path, damage, capsys):
    ck = _three_checkpoints(three_checkpoints_template, tmp_path)
    files = _data_files(str(tmp_path), 3)
    if damage == "flip_byte":  # Orbax alone restores some of these silently as wrong numbers
        for f in files:
            data = bytearray(open(f, "rb").read())
            data[len(data) // 2] ^= 0x01
            open(f, "wb").write(bytes(data))
    elif damage == "truncate":
        for f in files:
            open(f, "r+b").truncate(os.path.getsize(f) // 2)
    elif damage == "delete_data":
        for f in files:
            os.remove(f)
    elif damage == "drop_meta_item":
        shutil.rmtree(os.path.join(tmp_path, "3", "meta"))
    else:  # well-formed Orbax data that is not what was saved as step 3: only the fingerprint sees it
        shutil.rmtree(os.path.join(tmp_path, "3", "state"))
        shutil.copytree(os.path.join(tmp_path, "2", "state"), os.path.join(tmp_path, "3", "state"))
    with pytest.raises(CheckpointError, match="fingerprint" if damage == "foreign_state" else None):
        ck.restore(3, abstract_like(_state(3)))
    step, restored, meta = ck.restore_latest(abstract_like(_state(3)))
    assert step == 2 and meta["step"] == 2
    _assert_equal(restored, _state(2))
    assert "skipping unreadable checkpoint 3" in capsys.readouterr().out
    ck.close()


def test_all_corrupt_refuses_to_restart_from_zero(three_checkpoints_template, tmp_path):
    ck = _three_checkpoints(three_checkpoints_template, tmp_path)
    for s in (1, 2, 3):
        for f in _data_files(str(tmp_path), s):
            os.remove(f)
    with pytest.raises(CheckpointError, match="refusing to start from step 0"):
        ck.restore_latest(abstract_like(_state(0)))
    ck.close()


def test_partial_save_is_not_a_step_and_shape_mismatch_errors(three_checkpoints_template, tmp_path):
    ck = _three_checkpoints(three_checkpoints_template, tmp_path)
    # what a crash mid-save leaves behind: Orbax's temporary directory, never renamed
    partial = os.path.join(tmp_path, "4.orbax-checkpoint-tmp-1234567")
    os.makedirs(os.path.join(partial, "state"))
    open(os.path.join(partial, "state", "garbage"), "wb").write(b"\x00" * 10)
    assert ck.latest_step() == 3
    step, _, _ = ck.restore_latest(abstract_like(_state(3)))
    assert step == 3
    wrong = abstract_like(_state(3))
    wrong["params"]["w"] = jax.ShapeDtypeStruct((8, 17), jnp.float32)
    with pytest.raises(CheckpointError):
        ck.restore(3, wrong)
    ck.close()


def test_no_checkpoints_means_fresh_start(tmp_path):
    ck = Checkpointer(str(tmp_path / "empty"))
    assert ck.latest_step() is None
    assert ck.restore_latest(abstract_like(_state(0))) == (None, None, None)
    ck.close()
