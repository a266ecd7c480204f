"""KL-coefficient controllers (OpenRLHF `FixedKLController` / `AdaptiveKLController`, Ziegler et al. 2019)
as pure functions over an explicit state.

State: `{"kl_coef": float32 []}` — a pytree, so it is checkpointed with the rest of a trainer's state.

Adaptive update, once per rollout batch, from the KL observed on that batch (`observed_kl`, e.g. the mean
over the batch of each sequence's masked mean per-token KL) and the number of samples in it (`n_steps`):

    e     = clip(observed_kl / target - 1, -clip, +clip)        # proportional error, clip = 0.2
    β_new = β · (1 + e · n_steps / horizon)

so β grows when the policy drifts further from the reference than `target`, and shrinks when it stays
closer, by at most ±20% per `horizon` samples (OpenRLHF's defaults: horizon 10,000; the spec uses β₀ = 0.01).
The fixed controller returns its state unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

KL_CONTROLLERS = ("fixed", "adaptive")


def init_kl_state(init_kl_coef: float) -> dict[str, jax.Array]:
    """`{"kl_coef": float32 []}` holding β₀."""
    if init_kl_coef < 0:
        raise ValueError(f"init_kl_coef must be >= 0, got {init_kl_coef}")
    return {"kl_coef": jnp.asarray(init_kl_coef, jnp.float32)}


def fixed_kl_update(state: dict, observed_kl: jax.Array, n_steps: int) -> dict:
    """The fixed controller: β stays at its initial value (the arguments are accepted and ignored)."""
    del observed_kl, n_steps
    return state


def adaptive_kl_update(
    state: dict, observed_kl: jax.Array, n_steps: int, *, target: float, horizon: float, clip: float = 0.2
) -> dict:
    """One adaptive step `β ← β·(1 + clip(kl/target - 1, ±clip)·n_steps/horizon)`.

    Args:
      state: `{"kl_coef": []}`.
      observed_kl: `[]` KL observed on the last rollout batch (nats per token).
      n_steps: samples in that batch (OpenRLHF passes rollout_batch_size · n_samples_per_prompt).
      target: target KL (> 0); horizon: samples over which a ±`clip` relative change is applied (> 0).
    Returns the new state (float32).
    """
    if target <= 0 or horizon <= 0:
        raise ValueError(f"adaptive KL controller needs target > 0 and horizon > 0, got {target}, {horizon}")
    error = jnp.clip(jnp.asarray(observed_kl, jnp.float32) / target - 1.0, -clip, clip)
    multiplier = 1.0 + error * (n_steps / horizon)
    return {"kl_coef": jnp.asarray(state["kl_coef"], jnp.float32) * multiplier}


def kl_update(
    state: dict, observed_kl: jax.Array, n_steps: int, *, kind: str, target: float | None = None,
    horizon: float = 10000.0, clip: float = 0.2,
) -> dict:
    """Dispatches on `kind` ("fixed" | "adaptive")."""
    if kind == "fixed":
        return fixed_kl_update(state, observed_kl, n_steps)
    if kind == "adaptive":
        if target is None:
            raise ValueError("kl_controller='adaptive' needs a kl_target")
        return adaptive_kl_update(state, observed_kl, n_steps, target=target, horizon=horizon, clip=clip)
    raise ValueError(f"Unknown KL controller {kind!r}; expected one of {KL_CONTROLLERS}")
