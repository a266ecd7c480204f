"""Backbone behaviour: padding, packing, KV cache, bf16, training->export, sharded load, remat/scan.

References are transformers+torch (eager, f32) or our own full forward after it was itself
checked against torch in test_backbone_hf.py.
"""

from __future__ import annotations

import dataclasses
import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from humanai_jax import backbone as bb
from humanai_jax.sharding import ShardingRules, make_mesh, tree_shardings
from test_backbone_common import (
    VARIANTS,
    forward_jit,
    load_torch,
    make_hf_model,
    max_diff,
    random_tokens,
    torch,
    torch_logits,
)

TOL = 1e-4


def _family(name, tmp_path_factory):
    model = make_hf_model(name, seed=7)
    root = tmp_path_factory.mktemp(name)
    model.save_pretrained(root / "hf")
    config, params = bb.load_pretrained(root / "hf")
    return types.SimpleNamespace(name=name, model=model, root=root, config=config, params=params)


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory):
    return _family("qwen2_untied", tmp_path_factory)


@pytest.fixture(scope="module", params=["qwen2_untied", "mistral_window", "qwen2_sliding_layers"])
def fam(request, tmp_path_factory, qwen2):
    return qwen2 if request.param == "qwen2_untied" else _family(request.param, tmp_path_factory)


def _left_pad(rows: list[np.ndarray], pad_id: int = 0):
    """Left-pads rows to a common length -> tokens [B, T], attention_mask [B, T]."""
    T = max(len(r) for r in rows)
    tokens = np.full((len(rows), T), pad_id, np.int32)
    mask = np.zeros((len(rows), T), np.int32)
    for b, r in enumerate(rows):
        tokens[b, T - len(r):] = r
        mask[b, T - len(r):] = 1
    return tokens, mask


# ------------------------------------------------------------------------------------ padding/packing
def test_left_padded_batch_equals_unpadded_rows(fam):
    long, short = random_tokens(1, 80, seed=11)[0], random_tokens(1, 67, seed=12)[0]
    tokens, mask = _left_pad([long, short])
    positions = bb.default_positions(2, 80, attention_mask=jnp.asarray(mask))
    np.testing.assert_array_equal(positions[1], np.r_[np.zeros(13), np.arange(67)])
    padded = forward_jit(fam.params, tokens, fam.config, attention_mask=mask)
    for b, row in enumerate([long, short]):
        alone = torch_logits(fam.model, row[None])[0]
        assert max_diff(padded[b, 80 - len(row):], alone) <= TOL


def test_packed_segments_equal_separate_sequences(fam):
    a, b, c = (random_tokens(1, n, seed=s)[0] for n, s in ((30, 21), (42, 22), (8, 23)))
    packed = np.concatenate([a, b, c])[None]
    segment_ids = np.repeat([1, 2, 3], [30, 42, 8])[None]
    logits = forward_jit(fam.params, packed, fam.config, segment_ids=segment_ids)
    start = 0
    for seq in (a, b, c):
        alone = torch_logits(fam.model, seq[None])[0]
        assert max_diff(logits[0, start:start + len(seq)], alone) <= TOL
        start += len(seq)


@pytest.mark.parametrize("block", [16, 23])
def test_causal_query_blocks_equal_torch(fam, block):
    """attention_block cuts the queries into causal blocks (the last one shorter when it does not
    divide T); with packing and left padding the logits still equal torch's."""
    config = dataclasses.replace(fam.config, attention_block=block)
    a, b = random_tokens(1, 50, seed=24)[0], random_tokens(1, 30, seed=25)[0]
    packed = np.concatenate([a, b])[None]
    logits = forward_jit(fam.params, packed, config, segment_ids=np.repeat([1, 2], [50, 30])[None])
    assert max_diff(logits[0, :50], torch_logits(fam.model, a[None])[0]) <= TOL
    assert max_diff(logits[0, 50:], torch_logits(fam.model, b[None])[0]) <= TOL
    tokens, mask = _left_pad([a, b])
    padded = forward_jit(fam.params, tokens, config, attention_mask=mask)
    assert max_diff(padded[1, 20:], torch_logits(fam.model, b[None])[0]) <= TOL


