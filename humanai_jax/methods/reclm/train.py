"""RecLM training losses and the TrainTask (docs/reclm.md §2.5, §2.6, §4).

Parameters: `{"lm": backbone params}` for cgen, plus `"proj"` (the `actor_item_proj` head) and
`"items"` (the trainable item table `[I, E]`) for ret.

Batch (numpy rows from the data pipeline; T = row length - 1):
  tokens [B, T+1] i32, mask [B, T+1] f32 (LM weight of each token as a target);
  cgen: span_node [B, T] i32 (`scope_loss.span_nodes` of the masked targets);
  ret:  ret_pos [B, R] i32 (input position whose hidden state predicts a reply `<SOI>`, -1 padded),
        ret_item [B, R] i32 (the item that span holds).

cgen loss = scope-masked CE (title positions: softmax over the trie children only).
ret loss  = emb_alpha · mean CE(proj(h_SOI-1) · itemsᵀ, item) over all SOIs + LM CE with title and
            `<EOI>` labels dropped (`encode.ret_lm_mask`).
With LoRA (`LossConfig.lora`): `{"lm": frozen base, "lora": adapters, ...}`; the loss runs on
`train.lora.apply_adapters(freeze(base), adapters)` and `merged` gives the plain params for decoding and
export. The base layer stack gets no gradient and no optimizer state (`with_frozen_base`); the embeddings
train with the adapters (the new <SOI>/<EOI> rows need it) unless `train_embeddings=False`.
`loss_norm`: "per_sample" (the reference: batch 1 + accumulation = mean over samples of each sample's
token mean) or "per_token" (sum over the batch / token count).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.transformer import hidden_states, logits_from_hidden
from humanai_jax.decoding.trie import ItemTrie
from humanai_jax.methods.reclm.retrieval import item_proj
from humanai_jax.methods.reclm.scope_loss import scope_masked_cross_entropy
from humanai_jax.train import lora as lora_lib
from humanai_jax.train.losses import token_nll
from humanai_jax.train.trainer import TrainTask


@dataclasses.dataclass(frozen=True)
class LossConfig:
    variant: str  # "cgen" | "ret"
    model: ModelConfig
    loss_norm: str = "per_sample"
    emb_alpha: float = 1.0
    lora: lora_lib.LoraConfig | None = None
    train_embeddings: bool = True  # with LoRA: the embeddings (and an untied head) train too

    def __post_init__(self):
        if self.variant not in ("cgen", "ret"):
            raise ValueError(f"variant must be 'cgen' or 'ret', got {self.variant!r}")
        if self.loss_norm not in ("per_sample", "per_token"):
            raise ValueError(f"loss_norm must be 'per_sample' or 'per_token', got {self.loss_norm!r}")


def normalise(per_token: jax.Array, weight: jax.Array, loss_norm: str) -> jax.Array:
    """`per_token, weight [B, T]` -> scalar (see module docstring)."""
    if loss_norm == "per_token":
        return jnp.sum(per_token * weight) / jnp.maximum(weight.sum(), 1.0)
    rows = weight.sum(-1)
    per_row = (per_token * weight).sum(-1) / jnp.maximum(rows, 1.0)
    return jnp.sum(per_row) / jnp.maximum(jnp.sum(rows > 0), 1)


def retrieval_loss(params: dict, hidden: jax.Array, pos: jax.Array, item: jax.Array) -> jax.Array:
    """Full-softmax CE over all items of `proj(hidden[b, pos]) · itemsᵀ` (raw dots), mean over valid spans.
    hidden [B, T, D]; pos, item [B, R] (-1 = none)."""
    valid = pos >= 0
    h = jnp.take_along_axis(hidden, jnp.maximum(pos, 0)[..., None], axis=1)  # [B, R, D]
    scores = item_proj(params["proj"], h) @ params["items"].astype(jnp.float32).T  # [B, R, I]
    nll = optax.softmax_cross_entropy_with_integer_labels(scores, jnp.maximum(item, 0))
    return jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.maximum(valid.sum(), 1)


def lm_params(params: dict, cfg: LossConfig, *, train: bool = False) -> dict:
    """The backbone params the model runs on: `params["lm"]`, or with LoRA the base with its adapters
    applied (`train=True`: the frozen base leaves behind stop_gradient)."""
    if cfg.lora is None:
        return params["lm"]
    base = params["lm"]
    if train:
        base = lora_lib.freeze(base, lora_lib.trainable_labels(base, train_embeddings=cfg.train_embeddings))
    return lora_lib.apply_adapters(base, params["lora"], cfg.lora)


def merged(params: dict, cfg: LossConfig) -> dict:
    """Params without adapters: `{"lm": base + LoRA merged, ...}` (decoding, evaluation, `save_pretrained`)."""
    if cfg.lora is None:
        return params
    out = {k: v for k, v in params.items() if k != "lora"}
    out["lm"] = lm_params(params, cfg)
    return out


def with_frozen_base(tx: optax.GradientTransformation, params: dict, cfg: LossConfig):
    """`tx` on the trainable leaves only; the frozen base leaves get zero updates and no optimizer state."""
    if cfg.lora is None:
        return tx
    labels = {k: jax.tree.map(lambda _: "train", v) for k, v in params.items()}
    labels["lm"] = lora_lib.trainable_labels(params["lm"], train_embeddings=cfg.train_embeddings)
    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def reclm_loss(params: dict, batch: dict, cfg: LossConfig, trie: ItemTrie | None) -> tuple[jax.Array, dict]:
    """(total loss, {lm_loss, ret_loss}) of one batch."""
    tokens = batch["tokens"]
    inputs, targets, weight = tokens[:, :-1], tokens[:, 1:], batch["mask"][:, 1:]
    lm = lm_params(params, cfg, train=True)
    hidden = hidden_states(lm, inputs, cfg.model)
    logits = logits_from_hidden(lm, hidden, cfg.model)
    labels = jnp.where(weight > 0, targets, -1)
    if cfg.variant == "cgen":
        per_token = scope_masked_cross_entropy(logits, labels, batch["span_node"], trie)
    else:
        per_token = token_nll(logits, labels)
    lm = normalise(per_token, weight, cfg.loss_norm)
    if cfg.variant == "cgen":
        return lm, {"lm_loss": lm}
    ret = retrieval_loss(params, hidden, batch["ret_pos"], batch["ret_item"])
    return cfg.emb_alpha * ret + lm, {"lm_loss": lm, "ret_loss": ret}


def make_optimizer(lr: float, steps: int, *, warmup_frac: float = 0.0125, end_lr: float = 1e-7, power: float = 2.0,
                   weight_decay: float = 0.01, clip: float = 1.0, b2: float = 0.999, eps: float = 1e-5):
    """The reference's AdamW (§2.6): linear warm-up for `warmup_frac` of the steps, then polynomial decay
    (power 2) to `end_lr`; weight decay on ndim >= 2 leaves only; global-norm clipping."""
    warm = max(1, int(round(warmup_frac * steps)))
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warm), optax.polynomial_schedule(lr, end_lr, power, max(1, steps - warm))],
        [warm])
    decay_mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)
    tx = optax.chain(optax.clip_by_global_norm(clip),
                     optax.adamw(schedule, b1=0.9, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask))
    return tx, schedule


def reclm_task(init_params: Any, cfg: LossConfig, trie: ItemTrie | None, tx, schedule, batch_at, example: dict,
               fingerprint: dict) -> TrainTask:
    """A replicated single-device `TrainTask` over `{"lm", ["proj", "items"]}` (small models; a sharded
    variant would take the backbone's logical axes as `experiments/lm.py` does)."""
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))
    rep = NamedSharding(mesh, P())
    device_trie = trie.to_device() if trie is not None else None

    def init(rng):
        params = jax.tree.map(jnp.asarray, init_params)
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params), "rng": rng}

    abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
    shardings = jax.tree.map(lambda _: rep, abstract)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep), abstract)

    def step(state, batch):
        (loss, parts), grads = jax.value_and_grad(reclm_loss, has_aux=True)(state["params"], batch, cfg, device_trie)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "lr": schedule(state["step"]), **parts}
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state, "rng": state["rng"]}, metrics

    abstract_batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=rep) for k, v in example.items()}
    return TrainTask(init=init, abstract_state=abstract, state_shardings=shardings, step=step, batch_at=batch_at,
                     abstract_batch=abstract_batch, fingerprint=fingerprint,
                     tokens_per_step=int(np.prod(example["tokens"].shape)))
