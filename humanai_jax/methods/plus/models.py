"""PLUS models as pure functions over parameter pytrees on the platform backbone.

  summarizer (actor)   backbone causal LM; `token_logprobs` gives log π(token_{t+1} | tokens_<=t).
  reward model         {"backbone", "head" [D, 1]}: a scalar head (Dense(1), no bias) read at the
                       last attended token of each row, never at padding (`reward_scores`).
  critic               same structure, initialised from the reward model's *initial* parameters,
                       read at every position (`critic_values`).
  reference policy     the initial summarizer parameters, kept frozen (never passed to an optimizer).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from humanai_jax import backbone
from humanai_jax.backbone import ModelConfig


def init_value_model(config: ModelConfig, rng: jax.Array) -> dict[str, Any]:
    """Backbone + scalar head; the head starts small (HF's normal(0, initializer_range) for new weights)."""
    body_rng, head_rng = jax.random.split(rng)
    head = config.initializer_range * jax.random.normal(head_rng, (config.d_model, 1), jnp.float32)
    return {"backbone": backbone.init_params(config, body_rng), "head": head}


def value_model_logical_axes(config: ModelConfig) -> dict[str, Any]:
    return {"backbone": backbone.param_logical_axes(config), "head": ("embed", None)}


def last_token_index(attention_mask: jax.Array) -> jax.Array:
    """`[batch]` index of the last 1 in each row of `attention_mask` `[batch, time]` (any padding side)."""
    time = attention_mask.shape[-1]
    positions = jnp.arange(time)
    return jnp.max(jnp.where(attention_mask > 0, positions, -1), axis=-1)


def _head_values(params, tokens, attention_mask, config: ModelConfig, rules=None) -> jax.Array:
    hidden = backbone.hidden_states(params["backbone"], tokens, config, attention_mask=attention_mask, rules=rules)
    return jnp.einsum("btd,do->bto", hidden.astype(jnp.float32), params["head"].astype(jnp.float32))[..., 0]


def reward_scores(params, tokens: jax.Array, attention_mask: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """tokens, attention_mask `[batch, time]` -> reward `[batch]` read at each row's last real token."""
    values = _head_values(params, tokens, attention_mask, config, rules)
    index = last_token_index(attention_mask)
    return jnp.take_along_axis(values, index[:, None], axis=1)[:, 0]


def critic_values(params, tokens: jax.Array, attention_mask: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """`[batch, time - 1]`: V at the state before each next token (aligned with `token_logprobs`)."""
    return _head_values(params, tokens, attention_mask, config, rules)[:, :-1]


def token_logprobs(params, tokens: jax.Array, attention_mask: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """`[batch, time - 1]`: log π(tokens[:, t+1] | tokens[:, :t+1]) under the causal LM `params`."""
    logits = backbone.forward(params, tokens, config, attention_mask=attention_mask, rules=rules)[:, :-1]
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]


def init_critic_from_reward_model(rm_params) -> dict[str, Any]:
    """The critic starts as a copy of the reward model's initial parameters (OpenRLHF `critic_pretrain`).
    JAX arrays are immutable, so sharing the leaves is a copy: later updates produce new arrays."""
    return jax.tree.map(lambda x: x, rm_params)
