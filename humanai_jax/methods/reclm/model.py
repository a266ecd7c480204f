"""The RecLM model's parameters: a from-scratch backbone or a HF checkpoint grown for <SOI>/<EOI>, the ret
head and item table, and LoRA adapters when configured (docs/reclm.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax.backbone.params import init_params
from humanai_jax.methods.reclm.retrieval import init_item_proj
from humanai_jax.methods.reclm.tokens import resize_for_item_tokens
from humanai_jax.train import lora
from humanai_jax.train.model_block import model_config


def initial_model(config, tokenizer, codec, n_items: int, variant: str, rng):
    """(ModelConfig, params {"lm", ["proj", "items"]}): from scratch, or a HF checkpoint whose embeddings
    grow for <SOI>/<EOI> (reference init, `tokens.resize_for_item_tokens`)."""
    model_cfg = model_config(config, tokenizer)
    k_lm, k_resize, k_proj, k_items = jax.random.split(rng, 4)
    if config.model.hf_path:
        from humanai_jax.backbone import load_pretrained

        _, lm = load_pretrained(config.model.hf_path, dtype=model_cfg.params_dtype)
        model_cfg, lm = resize_for_item_tokens(lm, model_cfg, tokenizer, output_init=config.output_init, rng=k_resize)
    else:
        lm = init_params(model_cfg, k_lm)
    params = {"lm": lm}
    if variant == "ret":
        p = config.item_proj
        params["proj"] = init_item_proj(k_proj, model_cfg.d_model, hidden=p.hidden, out=p.dim)
        # bge-m3 vectors of the titles are not available offline: a trainable table (the reference trains
        # its table too), normal(0, 1/sqrt(dim)) so initial dot products are O(1)
        params["items"] = jax.random.normal(k_items, (n_items, p.dim), jnp.float32) / np.sqrt(p.dim)
    lora_cfg = lora.LoraConfig.from_config(config.lora)
    if lora_cfg is not None:  # adapters on the (frozen) base; a key of its own, so rank 0 runs are unchanged
        params["lora"] = lora.init_adapters(lm, lora_cfg, jax.random.fold_in(rng, 5))
    return model_cfg, params


def trainable_count(params: dict, cfg) -> int:
    """Parameters that get updates under LoRA: adapters, heads/tables, and the embeddings if they train."""
    labels = lora.trainable_labels(params["lm"], train_embeddings=cfg.train_embeddings)
    base = sum(int(x.size) for x, lab in zip(jax.tree.leaves(params["lm"]), jax.tree.leaves(labels))
               if lab == "train")
    return base + sum(lora.count(v) for k, v in params.items() if k != "lm")
