"""Losses and advantage estimators for RL from (human) preferences, as pure JAX functions.

Every function is `jax.jit`-able, shape-static and computes in float32. Notation (docs/plus.md §9):
  mask   `[batch, time]` 1 on completion (action) tokens, 0 on padding;
  logp, old_logp, ref_logp   `[batch, time]` per-token log-probabilities of the taken tokens;
  values, old_values, returns, advantages, rewards   `[batch, time]`.

Reductions are explicit (`reduction=`):
  "token"     sum over all masked tokens / number of masked tokens (Tunix, DAPO);
  "sequence"  mean over rows of each row's masked token mean (OpenRLHF, used by PLUS).
"""

from __future__ import annotations

from typing import Literal

import chex
import jax
import jax.numpy as jnp

Reduction = Literal["token", "sequence"]
REDUCTIONS = ("token", "sequence")
KL_KINDS = ("k1", "k2", "k3")


def _f32(x):
    return jnp.asarray(x, jnp.float32)


def masked_mean(x: jax.Array, mask: jax.Array, axis=None) -> jax.Array:
    """Mean of `x` over entries where `mask` is 1; an all-zero mask gives 0 (not NaN)."""
    x, mask = _f32(x), _f32(mask)
    total = jnp.sum(x * mask, axis=axis)
    count = jnp.sum(mask, axis=axis)
    return total / jnp.maximum(count, 1.0)


def aggregate(per_token: jax.Array, mask: jax.Array, reduction: Reduction) -> jax.Array:
    """Reduces a `[batch, time]` per-token loss to a scalar with the named reduction."""
    chex.assert_equal_shape([per_token, mask])
    if reduction == "token":
        return masked_mean(per_token, mask)
    if reduction == "sequence":
        return jnp.mean(masked_mean(per_token, mask, axis=-1))
    raise ValueError(f"Unknown reduction {reduction!r}; expected one of {REDUCTIONS}")


# ----------------------------------------------------------------------------- reward model


def bradley_terry_loss(
    r_chosen: jax.Array, r_rejected: jax.Array, *, margin: float = 0.0, center_coef: float = 0.0
) -> jax.Array:
    """Pairwise Bradley–Terry NLL `-mean(log σ(r_c - r_r - margin))` (+ `c·mean((r_c + r_r)²)`).

    Args: r_chosen, r_rejected `[batch]` scalar rewards. Returns a scalar.
    """
    chex.assert_equal_shape([r_chosen, r_rejected])
    diff = _f32(r_chosen) - _f32(r_rejected) - margin
    loss = -jnp.mean(jax.nn.log_sigmoid(diff))
    if center_coef:
        # Reward centering keeps the (otherwise shift-invariant) reward near 0.
        loss = loss + center_coef * jnp.mean((_f32(r_chosen) + _f32(r_rejected)) ** 2)
    return loss


def pairwise_accuracy(r_chosen: jax.Array, r_rejected: jax.Array) -> jax.Array:
    """`mean(r_c > r_r)`: ties count as errors (docs/plus.md §7)."""
    chex.assert_equal_shape([r_chosen, r_rejected])
    return jnp.mean((r_chosen > r_rejected).astype(jnp.float32))


# ----------------------------------------------------------------------------- KL and rewards


def kl_estimate(logp: jax.Array, ref_logp: jax.Array, kind: str = "k1") -> jax.Array:
    """Per-token estimators of KL(π‖π_ref) from samples of π, with `d = logp - ref_logp`.

    k1 = d (unbiased, high variance); k2 = d²/2 (biased, low variance);
    k3 = exp(-d) - 1 + d (unbiased, never negative).
    """
    chex.assert_equal_shape([logp, ref_logp])
    d = _f32(logp) - _f32(ref_logp)
    if kind == "k1":
        return d
    if kind == "k2":
        return 0.5 * d**2
    if kind == "k3":
        return jnp.expm1(-d) + d
    raise ValueError(f"Unknown KL estimator {kind!r}; expected one of {KL_KINDS}")


