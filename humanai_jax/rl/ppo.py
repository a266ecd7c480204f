"""PPO for language-model policies (actor–critic with a frozen reference), as pure functions over pytrees.

Roles (PPO as PLUS trains its summarizer, arXiv 2507.13579 §3; settings in `docs/plus.md`):
  actor      `{"params", "opt_state"}`: the policy π_θ being trained;
  critic     `{"params", "opt_state"}`: per-token values V (e.g. `rl.reward_model.token_values`);
  reference  params of the frozen initial policy π_ref (never given to an optimizer);
  reward     a sequence-level scalar R per rollout, computed by the caller (e.g. a reward model,
             `rl.reward_model.score_pairs`) and passed in as an array;
  kl         the KL controller's state `{"kl_coef": []}` (`rl.kl_control`).
A PPO state is a dict holding at least `{"actor", "critic", "ref", "kl"}`; other keys pass through.

Sequence layout (fixed shapes): `tokens`, `attention` `[B, T]` (prompt left-padded, completion
right-padded, `sequence_layout`); every per-token array (`logp`, `values`, `action_mask`, rewards,
advantages, returns) is `[B, T-1]` and position t scores token t + 1.

One PPO iteration on a scored rollout batch (`ppo_iteration`):
  1. experience: log π_θ (old log-probs), log π_ref, V, per-token KL estimate, shaped rewards
     `r_t = -β·kl_t + 1[t = last]·clip(R)`, GAE advantages and returns, optional whitening
     (`compute_experience`, using `rl.losses`);
  2. `epochs` passes over the buffer in shuffled minibatches, each a clipped-surrogate actor step and a
     clipped value-loss critic step (`ppo_update`);
  3. KL controller update from the batch's mean per-sequence KL and its sample count (`kl_update`).

The policy and critic enter as functions `logprob_fn(params, tokens, attention) -> [B, T-1]` and
`value_fn(params, tokens, attention) -> [B, T-1]`, so any parameterisation works (a backbone LM via
`lm_logprob_fn`, a logits table in tests).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from humanai_jax import backbone, decoding
from humanai_jax.backbone import ModelConfig
from humanai_jax.rl import kl_control as KL, losses as L
from humanai_jax.rl.reward_model import apply_gradients, token_values
from humanai_jax.train import losses

LogprobFn = Callable[[object, jax.Array, jax.Array], jax.Array]
ValueFn = Callable[[object, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Static PPO settings (hashable: closed over by jit). Defaults are PLUS's (`docs/plus.md`, the schedule)."""

    kl_coef: float = 0.01  # initial β (the fixed controller keeps it)
    kl_estimator: str = "k1"  # k1 | k2 | k3 (`rl.losses.kl_estimate`)
    kl_controller: str = "fixed"  # fixed | adaptive (`rl.kl_control.adaptive_kl_update`)
    kl_target: float = 0.0  # adaptive only: target per-token KL (> 0)
    kl_horizon: float = 10000.0  # adaptive only: samples over which β moves by at most ±20%
    gamma: float = 1.0
    lam: float = 0.95
    clip_eps: float = 0.2
    value_clip_eps: float = 0.2
    reward_clip: tuple[float, float] = (-10.0, 10.0)
    policy_reduction: str = "sequence"
    value_reduction: str = "sequence"
    whiten_advantages: bool = True
    epochs: int = 1  # passes over the rollout buffer per iteration (PLUS: 1)

    def __post_init__(self):
        if self.kl_controller not in KL.KL_CONTROLLERS:
            raise ValueError(f"Unknown kl_controller {self.kl_controller!r}; expected one of {KL.KL_CONTROLLERS}")
        if self.kl_controller == "adaptive" and not (self.kl_target > 0 and self.kl_horizon > 0):
            raise ValueError(f"kl_controller='adaptive' needs kl_target > 0 and kl_horizon > 0, got "
                             f"{self.kl_target}, {self.kl_horizon}")
        if self.kl_estimator not in L.KL_KINDS:
            raise ValueError(f"Unknown kl_estimator {self.kl_estimator!r}; expected one of {L.KL_KINDS}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")


# ----------------------------------------------------------------------------- policy / critic functions


