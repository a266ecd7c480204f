"""Losses, optimizer pieces, FLOPs counting and gradient accumulation of the train step."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from humanai_jax import flops
from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.params import init_params
from humanai_jax.backbone.transformer import forward
from humanai_jax.train import optim, step as step_lib
from humanai_jax.train.losses import chunked_cross_entropy, cross_entropy, next_token_targets
from humanai_jax.train.state import new_train_state


def _numpy_params(shapes, rng):
    """Weights ~ N(0, 0.1), norm scales ~ 1 + N(0, 0.1), drawn with numpy for the given shapes."""
    def draw(path, s):
        base = 1.0 if "norm" in jax.tree_util.keystr(path) else 0.0
        return jnp.asarray(base + rng.normal(0.0, 0.1, s.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def _numpy_ce(logits, labels, mask):
    logits = np.asarray(logits, np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, np.asarray(labels)[..., None].clip(0, logits.shape[-1] - 1), -1)[..., 0]
    return float((nll * mask).sum()), float(np.sum(mask))


def test_cross_entropy_matches_numpy_and_ignores_masked_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7)).astype(np.float32) * 3
    labels = rng.integers(0, 7, size=(2, 5))
    mask = (rng.random((2, 5)) > 0.3).astype(np.float32)
    labels_with_ignored = np.where(mask > 0, labels, -100)
    s, c = cross_entropy(jnp.asarray(logits), jnp.asarray(labels_with_ignored), jnp.asarray(mask))
    ref_s, ref_c = _numpy_ce(logits, labels, mask)
    np.testing.assert_allclose(float(s), ref_s, rtol=1e-5)
    assert float(c) == ref_c
    with pytest.raises(ValueError, match="logits"):
        cross_entropy(jnp.asarray(logits), jnp.asarray(labels[:, :4]), jnp.asarray(mask))


def test_chunked_cross_entropy_equals_plain_value_and_gradient():
    rng = np.random.default_rng(1)
    b, t, d, v = 2, 11, 8, 50  # t not a multiple of the chunk: exercises padding
    hidden = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
    head = jnp.asarray(rng.normal(size=(d, v)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, v, size=(b, t)))
    mask = jnp.asarray(rng.random((b, t)) > 0.2, jnp.float32)

    def plain(h, w):
        s, c = cross_entropy(h @ w, labels, mask)
        return s / c

    def chunked(h, w):
        s, c = chunked_cross_entropy(h, labels, mask, lambda x: x @ w, chunk_size=4)
        return s / c

    v1, g1 = jax.value_and_grad(plain, argnums=(0, 1))(hidden, head)
    v2, g2 = jax.value_and_grad(chunked, argnums=(0, 1))(hidden, head)
    np.testing.assert_allclose(v2, v1, rtol=1e-6)
    for a, b_ in zip(g1, g2):
        np.testing.assert_allclose(b_, a, rtol=1e-5, atol=1e-7)


def test_chunked_loss_never_builds_full_logits():
    """The jaxpr of the chunked loss holds no [B, T, V] array, only [B, chunk, V] ones."""
    b, t, d, v, chunk = 2, 64, 8, 1000, 16
    hidden = jnp.zeros((b, t, d))
    head = jnp.zeros((d, v))
    labels, mask = jnp.zeros((b, t), jnp.int32), jnp.ones((b, t))
    fn = lambda h, w: chunked_cross_entropy(h, labels, mask, lambda x: x @ w, chunk_size=chunk)[0]
    jaxpr = jax.make_jaxpr(jax.grad(fn, argnums=(0, 1)))(hidden, head)
    shapes = set()

    def walk(jp):
        for eqn in jp.eqns:
            for var in eqn.outvars:
                shapes.add(tuple(getattr(var.aval, "shape", ())))
            for p in eqn.params.values():
                if hasattr(p, "jaxpr"):
                    walk(p.jaxpr if hasattr(p.jaxpr, "eqns") else p.jaxpr.jaxpr)

    walk(jaxpr.jaxpr)
    assert (b, chunk, v) in shapes
    assert not any(len(s) >= 2 and s[-1] == v and int(np.prod(s)) >= b * t * v for s in shapes), shapes


def test_next_token_targets_shift():
    tokens = jnp.arange(10).reshape(2, 5)
    inputs, labels, mask = next_token_targets(tokens)
    np.testing.assert_array_equal(inputs, [[0, 1, 2, 3], [5, 6, 7, 8]])
    np.testing.assert_array_equal(labels, [[1, 2, 3, 4], [6, 7, 8, 9]])
    assert mask.shape == (2, 4) and float(mask.sum()) == 8


def test_decay_mask_excludes_norms_and_biases():
    cfg = ModelConfig.small(vocab_size=64, d_model=16, n_layers=1, n_heads=2, model_type="qwen3", qkv_bias=True)
    params = jax.eval_shape(functools.partial(init_params, cfg), jax.random.PRNGKey(0))
    mask = optim.decay_mask(params)
    assert mask["embed"] and mask["layers"]["wq"] and mask["layers"]["w_down"]
    for name in ("attn_norm", "mlp_norm", "q_norm", "k_norm", "bq", "bk", "bv"):
        assert mask["layers"][name] is False, name
    assert mask["final_norm"] is False


def test_warmup_cosine_schedule_by_hand():
    c = ml_collections.ConfigDict(dict(lr=1.0, schedule="warmup_cosine", warmup_steps=10, decay_steps=110, end_lr_frac=0.1))
    s = optim.make_schedule(c, total_steps=999)
    assert float(s(0)) == 0.0
    np.testing.assert_allclose(float(s(5)), 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(s(10)), 1.0, rtol=1e-6)
    # halfway through the cosine part: end + (peak - end) * (1 + cos(pi/2)) / 2
    np.testing.assert_allclose(float(s(60)), 0.1 + 0.9 * 0.5, rtol=1e-5)
    np.testing.assert_allclose(float(s(110)), 0.1, rtol=1e-5)
    with pytest.raises(ValueError, match="schedule"):
        optim.make_schedule(ml_collections.ConfigDict(dict(lr=1.0, schedule="cosine_typo")), 10)


def test_adamw_weight_decay_applies_only_to_matrices():
    c = ml_collections.ConfigDict(dict(name="adamw", lr=0.1, schedule="constant", weight_decay=0.5, clip_norm=0.0))
    tx, _ = optim.make_optimizer(c, 10)
    params = {"w": jnp.ones((2, 2)), "final_norm": jnp.ones((2,))}
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero_grads, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)  # -lr * wd * w
    np.testing.assert_array_equal(updates["final_norm"], 0.0)


def test_matmul_params_by_hand():
    cfg = ModelConfig.small(vocab_size=100, d_model=16, n_layers=3, n_heads=4, n_kv_heads=2, head_dim=8, mlp_dim=24)
    per_layer = 16 * 4 * 8 + 2 * 16 * 2 * 8 + 4 * 8 * 16 + 3 * 16 * 24
    assert flops.matmul_params(cfg) == 3 * per_layer + 16 * 100
    assert flops.train_flops_per_token(cfg, 32) == 6 * (3 * per_layer + 1600) + 6 * 3 * 4 * 8 * 32
    assert flops.train_flops_per_token(cfg, 32, causal=False) == 6 * (3 * per_layer + 1600) + 12 * 3 * 4 * 8 * 32


def test_forward_flops_match_xla_cost_analysis():
    """XLA computes full (non-causal) score matrices, so compare the non-causal count; norms,
    softmax and RoPE are the few percent on top."""
    cfg = ModelConfig.small(vocab_size=512, d_model=128, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=384, scan_layers=False)
    params = jax.eval_shape(functools.partial(init_params, cfg), jax.random.PRNGKey(0))  # compile only
    b, t = 2, 64
    tokens = jnp.zeros((b, t), jnp.int32)
    compiled = jax.jit(functools.partial(forward, config=cfg)).lower(params, tokens).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    ours = b * t * flops.forward_flops_per_token(cfg, t, causal=False)
    assert abs(cost["flops"] - ours) / ours < 0.10, (cost["flops"], ours)


# StepConfig is hashable, so equal configs share one compiled program across tests.
_LOSS_AND_GRADS = jax.jit(step_lib.loss_and_grads, static_argnames="cfg")


@pytest.fixture(scope="module")
def tiny_model():
    cfg = ModelConfig.small(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=64)
    # numpy-drawn weights of the right shapes (random norms too): skips compiling the RNG init
    shapes = jax.eval_shape(functools.partial(init_params, cfg), jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    params = _numpy_params(shapes, rng)
    tokens = jnp.asarray(rng.integers(0, 64, (8, 17)), jnp.int32)
    return cfg, params, tokens


def test_gradient_accumulation_equals_big_batch(tiny_model):
    """Micro-batched (lax.scan) and chunked-loss gradients equal the one-big-batch gradients, with
    uneven token counts per micro-batch (the mean is over all tokens, not over micro-batch means)."""
    cfg, params, tokens = tiny_model
    mask = jnp.ones_like(tokens).at[:2, 5:].set(0)
    batch = {"tokens": tokens, "mask": mask}
    outs = {}
    for accum, chunk in ((1, 0), (4, 0), (2, 5)):
        sc = step_lib.StepConfig(model=cfg, accum_steps=accum, loss_chunk=chunk)
        outs[accum, chunk] = _LOSS_AND_GRADS(params, batch, cfg=sc)
    ref_loss, ref_count, ref_grads = outs[1, 0]
    # independent reference for the loss: plain forward + numpy cross-entropy
    logits = jax.jit(functools.partial(forward, config=cfg))(params, tokens[:, :-1])
    s, c = _numpy_ce(np.asarray(logits), np.asarray(tokens[:, 1:]), np.asarray(mask[:, 1:]))
    np.testing.assert_allclose(float(ref_loss), s / c, rtol=1e-5)
    assert float(ref_count) == c
    for key in ((4, 0), (2, 5)):
        loss, count, grads = outs[key]
        np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-6)
        assert float(count) == c
        for a, b_ in zip(jax.tree.leaves(ref_grads), jax.tree.leaves(grads)):
            np.testing.assert_allclose(b_, a, rtol=1e-5, atol=1e-6 * float(jnp.abs(a).max()))


def test_train_step_applies_one_sgd_update(tiny_model):
    cfg, params, tokens = tiny_model
    tx = optax.sgd(learning_rate=0.5)
    sc = step_lib.StepConfig(model=cfg, accum_steps=2)
    state = new_train_state(params, tx, jax.random.PRNGKey(2))
    new_state, metrics = jax.jit(functools.partial(step_lib.train_step, cfg=sc, tx=tx))(state, {"tokens": tokens})
    _, _, grads = _LOSS_AND_GRADS(params, {"tokens": tokens}, cfg=step_lib.StepConfig(model=cfg))
    for p, g, q in zip(jax.tree.leaves(params), jax.tree.leaves(grads), jax.tree.leaves(new_state["params"])):
        np.testing.assert_allclose(q, p - 0.5 * g, rtol=1e-5, atol=1e-7)
    assert int(new_state["step"]) == 1 and not np.array_equal(new_state["rng"], state["rng"])
    np.testing.assert_allclose(float(metrics["grad_norm"]), float(optax.tree.norm(grads)), rtol=1e-5)