def last_token_mask(mask: jax.Array) -> jax.Array:
    """One-hot `[batch, time]` marking the last 1 of each row of `mask` (all zero for empty rows)."""
    mask = _f32(mask)
    time = mask.shape[-1]
    positions = jnp.arange(time, dtype=jnp.float32)
    last = jnp.argmax(jnp.where(mask > 0, positions, -1.0), axis=-1)
    one_hot = jax.nn.one_hot(last, time, dtype=jnp.float32)
    return one_hot * mask


def shaped_rewards(
    terminal_reward: jax.Array,
    kl: jax.Array,
    mask: jax.Array,
    *,
    kl_coef: float,
    clip_range: tuple[float, float] = (-10.0, 10.0),
) -> jax.Array:
    """Per-token rewards `r_t = -β·kl_t·m_t + 1[t = last(m)]·clip(R, lo, hi)` (OpenRLHF `compute_reward`).

    Args:
      terminal_reward: `[batch]` sequence-level reward R, placed on each row's last completion token.
      kl: `[batch, time]` per-token KL estimate; mask `[batch, time]`.
    Returns `[batch, time]`.
    """
    chex.assert_rank(terminal_reward, 1)
    chex.assert_equal_shape([kl, mask])
    lo, hi = clip_range
    clipped = jnp.clip(_f32(terminal_reward), lo, hi)
    return -kl_coef * _f32(kl) * _f32(mask) + last_token_mask(mask) * clipped[:, None]


# ----------------------------------------------------------------------------- advantages


def gae_advantages(
    rewards: jax.Array, values: jax.Array, mask: jax.Array, *, gamma: float, lam: float
) -> tuple[jax.Array, jax.Array]:
    """Generalized advantage estimation as a reverse `lax.scan` over time.

    Rewards and values are first multiplied by the mask (OpenRLHF), so right padding contributes
    nothing: `δ_t = r_t + γ·V_{t+1} - V_t`, `A_t = δ_t + γλ·A_{t+1}`, `G_t = A_t + V_t`.
    Args: rewards, values, mask `[batch, time]`. Returns (advantages, returns), both `[batch, time]`.
    """
    chex.assert_equal_shape([rewards, values, mask])
    mask = _f32(mask)
    rewards_tm = (_f32(rewards) * mask).T  # time-major [time, batch]
    values_tm = (_f32(values) * mask).T
    next_values = jnp.concatenate([values_tm[1:], jnp.zeros_like(values_tm[:1])], axis=0)

    def step(next_advantage, inputs):
        reward, value, next_value = inputs
        delta = reward + gamma * next_value - value
        advantage = delta + gamma * lam * next_advantage
        return advantage, advantage

    _, advantages_tm = jax.lax.scan(
        step, jnp.zeros_like(values_tm[0]), (rewards_tm, values_tm, next_values), reverse=True
    )
    advantages = advantages_tm.T
    return advantages, advantages + values_tm.T


def masked_whiten(x: jax.Array, mask: jax.Array, *, eps: float = 1e-8, shift_mean: bool = True) -> jax.Array:
    """`(x - μ_m) / sqrt(max(σ²_m, eps))` with statistics over masked entries only (OpenRLHF)."""
    mean = masked_mean(x, mask)
    var = masked_mean((_f32(x) - mean) ** 2, mask)
    whitened = (_f32(x) - mean) * jax.lax.rsqrt(jnp.maximum(var, eps))
    return whitened if shift_mean else whitened + mean