def token_logprobs(params, tokens: jax.Array, attention_mask: jax.Array, config: ModelConfig, rules=None) -> jax.Array:
    """`[batch, time - 1]`: log π(tokens[:, t+1] | tokens[:, :t+1]) under the causal LM `params` (the core
    loss family's `train.losses.token_logprobs` on the forward's logits).

    The label is picked with a one-hot select (elementwise + reduction), not a gather, so a
    vocab-sharded logits array needs no inferred gather sharding (same value: one non-zero term)."""
    logits = backbone.forward(params, tokens, config, attention_mask=attention_mask, rules=rules)[:, :-1]
    return losses.token_logprobs(logits, tokens[:, 1:])


def lm_logprob_fn(config: ModelConfig, rules=None) -> LogprobFn:
    """`logprob_fn` of a backbone causal LM (actor and reference)."""
    return lambda params, tokens, attention: token_logprobs(params, tokens, attention, config, rules)


def critic_value_fn(config: ModelConfig, rules=None) -> ValueFn:
    """`value_fn` of a backbone + scalar-head critic (`rl.reward_model`)."""
    return lambda params, tokens, attention: token_values(params, tokens, attention, config, rules)


# ----------------------------------------------------------------------------- rollouts


def sample_completions(actor_params, config: ModelConfig, prompts: Sequence[Sequence[int]], rng: jax.Array, *,
                       max_new_tokens: int, temperature: float, stop_token_ids: Sequence[int] = (),
                       pad_id: int | None = None, rules=None) -> list[list[int]]:
    """Samples one completion per prompt from the actor's live params with the decoding engine.

    rng: a typed key or raw uint32 key data (what a checkpointed state holds). Returns token-id lists
    (the stop token kept, at most `max_new_tokens` each)."""
    if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):  # raw uint32 keys (checkpointable) -> typed
        rng = jax.random.wrap_key_data(rng)
    tokens, lengths = decoding.generate(
        actor_params, config, [list(p) for p in prompts], max_new_tokens=max_new_tokens, temperature=temperature,
        stop_token_ids=tuple(stop_token_ids), rng=rng, pad_id=pad_id, rules=rules,
    )
    return [list(map(int, row[:n])) for row, n in zip(tokens, lengths)]


