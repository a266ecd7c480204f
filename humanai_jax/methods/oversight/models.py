"""Binary classifiers for weak-to-strong training. Each is a frozen dataclass with pure methods:

  init(rng) -> params                         a params pytree
  apply(params, batch) -> logits [B, 2]       float32; `batch` holds the model's `input_keys`
  split(params) -> (trainable, frozen)        what the optimizer updates (linear probe: the head only)
  merge(trainable, frozen) -> params

ClassifierWithHead  the backbone + a bias-free head hidden -> 2, initialised to zeros, read at the last
                    non-pad token (Burns et al.'s `TransformerWithHead`); `linear_probe` stops the gradient
                    into the backbone (and keeps it out of the optimizer); `mode="lm_head"` uses the LM head's
                    logits of two choice tokens at that position instead of a new head.
LinearHead          toy_latent's strong model: the same zero-initialised bias-free head on given features.
MLP                 toy_latent's weak model: one hidden layer (tanh) with biases, LeCun-normal init.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.transformer import hidden_states, logits_from_hidden


def last_token_index(mask: jax.Array) -> jax.Array:
    """Index of the last non-pad token per row, [B] int32, for any padding side (mask [B, T], 1 = real)."""
    t = jnp.arange(mask.shape[1], dtype=jnp.int32)
    return jnp.max(jnp.where(mask.astype(bool), t, -1), axis=1).clip(0)


@dataclasses.dataclass(frozen=True)
class ClassifierWithHead:
    """Backbone classifier. batch[input_keys[0]]: tokens int32 [B, T]; batch[input_keys[1]]: mask [B, T]
    (1 = real token; any padding side)."""

    model_cfg: ModelConfig
    backbone: Any = dataclasses.field(repr=False, compare=False, hash=False)  # initial backbone params
    mode: str = "head"  # head | lm_head
    linear_probe: bool = False
    choice_ids: tuple[int, int] = (0, 0)  # lm_head mode: token ids read as classes 0 and 1
    input_keys: tuple[str, ...] = ("tokens", "mask")

    def __post_init__(self):
        if self.mode not in ("head", "lm_head"):
            raise ValueError(f"ClassifierWithHead.mode must be 'head' or 'lm_head', got {self.mode!r}")
        if self.mode == "lm_head" and self.choice_ids[0] == self.choice_ids[1]:
            raise ValueError(f"lm_head mode needs two different choice token ids, got {self.choice_ids}")
        if self.mode == "lm_head" and self.linear_probe:
            raise ValueError("lm_head mode has no new head: linear_probe would train nothing")

    def init(self, rng: jax.Array) -> dict:
        del rng  # the head starts at zero, the backbone at its (pre)trained values
        params = {"backbone": self.backbone}
        if self.mode == "head":
            params["head"] = jnp.zeros((self.model_cfg.d_model, 2), jnp.float32)
        return params

    def last_hidden(self, backbone, batch) -> jax.Array:
        """[B, D] float32 post-norm hidden state at each row's last non-pad token."""
        tokens, mask = (batch[k] for k in self.input_keys)
        h = hidden_states(backbone, tokens, self.model_cfg, attention_mask=mask)
        idx = last_token_index(mask)
        return jnp.take_along_axis(h, idx[:, None, None], axis=1)[:, 0].astype(jnp.float32)

    def apply(self, params, batch) -> jax.Array:
        backbone = params["backbone"]
        if self.linear_probe:
            backbone = jax.lax.stop_gradient(backbone)
        h = self.last_hidden(backbone, batch)
        if self.mode == "lm_head":
            return logits_from_hidden(backbone, h, self.model_cfg)[:, jnp.asarray(self.choice_ids)]
        return h @ params["head"]

    def split(self, params):
        if self.linear_probe:
            return {"head": params["head"]}, {"backbone": params["backbone"]}
        return params, {}

    def merge(self, trainable, frozen):
        return {**frozen, **trainable}


@dataclasses.dataclass(frozen=True)
class LinearHead:
    """Zero-initialised bias-free head [F, 2] on batch[feature_key] [B, F] (the strong model's 'latent
    knowledge' is in the fixed features, as a pretrained backbone's is in its hidden states)."""

    n_features: int
    feature_key: str = "features"

    @property
    def input_keys(self) -> tuple[str, ...]:
        return (self.feature_key,)

    def init(self, rng):
        del rng
        return {"head": jnp.zeros((self.n_features, 2), jnp.float32)}

    def apply(self, params, batch):
        return batch[self.feature_key].astype(jnp.float32) @ params["head"]

    def split(self, params):
        return params, {}

    def merge(self, trainable, frozen):
        return {**frozen, **trainable}


@dataclasses.dataclass(frozen=True)
class MLP:
    """x [B, F] -> tanh(x W1 + b1) W2 + b2 -> logits [B, 2]."""

    n_in: int
    n_hidden: int = 16
    input_key: str = "weak_x"

    @property
    def input_keys(self) -> tuple[str, ...]:
        return (self.input_key,)

    def init(self, rng):
        k1, k2 = jax.random.split(rng)
        return {"w1": jax.random.normal(k1, (self.n_in, self.n_hidden)) / jnp.sqrt(self.n_in),
                "b1": jnp.zeros((self.n_hidden,)),
                "w2": jax.random.normal(k2, (self.n_hidden, 2)) / jnp.sqrt(self.n_hidden),
                "b2": jnp.zeros((2,))}

    def apply(self, params, batch):
        h = jnp.tanh(batch[self.input_key].astype(jnp.float32) @ params["w1"] + params["b1"])
        return h @ params["w2"] + params["b2"]

    def split(self, params):
        return params, {}

    def merge(self, trainable, frozen):
        return {**frozen, **trainable}
