"""HF parity of the backbone: every family and variant against transformers+torch (eager, f32).

For each variant: tiny random HF model -> save_pretrained -> our load -> logits/hidden parity;
our export -> transformers from_pretrained -> identical weights, key set and logits.
"""

from __future__ import annotations

import json
import types

import jax
import numpy as np
import pytest

from humanai_jax import backbone as bb
from test_backbone_common import (
    VARIANTS,
    forward_jit,
    load_torch,
    make_hf_model,
    max_diff,
    random_tokens,
    safetensors_keys,
    torch,
    torch_logits,
)

TOL = 1e-4  # gate; observed ~1e-6


@pytest.fixture(scope="module", params=list(VARIANTS))
def family(request, tmp_path_factory):
    name = request.param
    model = make_hf_model(name)
    root = tmp_path_factory.mktemp(name)
    model.save_pretrained(root / "hf")
    config, params = bb.load_pretrained(root / "hf")
    tokens = random_tokens(2, 80, seed=1)
    ref_logits, ref_hidden = torch_logits(model, tokens, hidden=True)
    return types.SimpleNamespace(name=name, model=model, root=root, config=config, params=params,
                                 tokens=tokens, ref_logits=ref_logits, ref_hidden=ref_hidden)


def test_config_fields_follow_hf(family):
    hf = family.model.config
    c = family.config
    assert c.model_type == hf.model_type
    assert (c.d_model, c.n_layers, c.n_heads, c.n_kv_heads) == (
        hf.hidden_size, hf.num_hidden_layers, hf.num_attention_heads, hf.num_key_value_heads)
    assert c.head_dim == (getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads)
    assert c.tie_embeddings == hf.tie_word_embeddings
    assert c.rms_eps == hf.rms_norm_eps
    assert c.rope_type == hf.rope_parameters["rope_type"]
    assert c.sliding_window == getattr(hf, "sliding_window", None)
    if getattr(hf, "layer_types", None) and c.sliding_window is not None:
        assert list(c.layer_types) == list(hf.layer_types)
    # Our inverse frequencies equal those of the HF rotary module.
    np.testing.assert_allclose(c.rope_inv_freq(), family.model.model.rotary_emb.inv_freq.numpy(), rtol=1e-6)


def test_logits_and_hidden_match_torch(family):
    logits, hidden = forward_jit(family.params, family.tokens, family.config, return_hidden=True)
    assert logits.dtype == np.float32 and logits.shape == family.ref_logits.shape
    assert max_diff(logits, family.ref_logits) <= TOL
    assert max_diff(hidden, family.ref_hidden) <= TOL
    # The two halves used by chunked losses compose to forward.
    hid = bb.hidden_states(family.params, family.tokens, family.config)
    assert max_diff(bb.logits_from_hidden(family.params, hid, family.config), logits) <= 1e-5


def test_export_reloads_in_torch(family):
    out = family.root / "ours"
    bb.save_pretrained(out, family.config, family.params)
    hf_keys = safetensors_keys(family.root / "hf")
    assert safetensors_keys(out) == hf_keys
    state_keys = set(family.model.state_dict())
    if family.config.tie_embeddings:
        state_keys.discard("lm_head.weight")
    assert safetensors_keys(out) == state_keys
    saved = json.loads((out / "config.json").read_text())
    assert "rope_parameters" in saved and "rope_theta" not in saved  # v5 layout
    reloaded = load_torch(out)
    ref_state = family.model.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, ref_state[key]), key
    assert max_diff(torch_logits(reloaded, family.tokens), family.ref_logits) <= 1e-6
    # And our loader reads our own export back to the same parameters.
    config2, params2 = bb.load_pretrained(out)
    assert config2 == family.config
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), family.params, params2))


# ------------------------------------------------------------------------------------ v4 layout
V4_CONFIGS = {
    # Llama-3.1 style file written by transformers 4.x: top-level rope_theta, rope_scaling, torch_dtype.
    "llama3_v4": ("llama3_scaling", dict(
        rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=64),
        torch_dtype="float32", rms_norm_eps=1e-6, mlp_bias=False, pretraining_tp=1,
        transformers_version="4.43.0")),
    # Older files name the scaling kind `type`.
    "linear_v4_type_key": ("llama_linear_bias", dict(
        rope_theta=10000.0, rope_scaling=dict(type="linear", factor=2.0), torch_dtype="float32",
        transformers_version="4.36.0")),
    # Qwen2.5 style: a sliding_window value that is switched off by use_sliding_window=false.
    "qwen2_v4": ("qwen2_untied", dict(
        rope_theta=1000000.0, rope_scaling=None, sliding_window=32768, use_sliding_window=False,
        max_window_layers=1, torch_dtype="bfloat16", transformers_version="4.43.1")),
}


