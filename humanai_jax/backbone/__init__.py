"""HF-compatible decoder backbone as pure functions over parameter pytrees.

Families: Llama (default, linear and llama3 RoPE scaling), Qwen2/2.5, Qwen3, Mistral, Phi-3.
See docs/backbone.md.
"""

from humanai_jax.backbone.config import SUPPORTED_MODEL_TYPES, ModelConfig
from humanai_jax.backbone.hf import hf_tensor_shapes, load_pretrained, save_pretrained
from humanai_jax.backbone.params import count_params, init_params, param_info, param_logical_axes, param_shapes
from humanai_jax.backbone.transformer import (
    KVCache,
    cache_logical_axes,
    default_positions,
    forward,
    forward_cached,
    hidden_states,
    init_cache,
    logits_from_hidden,
    unstack_layers,
)

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "KVCache",
    "ModelConfig",
    "cache_logical_axes",
    "count_params",
    "default_positions",
    "forward",
    "forward_cached",
    "hf_tensor_shapes",
    "hidden_states",
    "init_cache",
    "init_params",
    "load_pretrained",
    "logits_from_hidden",
    "param_info",
    "param_logical_axes",
    "param_shapes",
    "save_pretrained",
    "unstack_layers",
]
