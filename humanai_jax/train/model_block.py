"""The one model-config builder: a `ModelConfig` from a config's `model` block, and the initial
parameters (born sharded, or a HF checkpoint loaded onto the mesh). Every experiment that trains the
backbone (lm, humanllm, ...) uses these, so the same `model` keys mean the same thing everywhere.

The `model` block's keys: hf_path, vocab_size, d_model, n_layers, n_heads, n_kv_heads, head_dim,
mlp_dim, family, tie_embeddings, dtype, param_dtype, scan_layers, remat (configs/lm.py documents them).
"""

from __future__ import annotations

import functools
import json
import os

import jax

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.params import init_params


def model_config(config, tokenizer) -> ModelConfig:
    """ModelConfig from `config.model`: a HF `config.json` when `hf_path` is set, else a fresh one."""
    m = config.model
    own = dict(dtype=m.dtype, param_dtype=m.param_dtype, scan_layers=m.scan_layers, remat=m.remat)
    if m.hf_path:
        with open(os.path.join(m.hf_path, "config.json")) as f:
            return ModelConfig.from_hf_dict(json.load(f), **own)
    vocab = m.vocab_size or -(-len(tokenizer) // 128) * 128  # pad to a multiple of 128 (shards evenly)
    if vocab < len(tokenizer):
        raise ValueError(f"model.vocab_size={vocab} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    return ModelConfig.small(
        vocab_size=vocab, d_model=m.d_model, n_layers=m.n_layers, n_heads=m.n_heads, n_kv_heads=m.n_kv_heads,
        head_dim=m.head_dim or None, mlp_dim=m.mlp_dim, model_type=m.family, tie_embeddings=m.tie_embeddings,
        eos_token_id=tokenizer.eos_token_id, **own,
    )


def initial_params(config, model_cfg: ModelConfig, rules, params_shardings, rng):
    """Fresh parameters born sharded (`jit(init, out_shardings)`), or a HF checkpoint loaded onto the mesh."""
    if config.model.hf_path:
        from humanai_jax.backbone import load_pretrained

        loaded_cfg, params = load_pretrained(config.model.hf_path, dtype=model_cfg.params_dtype, mesh=rules.mesh, rules=rules)
        if (loaded_cfg.vocab_size, loaded_cfg.d_model, loaded_cfg.n_layers) != (
            model_cfg.vocab_size, model_cfg.d_model, model_cfg.n_layers
        ):
            raise ValueError(f"{config.model.hf_path}: loaded config {loaded_cfg} does not match {model_cfg}")
        return jax.device_put(params, params_shardings)
    return jax.jit(functools.partial(init_params, model_cfg), out_shardings=params_shardings)(rng)