@pytest.mark.parametrize("case", list(V4_CONFIGS))
def test_v4_layout_config(case, tmp_path):
    variant, v4_keys = V4_CONFIGS[case]
    model = make_hf_model(variant, seed=3)
    model.save_pretrained(tmp_path)
    d = json.loads((tmp_path / "config.json").read_text())
    d.pop("rope_parameters")
    d.pop("dtype", None)
    d.pop("layer_types", None)
    d.update(v4_keys)
    (tmp_path / "config.json").write_text(json.dumps(d))
    reference = load_torch(tmp_path)  # transformers reads the v4 file itself
    config, params = bb.load_pretrained(tmp_path)
    assert config.rope_theta == v4_keys["rope_theta"]
    scaling = v4_keys.get("rope_scaling") or {}
    assert config.rope_type == scaling.get("rope_type", scaling.get("type", "default"))
    np.testing.assert_allclose(config.rope_inv_freq(), reference.model.rotary_emb.inv_freq.numpy(), rtol=1e-6)
    tokens = random_tokens(1, 90, seed=4)
    assert max_diff(forward_jit(params, tokens, config), torch_logits(reference, tokens)) <= TOL


# ------------------------------------------------------------------------------------ errors
def _tiny_hf_dict(**kw):
    d = dict(model_type="llama", vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
             num_attention_heads=2, num_key_value_heads=1)
    d.update(kw)
    return d


@pytest.mark.parametrize("bad, needle", [
    (dict(model_type="gpt2"), "gpt2"),
    (dict(rope_parameters=dict(rope_type="yarn", rope_theta=1e4, factor=4.0)), "yarn"),
    (dict(rope_scaling=dict(type="dynamic", factor=2.0)), "dynamic"),
    (dict(mlp_bias=True), "mlp_bias"),
    (dict(hidden_act="gelu"), "gelu"),
    (dict(model_type="qwen3", layer_types=["chunked_attention"]), "chunked_attention"),
    (dict(final_logit_softcapping=30.0), "final_logit_softcapping"),
])
def test_unsupported_config_is_named(bad, needle):
    with pytest.raises(ValueError, match=needle):
        bb.ModelConfig.from_hf_dict(_tiny_hf_dict(**bad))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llama")
    make_hf_model("llama", num_hidden_layers=1).save_pretrained(path)
    return path


def _rewrite(src, dst, edit):
    import shutil

    from safetensors.numpy import load_file, save_file

    shutil.copytree(src, dst)
    tensors = load_file(str(dst / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})


def test_mis_shaped_tensor_is_named(tiny_checkpoint, tmp_path):
    name = "model.layers.0.self_attn.k_proj.weight"
    _rewrite(tiny_checkpoint, tmp_path / "c", lambda t: t.__setitem__(name, t[name][:-1]))
    with pytest.raises(ValueError, match=rf"{name} has shape \(31, 64\), expected \(32, 64\)"):
        bb.load_pretrained(tmp_path / "c")


def test_missing_and_extra_tensors_are_named(tiny_checkpoint, tmp_path):
    name = "model.layers.0.mlp.up_proj.weight"
    _rewrite(tiny_checkpoint, tmp_path / "missing", lambda t: t.pop(name))
    with pytest.raises(ValueError, match=rf"missing 1 tensor.*{name} \(expected shape \(96, 64\)\)"):
        bb.load_pretrained(tmp_path / "missing")
    _rewrite(tiny_checkpoint, tmp_path / "extra", lambda t: t.__setitem__("model.extra.weight", np.zeros((3, 5), np.float32)))
    with pytest.raises(ValueError, match=r"unexpected tensor.*model\.extra\.weight \(shape \(3, 5\)\)"):
        bb.load_pretrained(tmp_path / "extra")


