"""SASRec (Kang & McAuley, arXiv 1808.09781) as pure JAX functions, trained with the shared Trainer.

A generic sequential recommender: fit on per-user item sequences, then score every item for a batch
of histories (full ranking) or take top-k lists with the history excluded. Items are `0..I-1` for the
caller; inside, id 0 is padding and item i is row i + 1 of the embedding table.

Model (UniRec's SASRec as configured by RecAI RecLM-cgen, spec decoding-reclm.md §5.3): item
embeddings scaled by sqrt(D) plus learned absolute positions over a left-padded window of `max_len`;
`n_layers` pre-LayerNorm blocks (causal multi-head attention with padded keys masked, then a
GELU feed-forward of width `inner`); a final LayerNorm; scores = h · item_emb (tied). Loss: full
softmax over all items at every non-padded position of a window. No dropout (the reference's CLI
sets `dropout_prob=0.0`).

    cfg = SASRecConfig(n_items=I)
    params = init_sasrec(cfg, jax.random.key(0))
    scores = sasrec_scores(params, cfg, pad_histories(histories, cfg.max_len))    # [B, I]
    fit = fit_sasrec(train_sequences, cfg, workdir, steps=..., evaluate=...)      # Trainer-driven
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P


@dataclasses.dataclass(frozen=True)
class SASRecConfig:
    n_items: int
    max_len: int = 10
    d_model: int = 128
    n_heads: int = 2
    n_layers: int = 2
    inner: int = 256
    init_std: float = 0.02

    def __post_init__(self):
        if self.n_items < 1 or self.max_len < 1:
            raise ValueError(f"n_items and max_len must be >= 1, got {self.n_items}, {self.max_len}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


# ------------------------------------------------------------------------------ model


def init_sasrec(cfg: SASRecConfig, rng: jax.Array) -> dict:
    """normal(0, init_std) matrices, LayerNorm scale 1 / bias 0, zero biases."""
    d, keys = cfg.d_model, iter(jax.random.split(rng, 2 + 6 * cfg.n_layers))

    def normal(shape):
        return cfg.init_std * jax.random.normal(next(keys), shape, jnp.float32)

    def ln():
        return {"scale": jnp.ones((d,)), "bias": jnp.zeros((d,))}

    layers = [{
        "ln1": ln(), "wq": normal((d, d)), "wk": normal((d, d)), "wv": normal((d, d)), "wo": normal((d, d)),
        "ln2": ln(), "w1": normal((d, cfg.inner)), "b1": jnp.zeros((cfg.inner,)),
        "w2": normal((cfg.inner, d)), "b2": jnp.zeros((d,)),
    } for _ in range(cfg.n_layers)]
    item_emb = normal((cfg.n_items + 1, d)).at[0].set(0.0)
    return {"item_emb": item_emb, "pos_emb": normal((cfg.max_len, d)), "layers": layers, "final_ln": ln()}


def _layer_norm(p: dict, x: jax.Array) -> jax.Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-8) * p["scale"] + p["bias"]


def _attention(layer: dict, x: jax.Array, mask: jax.Array, n_heads: int) -> jax.Array:
    b, t, d = x.shape
    split = lambda y: y.reshape(b, t, n_heads, d // n_heads)
    q, k, v = split(x @ layer["wq"]), split(x @ layer["wk"]), split(x @ layer["wv"])
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // n_heads)
    logits = jnp.where(mask[:, None], logits, -1e30)
    out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, -1), v).reshape(b, t, d)
    return out @ layer["wo"]


def sasrec_hidden(params: dict, cfg: SASRecConfig, seqs: jax.Array) -> jax.Array:
    """`seqs [B, L]` internal ids (0 = pad, left padding) -> `[B, L, D]` final hidden states."""
    real = seqs > 0
    x = params["item_emb"][seqs] * np.sqrt(cfg.d_model) + params["pos_emb"][None, : seqs.shape[1]]
    x = x * real[..., None]
    causal = jnp.tril(jnp.ones((seqs.shape[1], seqs.shape[1]), bool))
    # a padded query still attends to itself so its softmax row is never empty; its output is unused
    mask = (causal[None] & real[:, None, :]) | jnp.eye(seqs.shape[1], dtype=bool)[None]
    for layer in params["layers"]:
        x = x + _attention(layer, _layer_norm(layer["ln1"], x), mask, cfg.n_heads)
        h = _layer_norm(layer["ln2"], x)
        x = x + jax.nn.gelu(h @ layer["w1"] + layer["b1"], approximate=False) @ layer["w2"] + layer["b2"]
        x = x * real[..., None]
    return _layer_norm(params["final_ln"], x)


def sasrec_scores(params: dict, cfg: SASRecConfig, seqs: jax.Array) -> jax.Array:
    """Next-item scores `[B, I]` (caller's item ids) from the last position of left-padded `seqs [B, L]`."""
    h = sasrec_hidden(params, cfg, seqs)[:, -1]
    return h @ params["item_emb"][1:].T


def sasrec_loss(params: dict, cfg: SASRecConfig, inputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean full-softmax CE over positions with `targets > 0` (internal ids); inputs, targets [B, L]."""
    logits = sasrec_hidden(params, cfg, inputs) @ params["item_emb"].T  # [B, L, I+1]
    logits = logits.at[..., 0].set(-1e30)  # padding is never a target
    valid = targets > 0
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.maximum(valid.sum(), 1)


# ------------------------------------------------------------------------------ host helpers


def pad_histories(histories: Sequence[Sequence[int]], max_len: int) -> np.ndarray:
    """Caller's item ids -> `[B, max_len]` internal ids, the last `max_len` items, left-padded with 0."""
    out = np.zeros((len(histories), max_len), np.int32)
    for b, h in enumerate(histories):
        h = list(h)[-max_len:]
        if h:
            out[b, max_len - len(h):] = np.asarray(h, np.int32) + 1
    return out


def training_windows(sequences: Sequence[Sequence[int]], rows: np.ndarray, max_len: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each user in `rows`: a random window ending at `e ~ U{2..len}`; inputs = window[:-1],
    targets = window[1:] (internal ids, left-padded). Returns (inputs, targets) `[len(rows), max_len]`."""
    inputs = np.zeros((len(rows), max_len), np.int32)
    targets = np.zeros((len(rows), max_len), np.int32)
    for r, u in enumerate(rows):
        seq = sequences[u]
        e = int(rng.integers(2, len(seq) + 1))
        win = np.asarray(seq[max(0, e - max_len - 1):e], np.int32) + 1
        n = len(win) - 1
        inputs[r, max_len - n:] = win[:-1]
        targets[r, max_len - n:] = win[1:]
    return inputs, targets


def rank_items(scores: np.ndarray, histories: Sequence[Sequence[int]], k: int, exclude: str = "hard") -> np.ndarray:
    """Top-k item ids `[B, k]` by score. exclude: "hard" masks the history, "offset" subtracts 1 from
    history scores (the reference teacher), "none" ranks every item. Ties go to the lower id."""
    scores = np.array(scores, np.float64)
    for b, h in enumerate(histories):
        h = np.asarray(list(h), np.int64)
        if h.size == 0 or exclude == "none":
            continue
        if exclude == "hard":
            scores[b, h] = -np.inf
        elif exclude == "offset":
            scores[b, np.unique(h)] -= 1.0
        else:
            raise ValueError(f"exclude must be hard, offset or none; got {exclude!r}")
    k = min(k, scores.shape[1])
    # argpartition for the k best, then a stable sort of those by (-score, id): ties go to the lower id
    part = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


@functools.partial(jax.jit, static_argnames="cfg")
def _scores_jit(params, cfg, seqs):
    return sasrec_scores(params, cfg, seqs)


def score_histories(params: dict, cfg: SASRecConfig, histories: Sequence[Sequence[int]], batch: int = 256) -> np.ndarray:
    """`[B, I]` float32 scores for caller histories, in jitted blocks of `batch` (the last block padded)."""
    out = []
    for s in range(0, len(histories), batch):
        block = pad_histories(histories[s:s + batch], cfg.max_len)
        n = len(block)
        if n < batch:  # one compiled shape
            block = np.concatenate([block, np.zeros((batch - n, cfg.max_len), np.int32)])
        out.append(np.asarray(_scores_jit(params, cfg, jnp.asarray(block)))[:n])
    return np.concatenate(out) if out else np.zeros((0, cfg.n_items), np.float32)


# ------------------------------------------------------------------------------ training


@dataclasses.dataclass(frozen=True)
class SASRecTrainConfig:
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 100
    seed: int = 0


def sasrec_task(cfg: SASRecConfig, sequences: Sequence[Sequence[int]], tc: SASRecTrainConfig):
    """The `TrainTask` (replicated on one device): Adam(lr), a batch of random user windows per step,
    each batch a pure function of (seed, step)."""
    from humanai_jax.train.trainer import TrainTask

    usable = np.asarray([u for u, s in enumerate(sequences) if len(s) >= 2])
    if usable.size == 0:
        raise ValueError("SASRec needs at least one sequence with >= 2 items")
    tx = optax.adamw(tc.lr, b1=0.9, b2=0.999, weight_decay=tc.weight_decay)
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))
    rep = NamedSharding(mesh, P())

    def init(rng):
        params = init_sasrec(cfg, rng)
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params), "rng": rng}

    abstract = jax.eval_shape(init, jax.random.PRNGKey(0))  # the Trainer passes a raw uint32[2] key
    shardings = jax.tree.map(lambda _: rep, abstract)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep), abstract)

    def step(state, batch):
        loss, grads = jax.value_and_grad(sasrec_loss)(state["params"], cfg, batch["inputs"], batch["targets"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        params["item_emb"] = params["item_emb"].at[0].set(0.0)  # the padding row stays zero
        new = {"step": state["step"] + 1, "params": params, "opt_state": opt_state, "rng": state["rng"]}
        return new, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    def batch_at(s: int) -> dict:
        rng = np.random.default_rng([tc.seed, s])
        rows = usable[rng.integers(0, len(usable), tc.batch_size)]
        inputs, targets = training_windows(sequences, rows, cfg.max_len, rng)
        return {"inputs": inputs, "targets": targets}

    shape = jax.ShapeDtypeStruct((tc.batch_size, cfg.max_len), jnp.int32, sharding=rep)
    return TrainTask(init=init, abstract_state=abstract, state_shardings=shardings, step=step, batch_at=batch_at,
                     abstract_batch={"inputs": shape, "targets": shape},
                     fingerprint={"sasrec": dataclasses.asdict(cfg), "train": dataclasses.asdict(tc)},
                     tokens_per_step=tc.batch_size * cfg.max_len)


def fit_sasrec(sequences: Sequence[Sequence[int]], cfg: SASRecConfig, workdir: str, tc: SASRecTrainConfig,
               evaluate: Callable[[dict], float] | None = None, log: Callable[[str], None] = print) -> dict:
    """Trains with the shared Trainer in `workdir`. With `evaluate(params) -> validation score` (higher
    is better), called every `tc.eval_every` steps, the best parameters are kept (the reference's
    early stopping on NDCG@10). Returns {"params", "best_step", "best_val", "history", "final_loss"}."""
    from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig

    best = {"val": -np.inf, "step": 0, "params": None}
    history = []

    def hook(step: int, state) -> dict:
        params = jax.device_get(state["params"])
        val = float(evaluate(params))
        history.append((step, val))
        if val > best["val"]:
            best.update(val=val, step=step, params=params)
        log(f"sasrec step {step}: val {val:.4f} (best {best['val']:.4f} at {best['step']})")
        return {"sasrec_val": val}

    trainer = Trainer(os.path.join(workdir, "sasrec"),
                      TrainerConfig(steps=tc.steps, seed=tc.seed, log_every=max(1, tc.eval_every), progress=False,
                                    tensorboard=False),
                      CheckpointConfig(every=0, async_save=False, resume=False, keep=1))
    if evaluate is not None:
        trainer.add_hook(hook, every=tc.eval_every)
    state, summary = trainer.fit(sasrec_task(cfg, sequences, tc))
    params = best["params"] if best["params"] is not None else jax.device_get(state["params"])
    return {"params": params, "best_step": best["step"] if evaluate else tc.steps,
            "best_val": best["val"] if evaluate else None, "history": history,
            "final_loss": summary["last_metrics"].get("loss")}
