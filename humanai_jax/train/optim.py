"""Optimizer and learning-rate schedule from the `optim` config block.

  optim.name          "adamw" | "sgd"
  optim.lr            peak learning rate
  optim.schedule      "warmup_cosine" | "constant" | "warmup_linear"
  optim.warmup_steps  linear warm-up from 0 to `lr`
  optim.decay_steps   total schedule length (0 = the run's `train.steps`)
  optim.end_lr_frac   final lr = lr * end_lr_frac
  optim.b1, b2, eps, weight_decay   AdamW hyper-parameters (passed by keyword)
  optim.clip_norm     global-norm gradient clipping (0 = off)

Weight decay skips norms and biases (`decay_mask`).
"""

from __future__ import annotations

import re
from typing import Any

import jax
import optax

# Leaf names that are never weight-decayed: RMSNorm scales and biases.
_NO_DECAY = re.compile(r"(norm|^b[qkvo]$|bias|scale)")


def _leaf_name(path) -> str:
    last = path[-1]
    for attr in ("key", "name", "idx"):
        if hasattr(last, attr):
            return str(getattr(last, attr))
    return str(last)


def decay_mask(params: Any) -> Any:
    """Tree of bools matching `params`: True where weight decay applies (matrices, embeddings)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: not _NO_DECAY.search(_leaf_name(path)), params)


def make_schedule(optim_cfg, total_steps: int) -> optax.Schedule:
    """Learning-rate schedule (step -> lr) from the config; `decay_steps=0` means `total_steps`."""
    lr = float(optim_cfg.lr)
    warmup = int(optim_cfg.get("warmup_steps", 0))
    decay_steps = int(optim_cfg.get("decay_steps", 0)) or int(total_steps)
    end = lr * float(optim_cfg.get("end_lr_frac", 0.0))
    kind = optim_cfg.get("schedule", "warmup_cosine")
    if kind == "constant":
        return optax.constant_schedule(lr)
    if kind == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0, peak_value=lr, warmup_steps=warmup, decay_steps=max(decay_steps, warmup + 1), end_value=end
        )
    if kind == "warmup_linear":
        return optax.join_schedules(
            [
                optax.linear_schedule(0.0, lr, max(warmup, 1)),
                optax.linear_schedule(lr, end, max(decay_steps - warmup, 1)),
            ],
            boundaries=[max(warmup, 1)],
        )
    raise ValueError(f"Unknown optim.schedule {kind!r}; valid: constant, warmup_cosine, warmup_linear")


def make_optimizer(optim_cfg, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """`optax.chain(clip_by_global_norm, adamw(...))` and its schedule, from the `optim` block."""
    schedule = make_schedule(optim_cfg, total_steps)
    name = optim_cfg.get("name", "adamw")
    if name == "adamw":
        opt = optax.adamw(
            learning_rate=schedule,
            b1=float(optim_cfg.get("b1", 0.9)),
            b2=float(optim_cfg.get("b2", 0.95)),
            eps=float(optim_cfg.get("eps", 1e-8)),
            weight_decay=float(optim_cfg.get("weight_decay", 0.0)),
            mask=decay_mask,
        )
    elif name == "sgd":
        opt = optax.sgd(learning_rate=schedule, momentum=float(optim_cfg.get("momentum", 0.0)) or None)
    else:
        raise ValueError(f"Unknown optim.name {name!r}; valid: adamw, sgd")
    clip = float(optim_cfg.get("clip_norm", 0.0))
    parts = ([optax.clip_by_global_norm(clip)] if clip > 0 else []) + [opt]
    return optax.chain(*parts), schedule