def test_fused_attention_path_equals_torch_and_keeps_masks(fam):
    """attention_impl="jax" routes plain causal attention through jax.nn.dot_product_attention (the
    call the cuDNN kernel uses on GPUs): logits equal torch's; packed input still takes our masked path."""
    config = dataclasses.replace(fam.config, attention_impl="jax")
    a, b = random_tokens(1, 50, seed=26)[0], random_tokens(1, 30, seed=27)[0]
    assert max_diff(forward_jit(fam.params, a[None], config)[0], torch_logits(fam.model, a[None])[0]) <= TOL
    packed = np.concatenate([a, b])[None]
    logits = forward_jit(fam.params, packed, config, segment_ids=np.repeat([1, 2], [50, 30])[None])
    assert max_diff(logits[0, 50:], torch_logits(fam.model, b[None])[0]) <= TOL


def test_cudnn_attention_refuses_float32(fam):
    with pytest.raises(ValueError, match="cudnn.*bfloat16"):
        dataclasses.replace(fam.config, attention_impl="cudnn")


def test_identity_leaves_out_execution_knobs_only():
    """The resume fingerprint (ModelConfig.identity) lets a run resume with remat/attention kernels changed,
    but not with a different function or parameter layout."""
    base = bb.ModelConfig.small(vocab_size=64)
    knobs = dataclasses.replace(base, remat="full", attention_block=0, attention_impl="jax")
    assert knobs.identity() == base.identity()
    assert set(dataclasses.asdict(base)) - set(base.identity()) == {"remat", "attention_block", "attention_impl"}
    for field, value in [("n_layers", 3), ("dtype", "bfloat16"), ("scan_layers", False), ("rope_theta", 5e5)]:
        assert dataclasses.replace(base, **{field: value}).identity() != base.identity(), field


# ------------------------------------------------------------------------------------ KV cache
def test_cached_prefill_and_steps_equal_full_forward(fam):
    """Left-padded prefill (bucket 12), then forced writes of 1, 3, 1, 1, 1 tokens, against torch's full pass."""
    prompts = [random_tokens(1, 12, seed=31)[0], random_tokens(1, 9, seed=32)[0]]
    tokens, mask = _left_pad(prompts)
    cont = random_tokens(2, 7, seed=33)
    full_tokens = np.concatenate([tokens, cont], axis=1)
    full_mask = np.concatenate([mask, np.ones_like(cont)], axis=1)
    full_pos = np.asarray(bb.default_positions(2, 19, attention_mask=jnp.asarray(full_mask)))
    reference = torch_logits(fam.model, full_tokens, attention_mask=full_mask, position_ids=full_pos)

    step = jax.jit(bb.forward_cached, static_argnames=("config",))
    cache = bb.init_cache(fam.config, batch=2, max_len=24)
    assert len(cache.k) == 2 and cache.k[0].shape == (2, 2, 24, fam.config.head_dim) and int(cache.index) == 0
    start = 0
    for length in (12, 1, 3, 1, 1, 1):
        sl = slice(start, start + length)
        logits, hidden, cache = step(fam.params, full_tokens[:, sl], fam.config, cache,
                                     positions=full_pos[:, sl], token_mask=full_mask[:, sl].astype(bool))
        assert hidden.shape == (2, length, fam.config.d_model)
        real = full_mask[:, sl].astype(bool)
        assert max_diff(np.asarray(logits)[real], reference[:, sl][real]) <= TOL
        start += length
    assert int(cache.index) == 19
    np.testing.assert_array_equal(np.asarray(cache.mask)[:, :19], full_mask.astype(bool))
    np.testing.assert_array_equal(np.asarray(cache.pos)[:, :19], full_pos)
    assert not np.asarray(cache.mask)[:, 19:].any()

    if fam.name != "qwen2_sliding_layers":
        return
    # Unstacked layers (what the decoding loop passes, per-layer window flags) write the same cache.
    first = step(bb.unstack_layers(fam.params), full_tokens[:, :12], fam.config, bb.init_cache(fam.config, 2, 24),
                 positions=full_pos[:, :12], token_mask=full_mask[:, :12].astype(bool))
    again = step(fam.params, full_tokens[:, :12], fam.config, bb.init_cache(fam.config, 2, 24),
                 positions=full_pos[:, :12], token_mask=full_mask[:, :12].astype(bool))
    assert max_diff(first[2].k, again[2].k) <= 1e-6 and max_diff(first[0], again[0]) <= 1e-5