# ------------------------------------------------------------------------------------ real sizes
REAL_CONFIGS = {
    "Qwen2.5-0.5B": dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                         sliding_window=32768, use_sliding_window=False, max_window_layers=21,
                         tie_word_embeddings=True, torch_dtype="bfloat16"),
    "Llama-3.1-8B": dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                         num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                         max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
                         rope_scaling=dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                           original_max_position_embeddings=8192, rope_type="llama3"),
                         tie_word_embeddings=False, torch_dtype="bfloat16"),
    "Qwen3-0.6B": dict(model_type="qwen3", vocab_size=151936, hidden_size=1024, intermediate_size=3072,
                       num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                       max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=True, torch_dtype="bfloat16"),
    "Mistral-7B-v0.1": dict(model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                            num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                            sliding_window=4096, rope_theta=10000.0, rms_norm_eps=1e-5, torch_dtype="bfloat16"),
    "Phi-3-mini-4k": dict(model_type="phi3", vocab_size=32064, hidden_size=3072, intermediate_size=8192,
                          num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                          sliding_window=2047, rope_theta=10000.0, rms_norm_eps=1e-5, torch_dtype="bfloat16"),
}
KNOWN_COUNTS = {"Qwen2.5-0.5B": 494_032_768, "Llama-3.1-8B": 8_030_261_248}


@pytest.mark.parametrize("name", list(REAL_CONFIGS))
def test_real_size_param_count_matches_hf(name):
    import transformers

    d = REAL_CONFIGS[name]
    config = bb.ModelConfig.from_hf_dict(d)
    shapes = jax.eval_shape(bb.init_params, config, jax.random.key(0))
    ours = bb.count_params(shapes)
    hf_kwargs = {k: v for k, v in d.items() if k not in ("model_type", "torch_dtype")}
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(d["model_type"], **hf_kwargs))
    assert ours == sum(p.numel() for p in model.parameters())
    if name in KNOWN_COUNTS:
        assert ours == KNOWN_COUNTS[name]
    # The logical-axes tree matches the params tree leaf for leaf, one name per dimension.
    axes = bb.param_logical_axes(config)
    is_axes = lambda t: isinstance(t, tuple) and all(isinstance(a, str) for a in t)
    assert jax.tree.structure(axes, is_leaf=is_axes) == jax.tree.structure(shapes)
    jax.tree.map(lambda a, s: len(a) == len(s.shape) or pytest.fail(f"{a} vs {s.shape}"), axes, shapes, is_leaf=is_axes)
    # Forward traces at real size without allocating.
    logits = jax.eval_shape(lambda p, t: bb.forward(p, t, config), shapes, jax.ShapeDtypeStruct((1, 16), np.int32))
    assert logits.shape == (1, 16, config.vocab_size) and logits.dtype == np.float32


# ------------------------------------------------------------------------------------ real checkpoint (opt-in)
@pytest.mark.slow
def test_real_checkpoint_matches_torch():
    """Set HUMANAI_HF_CHECKPOINT to a local HF directory (e.g. Qwen2.5-0.5B-Instruct) and run with -m slow."""
    import os

    path = os.environ.get("HUMANAI_HF_CHECKPOINT")
    if not path or not os.path.isdir(path):
        pytest.skip("HUMANAI_HF_CHECKPOINT is not set to a local HF checkpoint directory")
    config, params = bb.load_pretrained(path)
    reference = load_torch(path)
    tokens = random_tokens(1, 96, seed=9) + 100  # ordinary vocabulary ids
    ours = forward_jit(params, tokens, config)
    ref = torch_logits(reference, tokens)
    assert max_diff(ours, ref) <= 1e-3 * max(1.0, float(np.abs(ref).max()))


def test_save_names_a_mismatched_leaf(tmp_path):
    config = bb.ModelConfig.small(vocab_size=32, d_model=16, n_layers=1, n_heads=2, model_type="llama")
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), bb.param_shapes(config))
    params["layers"]["w_up"] = np.zeros((1, 16, 63), np.float32)
    with pytest.raises(ValueError, match=r"\['layers'\]\['w_up'\] has shape \(1, 16, 63\), expected \(1, 16, 64\)"):
        bb.save_pretrained(tmp_path, config, params)
    del params["layers"]["w_up"]
    with pytest.raises(ValueError, match=r"lack leaf \['layers'\]\['w_up'\]"):
        bb.save_pretrained(tmp_path, config, params)