def pad_rows(rows: Sequence[Sequence[int]], length: int, pad_id: int, *, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Pads token-id rows to a fixed `length` (fixed shapes avoid recompiles). Rows longer than
    `length` are truncated from the left for left padding (keep the end of a prompt) and from the
    right otherwise. Returns (tokens `[n, length]` int32, mask `[n, length]` int32)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    tokens = np.full((len(rows), length), pad_id, np.int32)
    mask = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        row = list(row)[-length:] if side == "left" else list(row)[:length]
        if side == "left":
            tokens[i, length - len(row) :] = row
            mask[i, length - len(row) :] = 1
        else:
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1
    return tokens, mask


def sequence_layout(prompt_tokens: np.ndarray, prompt_mask: np.ndarray, completion_tokens: np.ndarray,
                    completion_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Joins left-padded prompts `[B, P]` and right-padded completions `[B, C]` (tokens and 0/1 masks).

    Returns `{"tokens", "attention"}` `[B, P+C]` and `"action_mask"` `[B, P+C-1]` float32, 1 where the
    *next* token is a completion token (so it lines up with `token_logprobs`)."""
    tokens = np.concatenate([prompt_tokens, completion_tokens], axis=1)
    attention = np.concatenate([prompt_mask, completion_mask], axis=1)
    action = np.concatenate([np.zeros_like(prompt_mask[:, 1:]), completion_mask], axis=1).astype(np.float32)
    return {"tokens": tokens, "attention": attention, "action_mask": action}


def rollout(actor_params, config: ModelConfig, prompts: Sequence[Sequence[int]], rng: jax.Array,
            reward_fn: Callable[[list[list[int]], list[list[int]]], jax.Array], *, prompt_len: int,
            completion_len: int, pad_id: int, temperature: float = 1.0, stop_token_ids: Sequence[int] = (),
            rules=None) -> tuple[dict[str, np.ndarray], jax.Array, list[list[int]]]:
    """Samples a completion per prompt and scores it: the input of `ppo_iteration`.

    reward_fn(prompts, completions) -> `[B]` sequence rewards (e.g. a reward model on decoded text).
    Returns (seq `{"tokens", "attention"}` `[B, prompt_len + completion_len]`, `"action_mask"` `[B, ... - 1]`;
    rewards `[B]`; the completions as token-id lists)."""
    prompts = [list(p) for p in prompts]
    completions = sample_completions(actor_params, config, prompts, rng, max_new_tokens=completion_len,
                                     temperature=temperature, stop_token_ids=stop_token_ids, pad_id=pad_id, rules=rules)
    seq = sequence_layout(*pad_rows(prompts, prompt_len, pad_id, side="left"),
                          *pad_rows(completions, completion_len, pad_id, side="right"))
    return seq, jnp.asarray(reward_fn(prompts, completions), jnp.float32), completions


# ----------------------------------------------------------------------------- experience


def compute_experience(actor_params, ref_params, critic_params, seq: dict, terminal_reward: jax.Array,
                       kl_coef: jax.Array, *, logprob_fn: LogprobFn, value_fn: ValueFn, cfg: PPOConfig) -> dict:
    """Everything PPO needs from one scored rollout batch.

    Args:
      seq: `{"tokens", "attention"}` `[B, T]`, `"action_mask"` `[B, T-1]`.
      terminal_reward: `[B]` sequence reward R (placed, clipped, on each row's last action token).
      kl_coef: `[]` the controller's current β (an argument, so an adaptive β does not recompile).
    Returns `[B, T-1]` arrays `old_logp`, `ref_logp`, `old_values`, `token_kl` (masked), `rewards`,
    `advantages` (whitened over the masked tokens of the batch if `cfg.whiten_advantages`), `returns`,
    and `kl` `[B]` (each row's masked mean per-token KL).
    """
    logp = logprob_fn(actor_params, seq["tokens"], seq["attention"])
    ref_logp = logprob_fn(ref_params, seq["tokens"], seq["attention"])
    values = value_fn(critic_params, seq["tokens"], seq["attention"])
    mask = seq["action_mask"]
    kl = L.kl_estimate(logp, ref_logp, cfg.kl_estimator) * mask
    rewards = L.shaped_rewards(terminal_reward, kl, mask, kl_coef=kl_coef, clip_range=cfg.reward_clip)
    advantages, returns = L.gae_advantages(rewards, values, mask, gamma=cfg.gamma, lam=cfg.lam)
    if cfg.whiten_advantages:
        advantages = L.masked_whiten(advantages, mask)
    return {"old_logp": logp, "ref_logp": ref_logp, "old_values": values, "token_kl": kl, "rewards": rewards,
            "advantages": advantages, "returns": returns, "kl": L.masked_mean(kl, mask, axis=-1)}


# ----------------------------------------------------------------------------- update


def ppo_update(actor: dict, critic: dict, mb: dict, *, logprob_fn: LogprobFn, value_fn: ValueFn,
               actor_tx: optax.GradientTransformation, critic_tx: optax.GradientTransformation,
               cfg: PPOConfig) -> tuple[dict, dict, dict]:
    """One PPO step on a minibatch of the buffer (`seq` keys + `compute_experience` keys, `[b, ...]`).

    Actor: clipped surrogate on ρ = exp(log π_θ - old_logp) with the buffer's advantages; critic: clipped
    value loss against the buffer's returns. Returns (actor, critic, metrics: policy_loss, value_loss,
    clip_fraction, approx_kl, actor_grad_norm)."""

    def actor_loss(params):
        logp = logprob_fn(params, mb["tokens"], mb["attention"])
        return L.ppo_policy_loss(logp, mb["old_logp"], mb["advantages"], mb["action_mask"],
                                 clip_eps=cfg.clip_eps, reduction=cfg.policy_reduction)

    def critic_loss(params):
        values = value_fn(params, mb["tokens"], mb["attention"])
        return L.ppo_value_loss(values, mb["old_values"], mb["returns"], mb["action_mask"],
                                clip_eps=cfg.value_clip_eps, reduction=cfg.value_reduction)

    (policy_loss, stats), actor_grads = jax.value_and_grad(actor_loss, has_aux=True)(actor["params"])
    value_loss, critic_grads = jax.value_and_grad(critic_loss)(critic["params"])
    metrics = {"policy_loss": policy_loss, "value_loss": value_loss, **stats,
               "actor_grad_norm": optax.tree.norm(actor_grads)}
    return apply_gradients(actor_tx, actor, actor_grads), apply_gradients(critic_tx, critic, critic_grads), metrics


def kl_update(kl_state: dict, observed_kl: jax.Array, n_steps: int, cfg: PPOConfig) -> dict:
    """The KL controller's next state from a batch's mean per-sequence KL and its number of samples."""
    return KL.kl_update(kl_state, observed_kl, n_steps, kind=cfg.kl_controller, target=cfg.kl_target or None,
                        horizon=cfg.kl_horizon)


def make_ppo_steps(cfg: PPOConfig, *, logprob_fn: LogprobFn, value_fn: ValueFn,
                   actor_tx: optax.GradientTransformation, critic_tx: optax.GradientTransformation) -> dict[str, Callable]:
    """`{"experience": jit(compute_experience), "update": jit(ppo_update), "kl_update": kl_update}` with
    the roles' functions and optimizers closed over."""

    @jax.jit
    def experience(actor_params, ref_params, critic_params, seq, terminal_reward, kl_coef):
        return compute_experience(actor_params, ref_params, critic_params, seq, terminal_reward, kl_coef,
                                  logprob_fn=logprob_fn, value_fn=value_fn, cfg=cfg)

    @jax.jit
    def update(actor, critic, mb):
        return ppo_update(actor, critic, mb, logprob_fn=logprob_fn, value_fn=value_fn, actor_tx=actor_tx,
                          critic_tx=critic_tx, cfg=cfg)

    def kl_step(kl_state, observed_kl, n_steps: int):
        return kl_update(kl_state, observed_kl, n_steps, cfg)

    return {"experience": experience, "update": update, "kl_update": kl_step}


# ----------------------------------------------------------------------------- one iteration


def minibatch_indices(num: int, size: int, rng: jax.Array) -> list[np.ndarray]:
    """A shuffled pass over `num` rows in minibatches of `size` (a ragged tail is dropped)."""
    order = np.asarray(jax.random.permutation(rng, num))
    return [order[i : i + size] for i in range(0, num - size + 1, size)]


def take_rows(tree: dict, index: np.ndarray) -> dict:
    """The rows `index` of every array of a flat dict of `[B, ...]` arrays."""
    return {k: v[index] for k, v in tree.items()}


def ppo_iteration(state: dict, seq: dict, terminal_reward: jax.Array, rng: jax.Array, *, steps: dict,
                  minibatch_size: int, cfg: PPOConfig) -> tuple[dict, dict[str, float]]:
    """Experience → `cfg.epochs` shuffled minibatch passes → KL controller, on one scored rollout batch.

    Args:
      state: `{"actor", "critic", "ref", "kl", ...}` (other keys are returned unchanged).
      seq: `{"tokens", "attention"}` `[B, T]`, `"action_mask"` `[B, T-1]` (`sequence_layout`).
      terminal_reward: `[B]`; rng: key for the minibatch order (epoch e uses `fold_in(rng, e)` for e > 0).
      steps: `make_ppo_steps(...)`.
    Returns (new state, host metrics: the minibatch means of `ppo_update`'s metrics, `kl` (mean
    per-sequence KL of the batch) and `kl_coef` (the β used for this batch)).
    """
    seq = {k: jnp.asarray(v) for k, v in seq.items()}
    kl_coef = state["kl"]["kl_coef"]
    exp = steps["experience"](state["actor"]["params"], state["ref"], state["critic"]["params"], seq,
                              terminal_reward, kl_coef)
    buffer = {**seq, **exp}
    actor, critic, logs = state["actor"], state["critic"], []
    num = int(seq["tokens"].shape[0])
    for epoch in range(cfg.epochs):
        epoch_rng = rng if epoch == 0 else jax.random.fold_in(rng, epoch)
        for index in minibatch_indices(num, minibatch_size, epoch_rng):
            actor, critic, mb_logs = steps["update"](actor, critic, take_rows(buffer, index))
            logs.append(mb_logs)
    if not logs:
        raise ValueError(f"minibatch_size={minibatch_size} is larger than the rollout batch ({num} rows)")
    metrics = {k: float(np.mean([float(x[k]) for x in logs])) for k in logs[0]}
    observed_kl = jnp.mean(exp["kl"])
    metrics.update(kl=float(observed_kl), kl_coef=float(kl_coef))
    new_state = dict(state, actor=actor, critic=critic, kl=steps["kl_update"](state["kl"], observed_kl, num))
    return new_state, metrics