# ------------------------------------------------------------------------------------ dtypes
def test_bf16_compute_runs_and_stays_close(qwen2):
    tokens = random_tokens(2, 80, seed=41)
    f32 = forward_jit(qwen2.params, tokens, qwen2.config)
    bf16_config = dataclasses.replace(qwen2.config, dtype="bfloat16")
    logits, hidden = forward_jit(qwen2.params, tokens, bf16_config, return_hidden=True)
    assert logits.dtype == jnp.float32 and hidden.dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(logits)).all()
    assert max_diff(logits, f32) <= 0.05 * float(np.abs(f32).max())


def test_bf16_checkpoint_loads_and_exports_bit_exact(tmp_path):
    model = make_hf_model("qwen3_head_dim", seed=5).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "hf")
    config, params = bb.load_pretrained(tmp_path / "hf", dtype=jnp.bfloat16)
    assert config.dtype == "bfloat16" and params["embed"].dtype == jnp.bfloat16
    tokens = random_tokens(1, 70, seed=42)
    ours = forward_jit(params, tokens, config)
    ref = torch_logits(model.float(), tokens)  # same bf16 weights, f32 maths
    assert max_diff(ours, ref) <= 0.05 * float(np.abs(ref).max())
    bb.save_pretrained(tmp_path / "ours", config, params)
    reloaded = transformers_bf16(tmp_path / "ours")
    model = model.to(torch.bfloat16)
    for key, value in reloaded.state_dict().items():
        assert value.dtype == torch.bfloat16 and torch.equal(value, model.state_dict()[key]), key


def transformers_bf16(path):
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)


# ------------------------------------------------------------------------------------ training round trip
@pytest.mark.parametrize("variant", ["qwen2_tied", "phi3_fused"])
def test_export_after_training_reloads_in_torch(variant, tmp_path_factory):
    fam = _family(variant, tmp_path_factory)
    tokens = jnp.asarray(random_tokens(4, 33, seed=51))
    optimizer = optax.adam(1e-2)

    def loss_fn(params):
        logits = bb.forward(params, tokens[:, :-1], fam.config)
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    @jax.jit
    def train_step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    params, opt_state = fam.params, optimizer.init(fam.params)
    losses = []
    for _ in range(4):
        params, opt_state, loss = train_step(params, opt_state)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    bb.save_pretrained(fam.root / "trained", fam.config, params)
    reloaded = load_torch(fam.root / "trained")
    probe = random_tokens(2, 70, seed=52)
    ours = forward_jit(params, probe, fam.config)
    assert max_diff(ours, torch_logits(reloaded, probe)) <= TOL
    assert max_diff(ours, torch_logits(fam.model, probe)) > 1e-2  # the weights really moved


