"""Explicit mesh axes ("sharding in types", `make_mesh(..., axis_type="explicit")`) on 4 simulated
CPU devices.

The same `ShardingRules` tables as on Auto meshes give logits, hidden states and gradients equal to
the single-device ones for DP, FSDP, TP and FSDP x TP; params placed with the rules' shardings keep
them through a jitted grad (no out_shardings: the shardings are part of the types); the project's
train step runs as the trainer (experiments/lm.py) jits it; the KV-cache forward and `generate`
work too.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.lm import get_config
from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.params import init_params, param_logical_axes
from humanai_jax.backbone.transformer import cache_logical_axes, forward, forward_cached, init_cache, logits_from_hidden
from humanai_jax.sharding import ShardingRules, constrain, gather_weight, is_explicit, make_mesh, tree_shardings
from humanai_jax.train import runtime as loop, step as step_lib
from humanai_jax.train.state import new_train_state, train_state_shardings

# qwen2 (q/k/v biases) + an o bias (FSDP-sharded like the embed dim); heads, kv heads, MLP, vocab
# and width all divide by 4. Causal attention blocks of 8 rows and full remat on.
MODEL = ModelConfig.small(vocab_size=128, d_model=32, n_layers=2, n_heads=8, n_kv_heads=4, head_dim=8,
                          mlp_dim=64, o_bias=True, attention_block=8, remat="full")
# qwen3 (q/k norm) with 2 kv heads: on tensor=4 the rules replicate the kv heads, q heads stay sharded.
GQA = ModelConfig.small(vocab_size=128, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=64,
                        model_type="qwen3", tie_embeddings=False)
LAYOUTS = {  # name -> ((data, fsdp, tensor), model)
    "dp": ((4, 1, 1), MODEL),
    "fsdp": ((1, 4, 1), MODEL),
    "tp": ((1, 1, 4), MODEL),
    "fsdp_tp": ((1, 2, 2), MODEL),
    "tp_kv_replicated": ((1, 1, 4), GQA),
}
B, T = 8, 16


def _rules(sizes) -> ShardingRules:
    return ShardingRules.create(make_mesh(dict(zip(("data", "fsdp", "tensor"), sizes)), axis_type="explicit"))


def _spec(sharding) -> tuple:
    """PartitionSpec as a tuple without trailing Nones (P(None, None) and P() mean the same)."""
    parts = list(sharding.spec)
    while parts and parts[-1] is None:
        parts.pop()
    return tuple(parts)


@functools.cache
def _data(model: ModelConfig):
    """numpy-drawn params (weights, biases ~ N(0, 0.1); norm scales 1 + N(0, 0.1)), tokens [B, T+1],
    two packed segments per row, and a fixed cotangent for the logits."""
    rng = np.random.default_rng(0)
    shapes = jax.eval_shape(functools.partial(init_params, model), jax.random.PRNGKey(0))

    def draw(path, s):
        base = 1.0 if "norm" in jax.tree_util.keystr(path) else 0.0
        return np.asarray(base + rng.normal(0.0, 0.1, s.shape), np.float32)

    params = jax.tree_util.tree_map_with_path(draw, shapes)
    tokens = rng.integers(0, model.vocab_size, (B, T + 1)).astype(np.int32)
    segments = (np.arange(T)[None, :] >= rng.integers(3, T - 3, (B, 1))).astype(np.int32)
    cotangent = rng.normal(0.0, 1.0, (B, T, model.vocab_size)).astype(np.float32)
    return params, tokens, segments, cotangent


def _objective(params, tokens, segments, cotangent, model, rules):
    """<logits, cotangent> (a linear probe of the whole backward pass) and (logits, hidden)."""
    logits, hidden = forward(params, tokens, model, segment_ids=segments, return_hidden=True, rules=rules)
    return jnp.sum(logits * cotangent), (logits, hidden)


_GRAD = jax.grad(_objective, has_aux=True)


@functools.cache
def _reference(model: ModelConfig):
    params, tokens, segments, cotangent = _data(model)
    grads, (logits, hidden) = jax.jit(_GRAD, static_argnums=(4, 5))(params, tokens[:, :-1], segments, cotangent, model, None)
    return jax.device_get((grads, logits, hidden))


def _close(got, want, atol, path=""):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=atol, rtol=1e-5, err_msg=path)


def test_constrain_reshards_and_gather_weight_drops_the_batch_axes():
    rules = _rules((1, 2, 2))
    w = jax.device_put(jnp.ones((32, 64)), rules.sharding(("embed", "mlp")))

    @jax.jit
    def f(w, x):
        g = gather_weight(w, rules)  # FSDP all-gather: fsdp leaves, tensor stays
        return g, constrain(x, ("batch", "seq", "act_embed"), rules)

    with jax.set_mesh(rules.mesh):
        g, x = f(w, jnp.ones((4, 3, 32)))
    assert _spec(jax.typeof(w).sharding) == ("fsdp", "tensor")
    assert _spec(jax.typeof(g).sharding) == (None, "tensor")
    assert _spec(jax.typeof(x).sharding) == ("fsdp",)
    # Auto meshes and no rules: both are left to GSPMD / the identity
    assert gather_weight(w, None) is w and gather_weight(w, ShardingRules.create(make_mesh({"fsdp": 4}))) is w
    # the trainer's config reaches the same mode
    config = get_config("tiny")
    config.mesh.update(data=1, fsdp=2, tensor=2, axis_type="explicit")
    _, rules = loop.mesh_and_rules(config)
    assert is_explicit(rules) and not is_explicit(loop.mesh_and_rules(get_config("tiny"))[1])


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_forward_and_gradients_equal_single_device(layout):
    sizes, model = LAYOUTS[layout]
    params, tokens, segments, cotangent = _data(model)
    ref_grads, ref_logits, ref_hidden = _reference(model)
    rules = _rules(sizes)
    p_sh = tree_shardings(rules, param_logical_axes(model), params)
    rows = rules.sharding(("batch", None))
    with jax.set_mesh(rules.mesh):
        # no out_shardings: what comes out is sharded as the program's types say
        fn = jax.jit(_GRAD, static_argnums=(4, 5))
        grads, (logits, hidden) = fn(jax.device_put(params, p_sh), jax.device_put(tokens[:, :-1], rows),
                                     jax.device_put(segments, rows), cotangent, model, rules)
    assert _spec(logits.sharding) == _spec(rules.sharding(("batch", "seq", "vocab"), logits.shape))
    assert _spec(hidden.sharding) == _spec(rules.sharding(("batch", "seq", "act_embed"), hidden.shape))
    _close(logits, ref_logits, 1e-5)
    _close(hidden, ref_hidden, 1e-5)
    for (path, g), ref, want in zip(jax.tree_util.tree_flatten_with_path(grads)[0], jax.tree.leaves(ref_grads),
                                    jax.tree.leaves(p_sh)):
        name = jax.tree_util.keystr(path)
        assert _spec(g.sharding) == _spec(want), name  # each gradient keeps its parameter's sharding
        _close(g, ref, 1e-4 * max(1.0, float(np.abs(ref).max())), name)


_TX = optax.sgd(0.5)


@functools.cache
def _reference_step(cfg: step_lib.StepConfig):
    params, tokens, _, _ = _data(cfg.model)
    step = jax.jit(functools.partial(step_lib.train_step, cfg=cfg, tx=_TX))
    return jax.device_get(step(new_train_state(params, _TX, jax.random.PRNGKey(0)), {"tokens": tokens}))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_train_step_as_the_trainer_jits_it(layout):
    """`step_lib.train_step` (2 accumulation steps, SGD) jitted with the trainer's in/out shardings
    and donation equals the single-device step; the new state keeps the rules' shardings."""
    sizes, model = LAYOUTS[layout]
    params, tokens, _, _ = _data(model)
    tx, cfg = _TX, step_lib.StepConfig(model=model, accum_steps=2)
    rules = _rules(sizes)
    _, sh = train_state_shardings(lambda r: init_params(model, r), param_logical_axes(model), tx, rules)
    rows = rules.sharding(("batch", None))
    with jax.set_mesh(rules.mesh):
        state = jax.jit(lambda p, r: new_train_state(p, tx, r), out_shardings=sh)(params, jax.random.PRNGKey(0))
        step = jax.jit(functools.partial(step_lib.train_step, cfg=dataclasses.replace(cfg, rules=rules), tx=tx),
                       in_shardings=(sh, {"tokens": rows}), out_shardings=(sh, None), donate_argnums=0)
        new_state, metrics = step(state, {"tokens": jax.device_put(tokens, rows)})
    ref_state, ref_metrics = _reference_step(cfg)
    np.testing.assert_allclose(float(metrics["loss"]), float(ref_metrics["loss"]), rtol=1e-6)
    for (path, p), ref, want in zip(jax.tree_util.tree_flatten_with_path(new_state["params"])[0],
                                    jax.tree.leaves(ref_state["params"]), jax.tree.leaves(sh["params"])):
        assert _spec(p.sharding) == _spec(want), jax.tree_util.keystr(path)
        _close(p, ref, 1e-6, jax.tree_util.keystr(path))