def group_advantages(rewards: jax.Array, group_size: int, *, method: str = "grpo", eps: float = 1e-6) -> jax.Array:
    """Group-relative advantages for `[num_groups * group_size]` rewards (consecutive groups).

    grpo:   (R_i - mean_g) / (std_g + eps), std with Bessel's correction (as TRL / torch.std);
    drgrpo: R_i - mean_g;
    rloo:   R_i - mean of the other G-1 rewards of the group.
    Returns `[num_groups * group_size]`.
    """
    chex.assert_rank(rewards, 1)
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 for group advantages, got {group_size}")
    if rewards.shape[0] % group_size:
        raise ValueError(f"{rewards.shape[0]} rewards do not split into groups of {group_size}")
    grouped = _f32(rewards).reshape(-1, group_size)
    mean = grouped.mean(axis=-1, keepdims=True)
    if method == "grpo":
        out = (grouped - mean) / (grouped.std(axis=-1, ddof=1, keepdims=True) + eps)
    elif method == "drgrpo":
        out = grouped - mean
    elif method == "rloo":
        others = (grouped.sum(axis=-1, keepdims=True) - grouped) / (group_size - 1)
        out = grouped - others
    else:
        raise ValueError(f"Unknown group advantage method {method!r}; expected grpo, drgrpo or rloo")
    return out.reshape(-1)


# ----------------------------------------------------------------------------- policy / value


def ppo_policy_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    *,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    dual_clip: float | None = None,
    reduction: Reduction = "sequence",
) -> tuple[jax.Array, dict]:
    """Clipped surrogate `max(-ρA, -clip(ρ, 1-ε_lo, 1+ε_hi)A)`, ρ = exp(logp - old_logp).

    With `dual_clip = c > 1`, tokens with A < 0 are capped at `-c·A` (dual-clip PPO).
    Returns (scalar loss, {"clip_fraction", "approx_kl"}).
    """
    chex.assert_equal_shape([logp, old_logp, advantages, mask])
    high = clip_eps if clip_eps_high is None else clip_eps_high
    advantages = _f32(advantages)
    ratio = jnp.exp(_f32(logp) - _f32(old_logp))
    unclipped = -ratio * advantages
    clipped = -jnp.clip(ratio, 1.0 - clip_eps, 1.0 + high) * advantages
    per_token = jnp.maximum(unclipped, clipped)
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
        per_token = jnp.where(advantages < 0, jnp.minimum(per_token, -dual_clip * advantages), per_token)
    metrics = {
        "clip_fraction": masked_mean((clipped > unclipped).astype(jnp.float32), mask),
        "approx_kl": masked_mean(_f32(old_logp) - _f32(logp), mask),
    }
    return aggregate(per_token, mask, reduction), metrics


def ppo_value_loss(
    values: jax.Array,
    old_values: jax.Array,
    returns: jax.Array,
    mask: jax.Array,
    *,
    clip_eps: float | None = 0.2,
    reduction: Reduction = "sequence",
) -> jax.Array:
    """`½·agg max((V - G)², (V_old + clip(V - V_old, ±ε_v) - G)²)`; `clip_eps=None` is the plain MSE."""
    chex.assert_equal_shape([values, old_values, returns, mask])
    values, old_values, returns = _f32(values), _f32(old_values), _f32(returns)
    squared = (values - returns) ** 2
    if clip_eps is not None:
        clipped_values = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        squared = jnp.maximum(squared, (clipped_values - returns) ** 2)
    return 0.5 * aggregate(squared, mask, reduction)


def grpo_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    ref_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    *,
    clip_eps: float = 0.2,
    kl_coef: float = 0.04,
    reduction: Reduction = "token",
) -> tuple[jax.Array, dict]:
    """GRPO: PPO clipped surrogate with per-sequence advantages `[batch]` + `β·k3(π‖π_ref)` per token."""
    chex.assert_rank(advantages, 1)
    token_advantages = jnp.broadcast_to(_f32(advantages)[:, None], logp.shape)
    high = clip_eps
    ratio = jnp.exp(_f32(logp) - _f32(old_logp))
    surrogate = jnp.maximum(-ratio * token_advantages, -jnp.clip(ratio, 1 - clip_eps, 1 + high) * token_advantages)
    kl = kl_estimate(logp, ref_logp, "k3")
    loss = aggregate(surrogate + kl_coef * kl, mask, reduction)
    return loss, {"kl": masked_mean(kl, mask)}
