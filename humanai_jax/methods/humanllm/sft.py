"""SFT training pieces specific to HumanLLM (the generic ones come from `humanai_jax.train`).

  sft_train_step   one optimizer update on a packed batch (segment ids + positions), with gradient
                   accumulation over micro-batches; the loss is `tokenize.sft_loss_sum` (masked CE).
  eval_loss        held-out loss (sum, count) per task.
  merge_params     `alpha * sft + (1 - alpha) * base`, tensor by tensor (integer leaves copied from sft).
  host_init_params the backbone's init distribution drawn with numpy (no per-leaf threefry compile).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.params import ParamInfo, param_info
from humanai_jax.methods.humanllm import tokenize
from humanai_jax.train.step import accumulate_grads


def host_init_params(config: ModelConfig, seed: int) -> dict[str, Any]:
    """Same distribution as `backbone.params.init_params` (normal(0, initializer_range), ones, zeros),
    drawn on the host with numpy; for small models, where compiling the jitted init dominates."""
    rng = np.random.default_rng(seed)
    dtype = config.params_dtype

    def make(info: ParamInfo):
        if info.init == "ones":
            return jnp.ones(info.shape, dtype)
        if info.init == "zeros":
            return jnp.zeros(info.shape, dtype)
        return jnp.asarray(rng.normal(0.0, config.initializer_range, info.shape).astype(np.float32), dtype)

    return jax.tree.map(make, param_info(config), is_leaf=lambda x: isinstance(x, ParamInfo))


def merge_params(sft: Any, base: Any, alpha: float = 0.5) -> Any:
    """LM-Cocktail merge: `alpha * sft + (1 - alpha) * base` per leaf; integer leaves are copied from `sft`.

    Raises ValueError naming the first leaf whose shape or dtype differs.
    """
    if jax.tree.structure(sft) != jax.tree.structure(base):
        raise ValueError("merge_params: the two parameter trees have different structures")

    def merge(path, a, b):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(f"merge_params: leaf {jax.tree_util.keystr(path)} is {a.shape}/{a.dtype} in sft, "
                             f"{b.shape}/{b.dtype} in base")
        if jnp.issubdtype(a.dtype, jnp.integer) or a.dtype == jnp.bool_:
            return a
        merged = alpha * a.astype(jnp.float32) + (1.0 - alpha) * b.astype(jnp.float32)
        return merged.astype(a.dtype)

    return jax.tree_util.tree_map_with_path(merge, sft, base)


def sft_loss_and_grads(params, batch: dict, model_cfg: ModelConfig, accum: int = 1, rules=None, loss_chunk: int = 0):
    """(mean loss, token count, mean grads) of the assistant-only SFT loss (shared accumulation);
    loss_chunk > 0: chunked cross-entropy (`tokenize.sft_loss_sum`)."""
    loss_sum = lambda p, b: tokenize.sft_loss_sum(p, b, model_cfg, rules, loss_chunk)
    return accumulate_grads(loss_sum, params, batch, accum, rules)


def sft_train_step(state: dict, batch: dict, *, model_cfg: ModelConfig, tx: optax.GradientTransformation,
                   accum: int = 1, rules=None, loss_chunk: int = 0):
    """state = `humanai_jax.train.state.new_train_state(...)`; batch = PackedBatch.as_dict() arrays;
    loss_chunk: the config's `train.loss_chunk` (0 = full logits)."""
    loss, count, grads = sft_loss_and_grads(state["params"], batch, model_cfg, accum, rules, loss_chunk)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    new_state = dict(state, step=state["step"] + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": loss, "tokens": count, "grad_norm": optax.tree.norm(grads)}


def eval_loss(params, samples: Sequence[tuple[np.ndarray, np.ndarray]], sources: Sequence[str], model_cfg,
              row_len: int, *, rows_per_batch: int = 8, nll_fn=None) -> dict[str, float]:
    """Mean held-out token loss per source; each sample gets its own row (no packing), batches are padded
    to `rows_per_batch` rows so one compiled shape serves all batches."""
    nll_fn = nll_fn or jax.jit(tokenize.sft_token_nll, static_argnums=2)
    filler = (np.zeros(2, np.int32), np.zeros(2, np.int8))
    sums: dict[str, list[float]] = {}
    for start in range(0, len(samples), rows_per_batch):
        chunk = list(samples[start:start + rows_per_batch])
        pb = tokenize.pack(chunk + [filler] * (rows_per_batch - len(chunk)), row_len, max_segments=1)
        if len(pb.sample_index) != rows_per_batch:
            raise AssertionError("one sample per row expected")
        nll, mask = nll_fn(params, {k: jnp.asarray(v) for k, v in pb.as_dict().items()}, model_cfg)
        row_sum, row_cnt = np.asarray(jnp.sum(nll * mask, -1)), np.asarray(jnp.sum(mask, -1))
        for r, members in enumerate(pb.sample_index):
            i = start + members[0]
            if members[0] < len(chunk):
                acc = sums.setdefault(sources[i], [0.0, 0.0])
                acc[0] += float(row_sum[r])
                acc[1] += float(row_cnt[r])
    return {src: s / max(c, 1.0) for src, (s, c) in sums.items()}
