"""Reward model and critic: a causal-LM backbone with a scalar head, as pure functions over pytrees.

Parameters (one pytree, the same structure for the reward model and the critic):
  {"backbone": backbone params, "head": [d_model, 1]}     a Dense(1) head without bias

  reward model   the head read at the **last attended token** of each row (any padding side, never a pad
                 slot): `reward_scores(params, tokens [B, T], attention [B, T]) -> [B]`;
  critic         the same structure, initialised from the reward model's *initial* parameters
                 (`init_critic_from_reward_model`) and read at every position: `token_values -> [B, T-1]`,
                 aligned with next-token log-probs (position t is the state before token t + 1).

Training is the pairwise Bradley–Terry NLL `-mean log σ(r_chosen - r_rejected)` (`humanai_jax.rl.losses`)
over batches holding the chosen rows first and the rejected rows second (`split_pairs`).
What a row contains (e.g. a user summary in front of the prompt, as PLUS does, arXiv 2507.13579 §3) is
the caller's business: this module only sees token ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from humanai_jax import backbone
from humanai_jax.backbone import ModelConfig
from humanai_jax.rl import losses as L


def init_value_model(config: ModelConfig, rng: jax.Array, backbone_params=None) -> dict[str, Any]:
    """Backbone + scalar head; the head starts small (HF's normal(0, initializer_range) for new weights).
    `backbone_params` (e.g. a loaded checkpoint's) replace the random backbone; the head is new either way."""
    body_rng, head_rng = jax.random.split(rng)
    head = config.initializer_range * jax.random.normal(head_rng, (config.d_model, 1), jnp.float32)
    body = backbone_params if backbone_params is not None else backbone.init_params(config, body_rng)
    return {"backbone": body, "head": head}


def value_model_logical_axes(config: ModelConfig) -> dict[str, Any]:
    """Logical axes of `init_value_model`'s pytree (for `sharding.tree_shardings`)."""
    return {"backbone": backbone.param_logical_axes(config), "head": ("embed", None)}


def init_critic_from_reward_model(rm_params) -> dict[str, Any]:
    """The critic starts as a copy of the reward model's initial parameters (as in PLUS, `docs/plus.md`).
    JAX arrays are immutable, so sharing the leaves is a copy: later updates produce new arrays."""
    return jax.tree.map(lambda x: x, rm_params)


def last_token_index(attention_mask: jax.Array) -> jax.Array:
    """`[batch]` index of the last 1 in each row of `attention_mask` `[batch, time]` (any padding side)."""
    time = attention_mask.shape[-1]
    positions = jnp.arange(time)
    return jnp.max(jnp.where(attention_mask > 0, positions, -1), axis=-1)


def head_values(params, tokens: jax.Array, attention_mask: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """`[batch, time]` float32: the scalar head on every position's final hidden state."""
    hidden = backbone.hidden_states(params["backbone"], tokens, config, attention_mask=attention_mask, rules=rules)
    return jnp.einsum("btd,do->bto", hidden.astype(jnp.float32), params["head"].astype(jnp.float32))[..., 0]


def reward_scores(params, tokens: jax.Array, attention_mask: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """tokens, attention_mask `[batch, time]` -> reward `[batch]` read at each row's last real token."""
    values = head_values(params, tokens, attention_mask, config, rules)
    index = last_token_index(attention_mask)
    return jnp.take_along_axis(values, index[:, None], axis=1)[:, 0]


def token_values(params, tokens: jax.Array, attention_mask: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """Critic values `[batch, time - 1]`: V at the state before each next token (aligned with
    `humanai_jax.rl.ppo.token_logprobs`)."""
    return head_values(params, tokens, attention_mask, config, rules)[:, :-1]


# ----------------------------------------------------------------------------- pairs and training


def split_pairs(scores: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`[2B]` scores of chosen rows then rejected rows -> (r_chosen `[B]`, r_rejected `[B]`)."""
    half = scores.shape[0] // 2
    return scores[:half], scores[half:]


def pair_scores(params, batch: dict, config: ModelConfig, rules=None) -> tuple[jax.Array, jax.Array]:
    """`batch = {"tokens", "attention"}` `[2B, T]`, chosen rows then rejected rows -> (r_c, r_r) `[B]` each."""
    return split_pairs(reward_scores(params, batch["tokens"], batch["attention"], config, rules))


def score_pairs(params, batch: dict, config: ModelConfig, rules=None) -> dict[str, jax.Array]:
    """No-gradient scoring of pairs: `{"r_chosen", "r_rejected", "reward"}`, each `[B]`, with
    `reward = log σ(r_c - r_r)` (≤ 0: the log-likelihood of the preference, arXiv 2507.13579 §3)."""
    r_c, r_r = pair_scores(jax.lax.stop_gradient(params), batch, config, rules)
    return {"r_chosen": r_c, "r_rejected": r_r, "reward": jax.nn.log_sigmoid(r_c - r_r)}


def apply_gradients(tx: optax.GradientTransformation, slot: dict, grads) -> dict:
    """One optimizer step on a training slot `{"params", "opt_state"}` (actor, critic or reward model)."""
    updates, opt_state = tx.update(grads, slot["opt_state"], slot["params"])
    return {"params": optax.apply_updates(slot["params"], updates), "opt_state": opt_state}


def init_slot(tx: optax.GradientTransformation, params) -> dict:
    """A training slot `{"params", "opt_state"}` for `params` under `tx`."""
    return {"params": params, "opt_state": tx.init(params)}


def bradley_terry_update(rm: dict, batch: dict, *, config: ModelConfig, tx: optax.GradientTransformation,
                         rules=None, margin: float = 0.0, center_coef: float = 0.0) -> tuple[dict, dict]:
    """One Bradley–Terry step of the reward model. `rm = {"params", "opt_state"}`; batch as `pair_scores`.
    Returns (new rm slot, {"rm_loss", "rm_accuracy"}) with the loss/accuracy before the step."""

    def loss_fn(params):
        r_c, r_r = pair_scores(params, batch, config, rules)
        loss = L.bradley_terry_loss(r_c, r_r, margin=margin, center_coef=center_coef)
        return loss, L.pairwise_accuracy(r_c, r_r)

    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(rm["params"])
    return apply_gradients(tx, rm, grads), {"rm_loss": loss, "rm_accuracy": acc}


def make_reward_model_steps(config: ModelConfig, tx: optax.GradientTransformation, rules=None) -> dict[str, Callable]:
    """Jitted `{"score": (params, batch) -> score_pairs, "update": (rm, batch) -> bradley_terry_update}`."""
    score = jax.jit(lambda params, batch: score_pairs(params, batch, config, rules))
    update = jax.jit(lambda rm, batch: bradley_terry_update(rm, batch, config=config, tx=tx, rules=rules))
    return {"score": score, "update": update}
