"""Core RL from preferences, as pure functions over explicit pytrees.

  `losses`        BT loss, KL estimators, shaped rewards, GAE, whitening, PPO/GRPO losses;
  `kl_control`    fixed / adaptive KL-coefficient controllers over `{"kl_coef": []}`;
  `reward_model`  backbone + scalar head: reward at the last attended token, per-token critic values,
                  Bradley–Terry training step;
  `ppo`           actor / critic / reference roles: rollouts, experience, clipped updates, one iteration.
"""

from humanai_jax.rl.kl_control import (  # noqa: F401
    KL_CONTROLLERS,
    adaptive_kl_update,
    fixed_kl_update,
    init_kl_state,
    kl_update,
)
from humanai_jax.rl.losses import (  # noqa: F401
    aggregate,
    bradley_terry_loss,
    gae_advantages,
    group_advantages,
    grpo_loss,
    kl_estimate,
    last_token_mask,
    masked_mean,
    masked_whiten,
    pairwise_accuracy,
    ppo_policy_loss,
    ppo_value_loss,
    shaped_rewards,
)