# ------------------------------------------------------------------------------------ sharding
def test_sharded_load_places_shards_and_matches(qwen2):
    mesh = make_mesh({"fsdp": 2, "tensor": 2})
    rules = ShardingRules.create(mesh)
    config, params = bb.load_pretrained(qwen2.root / "hf", mesh=mesh)
    axes = bb.param_logical_axes(config)
    expected = tree_shardings(rules, axes, bb.param_shapes(config))
    for (path, leaf), want, ref in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(expected),
                                       jax.tree.leaves(qwen2.params)):
        assert leaf.sharding.is_equivalent_to(want, leaf.ndim), path
        np.testing.assert_array_equal(np.asarray(leaf), np.asarray(ref))
    assert params["layers"]["wq"].sharding.spec == jax.P(None, "fsdp", "tensor", None)
    assert len(params["layers"]["wq"].addressable_shards) == 4
    assert params["layers"]["wq"].addressable_shards[0].data.shape == (2, 32, 2, 16)

    tokens = random_tokens(4, 72, seed=61)
    sharded = forward_jit(params, tokens, config, rules=rules)
    assert max_diff(sharded, forward_jit(qwen2.params, tokens, config)) <= 1e-5

    # Cached forward with a sharded cache and activation hints equals the unsharded one.
    cache_shapes = jax.eval_shape(functools.partial(bb.init_cache, config, 4, 80))
    cache_sh = tree_shardings(rules, bb.cache_logical_axes(config), cache_shapes)
    cache = jax.device_put(bb.init_cache(config, 4, 80), cache_sh)
    positions = np.broadcast_to(np.arange(72), (4, 72))
    cached = jax.jit(bb.forward_cached, static_argnames=("config", "rules"))
    logits_c, _, new_cache = cached(params, tokens, config, cache, positions=positions, rules=rules)
    assert new_cache.k[0].sharding.is_equivalent_to(cache_sh.k[0], 4)
    assert cache_sh.k[1].spec == jax.P("fsdp", "tensor", None, None)
    assert max_diff(logits_c, sharded) <= 1e-5

    # Born-sharded random init: same values as the single-device init, placed by the rules.
    init = jax.jit(functools.partial(bb.init_params, config), out_shardings=expected)
    born = init(jax.random.key(3))
    plain = bb.init_params(config, jax.random.key(3))
    assert born["layers"]["w_up"].sharding.spec == jax.P(None, "fsdp", "tensor")
    # (1-ulp differences: XLA may fuse the scaling differently when the output is sharded)
    assert max(max_diff(a, b) for a, b in zip(jax.tree.leaves(born), jax.tree.leaves(plain))) <= 1e-7


# ------------------------------------------------------------------------------------ scan / remat
def test_unrolled_and_remat_paths_agree(qwen2):
    tokens = jnp.asarray(random_tokens(2, 24, seed=71))

    def loss(params, config):
        return jnp.mean(bb.forward(params, tokens, config) ** 2)

    grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
    base_loss, base_grad = grad(qwen2.params, qwen2.config)
    for change in (dict(scan_layers=False, remat="full"), dict(remat="dots")):
        value, g = grad(qwen2.params, dataclasses.replace(qwen2.config, **change))
        assert abs(float(value) - float(base_loss)) <= 1e-6, change
        assert max(max_diff(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(base_grad))) <= 1e-6, change


def test_full_and_cached_forward_share_one_decoder_block(qwen2, monkeypatch):
    """Both forwards run every layer through `transformer.decoder_block` (one body; they pass in
    their attention), and a hand-made attention that reproduces the full path gives the same hidden."""
    from humanai_jax.backbone import layers as L, transformer as tr

    calls = []
    real = tr.decoder_block
    monkeypatch.setattr(tr, "decoder_block", lambda *a, **k: calls.append(1) or real(*a, **k))
    config = dataclasses.replace(qwen2.config, scan_layers=False)
    tokens = jnp.asarray(random_tokens(1, 6, seed=72))
    want = tr.hidden_states(qwen2.params, tokens, config)
    assert len(calls) == config.n_layers
    positions = jnp.arange(6)[None]
    tr.forward_cached(qwen2.params, tokens, config, tr.init_cache(config, 1, 8), positions=positions)
    assert len(calls) == 2 * config.n_layers
    monkeypatch.undo()
    # the block by hand: embed, then each layer with plain causal attention over its own k, v
    allowed = tr.full_attention_mask(1, 6, config)
    cos, sin = L.rope_cos_sin(positions, config)
    attention = lambda q, k, v: (L.attend(q, k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3), allowed, config), None)
    x = jnp.take(qwen2.params["embed"], tokens, axis=0)
    for layer in tr.unstack_layers(qwen2.params)["layers"]:
        x, aux = tr.decoder_block(layer, x, cos, sin, config, attention)
        assert aux is None
    got = L.rms_norm(x, qwen2.params["final_norm"], config.rms_eps)
    assert max_diff(got, want) <= 1e-5


