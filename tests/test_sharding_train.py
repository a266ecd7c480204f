"""Sharding on 4 simulated CPU devices: the config alone moves the model between data parallelism,
FSDP and tensor parallelism; sharded forward, loss and gradients equal the single-device ones;
params are born sharded; the train step donates its input state."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.lm import get_config
from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.params import init_params, param_logical_axes
from humanai_jax.backbone.transformer import forward
from humanai_jax.train import runtime as loop, step as step_lib
from humanai_jax.train.state import per_device_bytes, train_state_shardings

MODEL = ModelConfig.small(vocab_size=128, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=64)
_INIT = jax.jit(functools.partial(init_params, MODEL))  # one compile, shared by the tests
MESHES = {"dp": (4, 1, 1), "fsdp": (1, 4, 1), "tp": (1, 1, 4), "fsdp_tp": (1, 2, 2)}


def _numpy_params(shapes, rng):
    """Weights ~ N(0, 0.1), norm scales ~ 1 + N(0, 0.1), drawn with numpy for the given shapes."""
    def draw(path, s):
        base = 1.0 if "norm" in jax.tree_util.keystr(path) else 0.0
        return jnp.asarray(base + rng.normal(0.0, 0.1, s.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def _config(data, fsdp, tensor):
    c = get_config("tiny")
    c.mesh.update(data=data, fsdp=fsdp, tensor=tensor)
    return c


def _spec(sharding) -> tuple:
    """PartitionSpec as a tuple without trailing Nones (P(None, None) and P() mean the same)."""
    parts = list(sharding.spec)
    while parts and parts[-1] is None:
        parts.pop()
    return tuple(parts)


@pytest.fixture(scope="module")
def reference():
    assert jax.device_count() == 4, "conftest.py must simulate 4 CPU devices"
    # numpy-drawn weights (skips compiling the RNG init; norms not all ones)
    shapes = jax.eval_shape(functools.partial(init_params, MODEL), jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    params = _numpy_params(shapes, rng)
    tokens = jnp.asarray(rng.integers(0, MODEL.vocab_size, (8, 17)), jnp.int32)
    fn = jax.jit(_forward_and_grads, static_argnums=2)
    return params, tokens, jax.device_get(fn(params, tokens, step_lib.StepConfig(model=MODEL)))


def _forward_and_grads(params, tokens, cfg):
    logits = forward(params, tokens[:, :-1], cfg.model, rules=cfg.rules)
    loss, _, grads = step_lib.loss_and_grads(params, {"tokens": tokens}, cfg)
    return logits, loss, grads


def test_config_moves_between_dp_fsdp_tp():
    """Same model code; only `config.mesh` changes. Golden param and batch specs per layout."""
    expected = {
        "dp": dict(wq=(), wk=(), w_gate=(), embed=(), batch=("data",)),
        "fsdp": dict(wq=(None, "fsdp"), wk=(None, "fsdp"), w_gate=(None, "fsdp"), embed=(None, "fsdp"), batch=("fsdp",)),
        # K=2 kv heads do not divide tensor=4: wk is replicated (logged), as the rules specify.
        "tp": dict(wq=(None, None, "tensor"), wk=(), w_gate=(None, None, "tensor"), embed=("tensor",), batch=()),
        "fsdp_tp": dict(wq=(None, "fsdp", "tensor"), wk=(None, "fsdp", "tensor"), w_gate=(None, "fsdp", "tensor"),
                        embed=("tensor", "fsdp"), batch=("fsdp",)),
    }
    tx = optax.adamw(1e-3)
    for name, sizes in MESHES.items():
        mesh, rules = loop.mesh_and_rules(_config(*sizes))
        abstract, shardings = train_state_shardings(lambda r: init_params(MODEL, r), param_logical_axes(MODEL), tx, rules)
        layers = shardings["params"]["layers"]
        got = dict(wq=_spec(layers["wq"]), wk=_spec(layers["wk"]), w_gate=_spec(layers["w_gate"]),
                   embed=_spec(shardings["params"]["embed"]), batch=_spec(loop.batch_sharding(rules)))
        assert got == expected[name], (name, got)
        assert _spec(layers["attn_norm"]) == () and _spec(shardings["step"]) == ()
        # Adam's moments follow their parameters' shardings
        mu = abstract["opt_state"][0].mu
        assert _spec(mu["layers"]["wq"].sharding) == expected[name]["wq"]
    # a rules-table change alone (no mesh change) turns FSDP into DP
    c = _config(1, 4, 1)
    c.rules.embed = ()
    c.rules.batch = ("fsdp",)
    mesh, rules = loop.mesh_and_rules(c)
    assert _spec(rules.sharding(("layers", "embed", "mlp"), (2, 32, 64))) == ()


def test_born_sharded_params_and_per_device_bytes():
    tx = optax.adamw(1e-3)
    mesh, rules = loop.mesh_and_rules(_config(1, 4, 1))
    abstract, shardings = train_state_shardings(lambda r: init_params(MODEL, r), param_logical_axes(MODEL), tx, rules)
    params = jax.jit(functools.partial(init_params, MODEL), out_shardings=shardings["params"])(jax.random.PRNGKey(0))
    wq = params["layers"]["wq"]
    assert wq.sharding.spec == shardings["params"]["layers"]["wq"].spec
    assert [s.data.shape for s in wq.addressable_shards] == [(2, 8, 4, 8)] * 4  # D=32 split 4 ways
    np.testing.assert_allclose(np.asarray(wq), np.asarray(_INIT(jax.random.PRNGKey(0))["layers"]["wq"]), rtol=1e-6)
    # per-device bytes from the abstract state equal the bytes actually placed on device 0
    on_dev0 = sum(s.data.nbytes for x in jax.tree.leaves(params) for s in x.addressable_shards if s.device == jax.devices()[0])
    assert per_device_bytes(abstract["params"]) == on_dev0


@pytest.mark.parametrize("layout", list(MESHES))
def test_sharded_forward_and_gradients_equal_single_device(reference, layout):
    params, tokens, (ref_logits, ref_loss, ref_grads) = reference
    mesh, rules = loop.mesh_and_rules(_config(*MESHES[layout]))
    cfg = step_lib.StepConfig(model=MODEL, rules=rules)
    from humanai_jax.sharding import tree_shardings

    p_sh = tree_shardings(rules, param_logical_axes(MODEL), params)
    b_sh = loop.batch_sharding(rules)
    with jax.set_mesh(mesh):
        fn = jax.jit(_forward_and_grads, static_argnums=2, in_shardings=(p_sh, b_sh), out_shardings=(None, None, p_sh))
        logits, loss, grads = fn(jax.device_put(params, p_sh), jax.device_put(tokens, b_sh), cfg)
    assert grads["layers"]["w_up"].sharding.spec == p_sh["layers"]["w_up"].spec
    np.testing.assert_allclose(np.asarray(logits), ref_logits, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-6)
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        ref = ref_grads
        for k in path:
            ref = ref[k.key]
        np.testing.assert_allclose(np.asarray(g), ref, atol=1e-6, rtol=1e-5, err_msg=jax.tree_util.keystr(path))


def test_train_step_donates_state():
    tx = optax.sgd(0.1)
    mesh, rules = loop.mesh_and_rules(_config(2, 2, 1))
    abstract, sh = train_state_shardings(lambda r: init_params(MODEL, r), param_logical_axes(MODEL), tx, rules)
    from humanai_jax.train.state import new_train_state

    with jax.set_mesh(mesh):
        abstract = jax.eval_shape(functools.partial(init_params, MODEL), jax.random.PRNGKey(0))
        params = _numpy_params(abstract, np.random.default_rng(1))
        state = jax.jit(lambda p, r: new_train_state(p, tx, r), out_shardings=sh)(
            params, jax.random.PRNGKey(0))
        b_sh = loop.batch_sharding(rules)
        step = jax.jit(functools.partial(step_lib.train_step, cfg=step_lib.StepConfig(model=MODEL, rules=rules), tx=tx),
                       in_shardings=(sh, {"tokens": b_sh}), out_shardings=(sh, None), donate_argnums=0)
        tokens = jax.device_put(jax.random.randint(jax.random.PRNGKey(1), (8, 17), 0, 128), b_sh)
        old_wq = state["params"]["layers"]["wq"]
        new_state, metrics = step(state, {"tokens": tokens})
    assert old_wq.is_deleted()
    assert int(new_state["step"]) == 1 and np.isfinite(float(metrics["loss"]))
    assert new_state["params"]["layers"]["wq"].sharding.spec == sh["params"]["layers"]["wq"].spec
