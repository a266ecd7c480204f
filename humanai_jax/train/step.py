"""The causal-LM loss and the one pure train step.

    train_step(state, batch) -> (state, metrics)

`batch = {"tokens": int32[B, T+1]}` (+ optional `"mask": [B, T+1]` loss weights on targets). The
step splits the batch into `accum_steps` micro-batches, runs them with `lax.scan` summing
gradients of the token-summed loss, divides once by the total token count (so accumulation equals
the big-batch step exactly), and applies one optimizer update.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.transformer import hidden_states, logits_from_hidden
from humanai_jax.sharding import ShardingRules, constrain
from humanai_jax.train.losses import chunked_cross_entropy, cross_entropy, next_token_targets


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static knobs of the step (hashable, closed over by jit)."""

    model: ModelConfig
    accum_steps: int = 1
    loss_chunk: int = 0  # sequence chunk of the chunked cross-entropy; 0 = plain (full logits)
    rules: ShardingRules | None = None


def lm_loss_sum(params: Any, batch: dict[str, jax.Array], cfg: StepConfig) -> tuple[jax.Array, jax.Array]:
    """(sum of next-token NLL, token count) of a batch of [B, T+1] token rows."""
    inputs, labels, mask = next_token_targets(batch["tokens"], batch.get("mask"))
    hidden = hidden_states(params, inputs, cfg.model, rules=cfg.rules)
    project = lambda h: logits_from_hidden(params, h, cfg.model, cfg.rules)
    if cfg.loss_chunk:
        return chunked_cross_entropy(hidden, labels, mask, project, chunk_size=cfg.loss_chunk)
    return cross_entropy(project(hidden), labels, mask)


def _split_micro_batches(batch: dict[str, jax.Array], n: int, rules: ShardingRules | None):
    """[B, ...] -> [n, B/n, ...]; example i goes to micro-batch i % n so a batch-sharded leading axis
    stays sharded (the split axis is the minor one)."""

    def split(x):
        if x.shape[0] % n:
            raise ValueError(f"batch size {x.shape[0]} is not divisible by accum_steps {n}")
        x = jnp.swapaxes(x.reshape(x.shape[0] // n, n, *x.shape[1:]), 0, 1)
        return constrain(x, (None, "batch") + (None,) * (x.ndim - 2), rules)

    return jax.tree.map(split, batch)


def accumulate_grads(loss_sum_fn, params: Any, batch: dict[str, jax.Array], accum_steps: int,
                     rules: ShardingRules | None = None):
    """(mean loss, token count, mean gradients) of a token-summed loss, over `accum_steps` micro-batches.

    `loss_sum_fn(params, micro_batch) -> (loss sum, token count)`. Micro-batch sums and gradients are
    added with `lax.scan` and divided once by the total count, so accumulation equals the big batch.
    Every trainer (LM pre-training, SFT, ...) shares this.
    """
    grad_fn = jax.value_and_grad(loss_sum_fn, has_aux=True)
    if accum_steps == 1:
        (loss_sum, count), grads = grad_fn(params, batch)
    else:

        def micro(carry, mb):
            (s, c), g = grad_fn(params, mb)
            return jax.tree.map(jnp.add, carry, (s, c, g)), None

        zeros = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
        (loss_sum, count, grads), _ = jax.lax.scan(micro, zeros, _split_micro_batches(batch, accum_steps, rules))
    denom = jnp.maximum(count, 1.0)
    grads = jax.tree.map(lambda g: (g / denom).astype(g.dtype), grads)
    return loss_sum / denom, count, grads


def loss_and_grads(params: Any, batch: dict[str, jax.Array], cfg: StepConfig):
    """(mean loss, token count, mean gradients) of the LM loss over the batch, accumulated over micro-batches."""
    return accumulate_grads(lambda p, b: lm_loss_sum(p, b, cfg), params, batch, cfg.accum_steps, cfg.rules)


def train_step(
    state: dict[str, Any],
    batch: dict[str, jax.Array],
    *,
    cfg: StepConfig,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule | None = None,
) -> tuple[dict[str, Any], dict[str, jax.Array]]:
    """One optimizer update. Returns the new state and scalar metrics (loss, grad_norm, lr, tokens)."""
    loss, count, grads = loss_and_grads(state["params"], batch, cfg)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    rng, _ = jax.random.split(state["rng"])  # the step's own key would feed dropout; none is used yet
    metrics = {
        "loss": loss,
        "grad_norm": optax.tree.norm(grads),
        "tokens": count,
    }
    if schedule is not None:
        metrics["lr"] = schedule(state["step"])
    new_state = {"step": state["step"] + 1, "params": params, "opt_state": opt_state, "rng": rng}
    return new_state, metrics


def eval_step(params: Any, batch: dict[str, jax.Array], *, cfg: StepConfig) -> tuple[jax.Array, jax.Array]:
    """(loss sum, token count) of one eval batch; callers sum over batches and divide once."""
    return lm_loss_sum(params, batch, cfg)
