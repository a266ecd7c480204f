"""Dense collaborative-filtering models: MF or LightGCN embeddings, UltraGCN L_O or BPR loss.

Params are a pytree {"user": [n_users, dim], "item": [n_items, dim]}. A backbone maps params to the
final user/item embeddings used for scoring, s(u, i) = e_u . e_i:
  * "mf": the tables themselves (UltraGCN at test time is plain MF).
  * "lightgcn": the mean of K propagations over the symmetric-normalised user-item graph (He et al. 2020).

Losses per batch of pairs (u, i+, w_b) with negatives j drawn uniformly with replacement inside the
jitted step (spec sad.md §4):
  * "ultragcn" (L_O): sum_b w_b [ w+ BCE(s_ui, 1) + neg_weight * mean_j w-_j BCE(s_uj, 0) ]
      with w+ = w1 + w2 b_u b_i, w- = w3 + w4 b_u b_j, b_i = 1/sqrt(d_i + 1), and
      b_u = 1/sqrt(d_u + 1) ("sad") or sqrt(d_u + 1)/d_u ("ultragcn"); degrees from the real train set.
  * "bpr": sum_b w_b mean_j -log sigmoid(s_ui - s_uj).
  plus gamma/2 (||E_U||^2 + ||E_I||^2) over the FULL tables every step.
Negatives are drawn per group of `negative_group_size` consecutive pairs of the (shuffled) batch:
[B / g, N] draws, each used by the g pairs of its group. g = 1 is the reference's per-pair sampling
([B, N]); g = B shares one [N] draw across the batch. Every pair still sees N uniform negatives with
replacement (same marginal distribution, same expected gradient); what changes is how concentrated an
item's negative gradient is within a step. Larger g turns the negative scores into small matmuls and
cuts the gather/scatter traffic by g (what makes 100 ML-1M epochs fit in minutes on a CPU), but with
Adam a very bursty gradient (g = B: an item is a negative of all 1024 users or of none) slows the
escape from the popularity plateau; see docs/sad.md.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse as sp

Params = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class DenseHParams:
    dim: int = 64
    init_std: float = 1e-4
    batch_size: int = 1024
    num_negatives: int = 200
    negative_weight: float = 200.0
    w1: float = 1e-7
    w2: float = 1.0
    w3: float = 1e-7
    w4: float = 1.0
    gamma: float = 1e-4
    lr: float = 1e-3
    loss: str = "ultragcn"  # "ultragcn" | "bpr"
    backbone: str = "mf"  # "mf" | "lightgcn"
    n_layers: int = 3
    user_weight: str = "sad"  # "sad": 1/sqrt(d_u+1); "ultragcn": sqrt(d_u+1)/d_u
    negative_group_size: int = 1  # pairs sharing one negative draw: 1 = per pair (released), batch_size = shared
    shuffle: bool = True  # False = the released code's fixed, user-sorted order (docs/sad.md §7 #5)

    def __post_init__(self):
        choices = {"loss": ("ultragcn", "bpr"), "backbone": ("mf", "lightgcn"),
                   "user_weight": ("sad", "ultragcn")}
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"dense.{field}={getattr(self, field)!r} is not supported; choose one of {allowed}")
        if self.negative_group_size < 1 or self.batch_size % self.negative_group_size:
            raise ValueError(f"dense.negative_group_size={self.negative_group_size} must divide "
                             f"batch_size={self.batch_size}")


class Graph(NamedTuple):
    """Degree vectors and (for LightGCN) the normalised user-item adjacency as COO arrays.

    beta_user [n_users], beta_item [n_items]: the L_O degree weights.
    rows/cols/vals [nnz]: R_hat = D_u^-1/2 R D_i^-1/2 (used by the "lightgcn" backbone).
    """

    beta_user: jax.Array
    beta_item: jax.Array
    rows: jax.Array
    cols: jax.Array
    vals: jax.Array


def build_graph(train: sp.csr_matrix, user_weight: str = "sad") -> Graph:
    """Degrees and normalised adjacency from the real (un-augmented) train matrix [n_users, n_items]."""
    d_u = np.asarray(train.sum(1)).ravel()
    d_i = np.asarray(train.sum(0)).ravel()
    if user_weight == "sad":
        beta_user = 1.0 / np.sqrt(d_u + 1.0)
    else:
        beta_user = np.sqrt(d_u + 1.0) / np.maximum(d_u, 1.0)
    beta_item = 1.0 / np.sqrt(d_i + 1.0)
    coo = train.tocoo()
    vals = 1.0 / np.sqrt(np.maximum(d_u[coo.row], 1) * np.maximum(d_i[coo.col], 1))
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return Graph(f32(beta_user), f32(beta_item), jnp.asarray(coo.row, jnp.int32), jnp.asarray(coo.col, jnp.int32),
                 f32(vals))


def init_params(key, n_users: int, n_items: int, hp: DenseHParams) -> Params:
    """E ~ N(0, init_std^2) for both tables."""
    ku, ki = jax.random.split(key)
    return {"user": hp.init_std * jax.random.normal(ku, (n_users, hp.dim), jnp.float32),
            "item": hp.init_std * jax.random.normal(ki, (n_items, hp.dim), jnp.float32)}


def embeddings(params: Params, graph: Graph, backbone: str, n_layers: int) -> tuple[jax.Array, jax.Array]:
    """Final ([n_users, dim], [n_items, dim]) embeddings of the backbone."""
    if backbone == "mf":
        return params["user"], params["item"]
    eu, ei = params["user"], params["item"]
    sum_u, sum_i = eu, ei
    for _ in range(n_layers):
        msg_u = jax.ops.segment_sum(graph.vals[:, None] * ei[graph.cols], graph.rows, eu.shape[0])
        msg_i = jax.ops.segment_sum(graph.vals[:, None] * eu[graph.rows], graph.cols, ei.shape[0])
        eu, ei = msg_u, msg_i
        sum_u, sum_i = sum_u + eu, sum_i + ei
    return sum_u / (n_layers + 1), sum_i / (n_layers + 1)


def batch_loss(params, graph: Graph, users, items, weights, negatives, hp: DenseHParams):
    """Loss of one batch. users/items/weights [B]; negatives [G, N] item ids, one row per group of
    B / G consecutive pairs (G = B: per-pair negatives)."""
    eu_all, ei_all = embeddings(params, graph, hp.backbone, hp.n_layers)
    eu, ei = eu_all[users], ei_all[items]  # [B, D]
    pos = jnp.sum(eu * ei, -1)  # [B]
    n_groups, n_neg = negatives.shape
    en = ei_all[negatives]  # [G, N, D]
    neg = jnp.einsum("gsd,gnd->gsn", eu.reshape(n_groups, -1, eu.shape[-1]), en).reshape(-1, n_neg)  # [B, N]
    group_size = users.shape[0] // n_groups
    beta_neg = jnp.repeat(graph.beta_item[negatives], group_size, axis=0)  # [B, N]
    if hp.loss == "ultragcn":
        b_u = graph.beta_user[users]
        w_pos = hp.w1 + hp.w2 * b_u * graph.beta_item[items]
        w_neg = hp.w3 + hp.w4 * b_u[:, None] * beta_neg
        per_pair = -w_pos * jax.nn.log_sigmoid(pos) + hp.negative_weight * jnp.mean(
            -w_neg * jax.nn.log_sigmoid(-neg), -1)
    else:
        per_pair = jnp.mean(-jax.nn.log_sigmoid(pos[:, None] - neg), -1)
    data_term = jnp.sum(weights * per_pair)
    l2 = 0.5 * (jnp.sum(params["user"] ** 2) + jnp.sum(params["item"] ** 2))
    return data_term + hp.gamma * l2


def make_optimizer(hp: DenseHParams) -> optax.GradientTransformation:
    return optax.adam(hp.lr)


@functools.partial(jax.jit, static_argnames=("hp", "n_items"))
def train_epoch(params, opt_state, key, pairs, weights, graph: Graph, *, hp: DenseHParams, n_items: int):
    """One pass over `pairs` [P, 2] with per-pair `weights` [P] -> (params, opt_state, mean batch loss).

    Shuffles with `key` unless hp.shuffle is False (then the given order is kept, as released).
    The last partial batch is padded with weight-0 pairs, so every pair is seen once.
    """
    optimizer = make_optimizer(hp)
    n_pairs = pairs.shape[0]
    perm_key, key = jax.random.split(key)
    order = jax.random.permutation(perm_key, n_pairs) if hp.shuffle else jnp.arange(n_pairs)
    n_batches = -(-n_pairs // hp.batch_size)
    pad = n_batches * hp.batch_size - n_pairs
    order = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)])
    w = jnp.concatenate([weights[order[:n_pairs]], jnp.zeros((pad,), weights.dtype)])
    batches = (pairs[order].reshape(n_batches, hp.batch_size, 2), w.reshape(n_batches, hp.batch_size),
               jax.random.split(key, n_batches))
    neg_shape = (hp.batch_size // hp.negative_group_size, hp.num_negatives)

    def step(carry, batch):
        params, opt_state = carry
        bp, bw, bkey = batch
        negatives = jax.random.randint(bkey, neg_shape, 0, n_items)
        loss, grads = jax.value_and_grad(batch_loss)(params, graph, bp[:, 0], bp[:, 1], bw, negatives, hp)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), batches)
    return params, opt_state, jnp.mean(losses)


def score_rows_fn(eu: jax.Array, ei: jax.Array) -> Callable[[np.ndarray], jax.Array]:
    """Row score function for `ranking.rank_users`: users [b] -> e_u . e_i [b, n_items]."""
    mm = jax.jit(lambda u: eu[u] @ ei.T)
    return lambda users: mm(jnp.asarray(users))


@dataclasses.dataclass
class DenseResult:
    params: Params
    user_emb: jax.Array  # [n_users, dim] backbone output of the selected epoch
    item_emb: jax.Array  # [n_items, dim]
    best_epoch: int
    best_metric: float
    epochs_run: int
    history: list


def train_dense(
    pairs: np.ndarray,
    weights: np.ndarray,
    graph: Graph,
    n_users: int,
    n_items: int,
    hp: DenseHParams,
    *,
    key,
    max_epochs: int,
    select: Callable[[jax.Array, jax.Array], dict] | None = None,
    select_metric: str = "recall@20",
    eval_every: int = 5,
    eval_every_after: int = 50,
    patience: int = 50,
    log: Callable[..., Any] | None = None,
    fixed_epochs: int | None = None,
    workdir: str | None = None,
) -> DenseResult:
    """Trains with Adam, one Trainer step per epoch (`train.trainer`, `python_step`: each step calls the jitted
    `train_epoch`); evaluates `select(user_emb, item_emb)` on the UltraGCN schedule (every `eval_every`
    epochs, every epoch from `eval_every_after`) and keeps the best embeddings; stops after `patience`
    evaluations without improvement (the hook's early stop). With `fixed_epochs`, trains exactly that many
    epochs and returns the last state (the honest protocol's retraining). `workdir`: where the Trainer keeps
    metrics.jsonl and the final checkpoint (None: a temporary folder). No resume: the selection state (best
    embeddings, evaluations without improvement) is not checkpointed, so a rerun starts over."""
    import contextlib
    import tempfile

    from humanai_jax.checkpoint import abstract_like
    from humanai_jax.train.trainer import STOP_TRAINING, CheckpointConfig, Trainer, TrainerConfig, TrainTask

    init_key, key = jax.random.split(key)
    params = init_params(init_key, n_users, n_items, hp)
    start = {"params": params, "opt_state": make_optimizer(hp).init(params), "key": key}
    pairs_d = jnp.asarray(pairs, jnp.int32)
    weights_d = jnp.asarray(weights, jnp.float32)
    epochs = fixed_epochs if fixed_epochs is not None else max_epochs
    last_loss: dict[str, jax.Array] = {}

    def epoch_step(state, _batch):
        key, sub = jax.random.split(state["key"])
        params, opt_state, loss = train_epoch(state["params"], state["opt_state"], sub, pairs_d, weights_d, graph,
                                              hp=hp, n_items=n_items)
        last_loss["loss"] = loss
        return {"params": params, "opt_state": opt_state, "key": key}, {"loss": loss}

    best = {"metric": -np.inf, "epoch": 0, "params": None, "stale": 0}
    history: list[dict] = []

    def select_epoch(epoch: int, state):
        """The selection hook: evaluate on the schedule, keep the best embeddings, stop after `patience`."""
        if fixed_epochs is not None or select is None:
            return None
        if not (epoch % eval_every == 0 or epoch >= eval_every_after or epoch == epochs):
            return None
        eu, ei = embeddings(state["params"], graph, hp.backbone, hp.n_layers)
        metrics = select(eu, ei)
        history.append({"epoch": epoch, "loss": float(last_loss["loss"]), **metrics})
        if log is not None:
            log(epoch, loss=float(last_loss["loss"]), **metrics)
        if metrics[select_metric] > best["metric"]:
            best.update(metric=metrics[select_metric], epoch=epoch, params=state["params"], stale=0)
        else:
            best["stale"] += 1
        return {f"select_{k}": v for k, v in metrics.items()} | {STOP_TRAINING: best["stale"] >= patience}

    abstract = abstract_like(start)
    task = TrainTask(init=lambda rng: start, abstract_state=abstract,
                     state_shardings=jax.tree.map(lambda a: a.sharding, abstract), step=epoch_step,
                     batch_at=lambda step: {}, abstract_batch={}, python_step=True,
                     fingerprint={"hp": dataclasses.asdict(hp), "epochs": epochs})
    folder = contextlib.nullcontext(workdir) if workdir else tempfile.TemporaryDirectory(prefix="dense_")
    with folder as root:
        trainer = Trainer(root, TrainerConfig(steps=epochs, log_every=max(1, eval_every), progress=False,
                                                        tensorboard=False),
                          CheckpointConfig(every=0, keep=1, async_save=False, resume=False))
        trainer.add_hook(select_epoch, every=1, at_end=False)
        state, summary = trainer.fit(task)
    final = state["params"] if best["params"] is None else best["params"]
    eu, ei = embeddings(final, graph, hp.backbone, hp.n_layers)
    epochs_run = summary["final_step"]
    best_epoch = epochs_run if best["params"] is None else best["epoch"]
    return DenseResult(final, eu, ei, best_epoch, float(best["metric"]), epochs_run, history)
