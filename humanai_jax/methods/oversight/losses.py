"""Weak-to-strong transfer losses (Burns et al. 2023, `weak_to_strong/loss.py`), as pure functions.

Every loss takes logits `z` [B, 2], (soft) labels `y` [B, 2] with rows summing to 1, and `step_frac`
(a scalar in [0, 1]: optimizer step / total steps) and returns the scalar mean over the batch of the
soft-target cross-entropy `CE(z_b, t_b) = -sum_k t_bk log softmax(z_b)_k` against a loss-specific target.
Targets built from the model's own predictions are wrapped in `stop_gradient` (the reference detaches).

  xent     t = y
  logconf  t = (1 - c) y + c s_hat, s_hat = hardened predictions thresholded at the batch quantile that
           reproduces the weak labels' class balance; c = the auxiliary coefficient at step_frac
  product  t ∝ p^beta * y^alpha (renormalised per row)
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

LossFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
WARMUPS = ("reference", "linear")


def soft_cross_entropy(logits: jax.Array, target: jax.Array) -> jax.Array:
    """mean_b -sum_k target[b, k] * log_softmax(logits)[b, k]; logits, target [B, K] -> scalar float32."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.sum(target.astype(jnp.float32) * logp, axis=-1))


def xent(logits: jax.Array, labels: jax.Array, step_frac: jax.Array = 0.0) -> jax.Array:
    """Soft-label cross-entropy against the (weak) labels; step_frac is unused."""
    del step_frac
    return soft_cross_entropy(logits, labels)


def aux_coefficient(step_frac, aux_coef: float = 0.5, warmup_frac: float = 0.1, warmup: str = "reference"):
    """The confidence weight c at `step_frac`.

    reference: aux_coef * (step_frac if step_frac <= warmup_frac else 1) — as `openai/weak-to-strong`, so c
               ramps to 0.1·aux_coef over the warm-up and then jumps to aux_coef (for warmup_frac = 0.1);
    linear:    aux_coef * min(1, step_frac / warmup_frac) — a continuous ramp (warmup_frac = 0: no ramp).
    """
    step_frac = jnp.asarray(step_frac, jnp.float32)
    if warmup == "reference":
        return aux_coef * jnp.where(step_frac <= warmup_frac, step_frac, 1.0)
    if warmup == "linear":
        if warmup_frac <= 0:
            return jnp.asarray(aux_coef, jnp.float32)
        return aux_coef * jnp.minimum(1.0, step_frac / warmup_frac)
    raise ValueError(f"logconf warmup must be one of {WARMUPS}, got {warmup!r}")


def hardened_predictions(probs: jax.Array, class1_share: jax.Array) -> jax.Array:
    """[1(p0 >= tau), 1(p0 < tau)] as float [B, 2], tau = quantile(p[:, 0], class1_share) (linear
    interpolation, as torch.quantile), so about a `class1_share` fraction of the rows is called class 1."""
    tau = jnp.quantile(probs[:, 0], class1_share, method="linear")
    return jnp.stack([probs[:, 0] >= tau, probs[:, 0] < tau], axis=-1).astype(jnp.float32)


def logconf(logits: jax.Array, labels: jax.Array, step_frac: jax.Array, *, aux_coef: float = 0.5,
            warmup_frac: float = 0.1, warmup: str = "reference") -> jax.Array:
    """Auxiliary confidence loss: CE against (1 - c)·labels + c·hardened own predictions (no gradient
    through the target). Uses batch statistics (the quantile), so the batch size is part of the method."""
    c = aux_coefficient(step_frac, aux_coef, warmup_frac, warmup)
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    labels = labels.astype(jnp.float32)
    strong = jax.lax.stop_gradient(hardened_predictions(probs, jnp.mean(labels[:, 1])))
    return soft_cross_entropy(logits, (1.0 - c) * labels + c * strong)


def product(logits: jax.Array, labels: jax.Array, step_frac: jax.Array = 0.0, *, alpha: float = 1.0,
            beta: float = 1.0) -> jax.Array:
    """CE against target ∝ softmax(z)^beta · labels^alpha, renormalised per row, no gradient through it.
    A row whose product is all zeros (only possible with a zero label row) gives NaN, never a silent value."""
    del step_frac
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    target = probs ** beta * labels.astype(jnp.float32) ** alpha
    target = jax.lax.stop_gradient(target / jnp.sum(target, axis=-1, keepdims=True))
    return soft_cross_entropy(logits, target)


def get_loss(name: str, **kwargs) -> LossFn:
    """`(logits, labels, step_frac) -> scalar` by name; kwargs are the loss's hyper-parameters
    (logconf: aux_coef, warmup_frac, warmup; product: alpha, beta). Unknown names or keys raise."""
    table = {"xent": (xent, ()), "logconf": (logconf, ("aux_coef", "warmup_frac", "warmup")),
             "product": (product, ("alpha", "beta"))}
    if name not in table:
        raise ValueError(f"unknown transfer loss {name!r}; valid: {sorted(table)}")
    fn, allowed = table[name]
    extra = sorted(set(kwargs) - set(allowed))
    if extra:
        raise ValueError(f"loss {name!r} takes {list(allowed) or 'no'} hyper-parameters, got unknown {extra}")
    if name == "logconf" and kwargs.get("warmup", "reference") not in WARMUPS:
        raise ValueError(f"logconf warmup must be one of {WARMUPS}, got {kwargs['warmup']!r}")
    return functools.partial(fn, **kwargs) if kwargs else fn