# ------------------------------------------------------------------------------------ configs and files
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_config_round_trips_through_hf_dict(variant):
    from test_backbone_common import hf_config

    config = bb.ModelConfig.from_hf_dict(hf_config(variant).to_dict())
    assert bb.ModelConfig.from_hf_dict(config.to_hf_dict()) == config
    assert hash(config) == hash(dataclasses.replace(config))
    assert dataclasses.replace(config, dtype=jnp.bfloat16).dtype == "bfloat16"


@pytest.mark.parametrize("model_type", ["qwen2"])
def test_small_from_scratch_model_exports_to_torch(model_type, tmp_path):
    config = bb.ModelConfig.small(vocab_size=96, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                                  model_type=model_type, tie_embeddings=model_type == "qwen2")
    params = bb.init_params(config, jax.random.key(0))
    assert float(jnp.std(params["layers"]["wq"])) == pytest.approx(0.02, rel=0.1)
    bb.save_pretrained(tmp_path, config, params, max_shard_bytes=40_000)  # forces several files + index
    assert (tmp_path / "model.safetensors.index.json").exists() and len(list(tmp_path.glob("model-*"))) > 1
    tokens = np.random.RandomState(0).randint(0, 96, (2, 20))
    reloaded = load_torch(tmp_path)
    ours = forward_jit(params, tokens, config)
    assert max_diff(ours, torch_logits(reloaded, tokens)) <= TOL
    config2, params2 = bb.load_pretrained(tmp_path)
    assert config2 == config
    assert max_diff(forward_jit(params2, tokens, config2), ours) == 0.0


def test_rules_on_explicit_mesh_axes_give_the_unsharded_forward():
    """Explicit axes ("sharding in types") take the same rules; tests/test_explicit_sharding.py
    covers gradients, the train step and every layout."""
    config = bb.ModelConfig.small(vocab_size=32, d_model=16, n_layers=1, n_heads=2)
    rules = ShardingRules.create(make_mesh({"fsdp": 2, "tensor": 2}, axis_type="explicit"))
    params = bb.init_params(config, jax.random.key(0))
    tokens = jnp.asarray(random_tokens(2, 6) % 32)
    sharded = jax.device_put(params, tree_shardings(rules, bb.param_logical_axes(config), params))
    with jax.set_mesh(rules.mesh):
        logits = forward_jit(sharded, tokens, config, rules=rules)
    assert jax.typeof(logits).sharding.spec == rules.spec(("batch", "seq", "vocab"), logits.shape)
    assert max_diff(logits, forward_jit(params, tokens, config)) <= 1e-5


def test_default_positions_brute_force():
    rng = np.random.RandomState(0)
    segment_ids = np.sort(rng.randint(0, 4, (3, 20)), axis=1)
    mask = (rng.rand(3, 20) > 0.3).astype(np.int32)
    got = np.asarray(bb.default_positions(3, 20, segment_ids=jnp.asarray(segment_ids), attention_mask=jnp.asarray(mask)))
    for b in range(3):
        count = 0
        for t in range(20):
            if t > 0 and segment_ids[b, t] != segment_ids[b, t - 1]:
                count = 0
            count += mask[b, t]
            assert got[b, t] == max(count - 1, 0), (b, t)


def test_bad_input_shapes_are_named():
    config = bb.ModelConfig.small(vocab_size=32, d_model=16, n_layers=1, n_heads=2)
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), bb.param_shapes(config))
    with pytest.raises(ValueError, match=r"tokens must be \[batch, seq\]"):
        bb.forward(params, jnp.zeros((5,), jnp.int32), config)
    with pytest.raises(ValueError, match=r"attention_mask must have the tokens' shape \(2, 5\), got \(2, 4\)"):
        bb.forward(params, jnp.zeros((2, 5), jnp.int32), config, attention_mask=jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="do not fit a cache"):
        bb.forward_cached(params, jnp.zeros((2, 9), jnp.int32), config, bb.init_cache(config, 2, 8),
                          positions=jnp.zeros((2, 9), jnp.int32))