def test_lm_head_output_is_sharded_by_batch_and_vocab():
    """logits_from_hidden names its matmul's output axes by the hidden state's rank: [B, D] ->
    [B, V] sharded (batch, vocab), [B, T, D] -> [B, T, V] sharded (batch, seq, vocab)."""
    model = dataclasses.replace(MODEL, tie_embeddings=False)
    params, _, _, _ = _data(model)
    rules = _rules((2, 1, 2))
    head = jax.jit(lambda p, h: logits_from_hidden(p, h, model, rules))
    with jax.set_mesh(rules.mesh):
        params = jax.device_put(params, tree_shardings(rules, param_logical_axes(model), params))
        for shape, axes in (((B, model.d_model), ("batch", "vocab")), ((B, T, model.d_model), ("batch", "seq", "vocab"))):
            hidden = jax.device_put(np.ones(shape, np.float32), rules.sharding(("batch",) + (None,) * (len(shape) - 1)))
            logits = head(params, hidden)
            assert _spec(logits.sharding) == _spec(rules.sharding(axes, logits.shape)), shape
            assert _spec(logits.sharding)[0] == "data"


def test_kv_cache_prefill_and_decode_equal_single_device():
    model = GQA
    params, tokens, _, _ = _data(model)
    prompt, nxt = tokens[:, :6], tokens[:, 6:7]
    positions = np.broadcast_to(np.arange(7, dtype=np.int32), (B, 7))
    step = jax.jit(lambda p, t, c, pos, rules: forward_cached(p, t, model, c, positions=pos, rules=rules),
                   static_argnums=4)
    ref_logits, _, ref_cache = step(params, prompt, init_cache(model, B, 10), positions[:, :6], None)
    ref_next, _, _ = step(params, nxt, ref_cache, positions[:, 6:], None)

    rules = _rules((1, 2, 2))
    cache = init_cache(model, B, 10)
    c_sh = tree_shardings(rules, cache_logical_axes(model), cache)
    rows = rules.sharding(("batch", None))
    with jax.set_mesh(rules.mesh):
        params = jax.device_put(params, tree_shardings(rules, param_logical_axes(model), params))
        logits, _, cache = step(params, jax.device_put(prompt, rows), jax.device_put(cache, c_sh),
                                jax.device_put(positions[:, :6], rows), rules)
        next_logits, _, cache = step(params, jax.device_put(nxt, rows), cache, jax.device_put(positions[:, 6:], rows), rules)
    assert _spec(cache.k[0].sharding) == _spec(c_sh.k[0]) == ("fsdp", "tensor")
    assert _spec(cache.mask.sharding) == ("fsdp",)
    _close(logits, ref_logits, 1e-5)
    _close(next_logits, ref_next, 1e-5)


def test_generate_equals_single_device():
    """The decoding loop on an Explicit fsdp x tensor mesh: greedy and sampled tokens equal one
    device's (the loop state's logits and hidden are replicated, see decoding/engine.py)."""
    from humanai_jax.decoding import generate

    model = GQA
    params, tokens, _, _ = _data(model)
    prompts = [list(tokens[0, :5]), list(tokens[1, :9]), list(tokens[2, :3])]
    kw = [dict(), dict(temperature=1.0, top_k=20, rng=jax.random.key(3))]
    want = [generate(params, model, prompts, max_new_tokens=6, **k) for k in kw]
    rules = _rules((1, 2, 2))
    with jax.set_mesh(rules.mesh):
        sharded = jax.device_put(params, tree_shardings(rules, param_logical_axes(model), params))
        got = [generate(sharded, model, prompts, max_new_tokens=6, rules=rules, **k) for k in kw]
    for (t, n), (t_ref, n_ref) in zip(got, want):
        np.testing.assert_array_equal(t, t_ref)
        np.testing.assert_array_equal(n, n_ref)
