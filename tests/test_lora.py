"""LoRA (train/lora.py) against torch: a transformers Qwen2 whose Linear weights get the same low-rank
update by hand (nn.Linear layout: W_t += scale · (A B)ᵀ) gives our adapted forward's logits,
and the merged export loads in transformers with the same logits; zero-initialised adapters are the base."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from humanai_jax.backbone import forward, load_pretrained, save_pretrained
from humanai_jax.train import lora

TORCH_NAMES = {"wq": "self_attn.q_proj", "wk": "self_attn.k_proj", "wv": "self_attn.v_proj",
               "wo": "self_attn.o_proj", "w_gate": "mlp.gate_proj", "w_up": "mlp.up_proj", "w_down": "mlp.down_proj"}


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, Qwen2Config

    path = str(tmp_path_factory.mktemp("lora_qwen2"))
    cfg = Qwen2Config(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    return path


def _random_adapters(params, cfg, seed=1):
    """Adapters with B drawn too (a fresh B is zero), so every update is non-trivial."""
    adapters = lora.init_adapters(params, cfg, jax.random.key(seed))
    keys = iter(jax.random.split(jax.random.key(seed + 1), len(adapters)))
    return {n: {"a": a["a"], "b": 0.2 * jax.random.normal(next(keys), a["b"].shape)} for n, a in adapters.items()}


def test_fresh_adapters_leave_the_model_unchanged(hf):
    config, params = load_pretrained(hf)
    cfg = lora.LoraConfig(rank=4, alpha=8.0)
    adapters = lora.init_adapters(params, cfg, jax.random.key(0))
    assert set(adapters) == set(TORCH_NAMES)
    assert adapters["wo"]["a"].shape == (2, 32, 4) and adapters["wo"]["b"].shape == (2, 4, 32)  # in = H*Dh
    assert adapters["w_down"]["a"].shape == (2, 48, 4) and adapters["wk"]["b"].shape == (2, 4, 16)
    merged = lora.apply_adapters(params, adapters, cfg)
    for a, b in zip(jax.tree.leaves(merged), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("targets", [("q", "v"), tuple(lora.TARGETS)])
def test_adapted_forward_and_merged_export_match_torch(hf, tmp_path, targets):
    import torch
    from transformers import AutoModelForCausalLM

    config, params = load_pretrained(hf)
    cfg = lora.LoraConfig(rank=3, alpha=6.0, targets=targets)
    adapters = _random_adapters(params, cfg)
    tokens = np.random.default_rng(0).integers(0, 96, size=(2, 11))
    ours = np.asarray(forward(lora.apply_adapters(params, adapters, cfg), jnp.asarray(tokens), config))

    ref = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    with torch.no_grad():
        base = ref(torch.tensor(tokens)).logits.numpy()
        for name, adapter in adapters.items():  # nn.Linear: y = x W_tᵀ, W_t [out, in]; ΔW_t = scale · (A B)ᵀ
            a, b = np.asarray(adapter["a"], np.float64), np.asarray(adapter["b"], np.float64)
            for layer in range(config.n_layers):
                linear = ref.get_submodule(f"model.layers.{layer}.{TORCH_NAMES[name]}")
                linear.weight += torch.tensor(cfg.scale * (a[layer] @ b[layer]).T, dtype=torch.float32)
        want = ref(torch.tensor(tokens)).logits.numpy()
    assert np.abs(want - base).max() > 1e-2  # the adapters do change the model
    np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-4)

    save_pretrained(str(tmp_path), config, lora.apply_adapters(params, adapters, cfg))  # LoRA merged back
    exported = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
    with torch.no_grad():
        np.testing.assert_allclose(exported(torch.tensor(tokens)).logits.numpy(), want, rtol=1e-4, atol=1e-4)


def test_config_errors_and_labels():
    with pytest.raises(ValueError, match="Unknown LoRA targets"):
        lora.LoraConfig(rank=2, targets=("q", "qkv"))
    with pytest.raises(ValueError, match="rank must be > 0"):
        lora.LoraConfig(rank=0)
    import ml_collections

    block = ml_collections.ConfigDict(dict(rank=0, alpha=16.0, targets="q,v"))
    assert lora.LoraConfig.from_config(block) is None
    block.rank = 4
    assert lora.LoraConfig.from_config(block) == lora.LoraConfig(rank=4, alpha=16.0, targets=("q", "v"))
    params = {"embed": 0, "lm_head": 0, "final_norm": 0, "layers": {"wq": 0, "attn_norm": 0}}
    assert lora.trainable_labels(params) == {"embed": "train", "lm_head": "train", "final_norm": "frozen",
                                             "layers": {"wq": "frozen", "attn_norm": "frozen"}}
    assert set(jax.tree.leaves(lora.trainable_labels(params, train_embeddings=False))) == {"frozen"}
