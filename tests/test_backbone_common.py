"""Shared helpers for the backbone tests: tiny random HF models of every supported variant.

(No tests here; the name keeps the file inside the backbone's test namespace.)
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax  # noqa: E402

from humanai_jax import backbone as bb  # noqa: E402

VOCAB = 128
BASE = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)

# variant -> HF config kwargs (on top of BASE). Sequences in the tests are > 64 tokens long.
VARIANTS: dict[str, dict] = {
    "llama": dict(model_type="llama", rms_norm_eps=1e-5),
    "llama3_scaling": dict(
        model_type="llama",
        rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                             high_freq_factor=4.0, original_max_position_embeddings=64),
    ),
    "llama_linear_bias": dict(
        model_type="llama",
        rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0),
        attention_bias=True,
        tie_word_embeddings=True,
    ),
    "qwen2_tied": dict(model_type="qwen2", tie_word_embeddings=True, rope_parameters=dict(rope_type="default", rope_theta=1e6)),
    "qwen2_untied": dict(model_type="qwen2", tie_word_embeddings=False),
    "qwen3_head_dim": dict(model_type="qwen3", head_dim=24, tie_word_embeddings=True),
    "mistral_window": dict(model_type="mistral", head_dim=16, sliding_window=5),
    # Qwen2 with use_sliding_window: layer 0 attends fully, layer 1 through a window of 5.
    "qwen2_sliding_layers": dict(model_type="qwen2", use_sliding_window=True, sliding_window=5, max_window_layers=1),
    "phi3_fused": dict(
        model_type="phi3", pad_token_id=0, bos_token_id=1, eos_token_id=2,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.75),
    ),
}

forward_jit = jax.jit(bb.forward, static_argnames=("config", "return_hidden", "rules"))


def hf_config(variant: str, **extra):
    kw = {**BASE, **VARIANTS[variant], **extra}
    model_type = kw.pop("model_type")
    return transformers.AutoConfig.for_model(model_type, **kw)


def make_hf_model(variant: str, seed: int = 0, **extra):
    """A random HF model in eval mode, eager attention, with norms and biases moved away from 1/0."""
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(hf_config(variant, **extra), attn_implementation="eager")
    model = model.float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return model


def load_torch(path):
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def torch_logits(model, tokens, attention_mask=None, position_ids=None, hidden=False):
    kw = {}
    if attention_mask is not None:
        kw["attention_mask"] = torch.tensor(np.asarray(attention_mask), dtype=torch.long)
    if position_ids is not None:
        kw["position_ids"] = torch.tensor(np.asarray(position_ids), dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=torch.tensor(np.asarray(tokens), dtype=torch.long), output_hidden_states=hidden, **kw)
    logits = out.logits.float().numpy()
    return (logits, out.hidden_states[-1].float().numpy()) if hidden else logits


def random_tokens(batch: int, seq: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, VOCAB, size=(batch, seq)).astype(np.int32)


def safetensors_keys(path) -> set[str]:
    """Tensor names stored in a checkpoint directory (single file or sharded)."""
    path = pathlib.Path(path)
    index = path / "model.safetensors.index.json"
    if index.exists():
        return set(json.loads(index.read_text())["weight_map"])
    return set(bb.hf.CheckpointReader(path).shapes)


def max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
