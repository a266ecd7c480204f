"""The weak-to-strong protocol (Burns et al. 2023; spec §1.1), trained with the shared `Trainer`.

    fit_classifier(workdir, model, arrays, targets, loss_fn, ...) -> params   one training run
    predict_proba(model, params, arrays) -> [N, 2]
    run_seed(weak, strong, train, test, seed, ...) -> {acc_weak, acc_strong, acc_w2s.<loss>, pgr.<loss>, ...}

Per seed: the train split is shuffled with `seed`; `n_val` rows are held out as a validation set (for
choosing hyper-parameters; the spec's protocol has none, test is read once); the rest is cut 50/50 into
train1 / train2. Weak: trained on train1 ground truth (xent); its softmax on train2 are the weak labels.
Strong ceiling: trained on train2 ground truth. Weak-to-strong: a fresh strong model on train2 with the
weak labels, once per transfer loss. Every model is evaluated on val and test.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from humanai_jax.methods.oversight import losses, metrics
from humanai_jax.methods.oversight.data import BinarySplit
from humanai_jax.train import optim
from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig, TrainTask


def epoch_order(n: int, epochs: int, seed: int) -> np.ndarray:
    """Row order over `epochs` passes: a fresh permutation per epoch from (seed, epoch); int64 [n·epochs]."""
    return np.concatenate([np.random.default_rng((seed, e)).permutation(n) for e in range(epochs)])


def _replicated() -> NamedSharding:
    """One-device placement: these models are small; the Trainer still compiles and checkpoints them."""
    return NamedSharding(Mesh(np.array(jax.devices()[:1]), ("data",)), P())


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def loss_identity(loss_fn) -> str:
    """A process-independent name of a loss (repr of a function holds its address): name + hyper-parameters."""
    if isinstance(loss_fn, functools.partial):
        return f"{loss_fn.func.__name__}{sorted(loss_fn.keywords.items())}"
    return getattr(loss_fn, "__name__", type(loss_fn).__name__)


def fit_classifier(workdir: str, model, arrays: Mapping[str, np.ndarray], targets: np.ndarray,
                   loss_fn: losses.LossFn, *, epochs: int, batch_size: int, optim_cfg, seed: int,
                   resume: bool = True, log_every: int = 10) -> tuple[dict, dict]:
    """Trains `model` on rows `arrays` (its input_keys, [N, ...]) against soft targets [N, 2] for
    `len·epochs // batch_size` Adam steps (schedule from `optim_cfg`, annealed over exactly those steps).
    step_frac = step / n_steps is passed to the loss. Returns (params, trainer summary)."""
    n = len(targets)
    batch_size = min(batch_size, n)
    n_steps = max(1, n * epochs // batch_size)
    tx, schedule = optim.make_optimizer(optim_cfg, n_steps)
    order = epoch_order(n, -(-n_steps * batch_size // n), seed)
    data = {k: np.asarray(arrays[k]) for k in model.input_keys}
    data["target"] = np.asarray(targets, np.float32)
    rep = _replicated()

    def new_state(rng):
        trainable, frozen = model.split(model.init(rng))
        return {"step": jnp.zeros((), jnp.int32), "params": trainable, "frozen": frozen,
                "opt_state": tx.init(trainable), "rng": rng}

    abstract = jax.eval_shape(new_state, jax.ShapeDtypeStruct((2,), jnp.uint32))
    shardings = jax.tree.map(lambda _: rep, abstract)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep), abstract)

    def step(state, batch):
        frac = state["step"].astype(jnp.float32) / n_steps

        def loss_of(trainable):
            logits = model.apply(model.merge(trainable, state["frozen"]), batch)
            return loss_fn(logits, batch["target"], frac)

        loss, grads = jax.value_and_grad(loss_of)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        new = {**state, "step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
               "opt_state": opt_state}
        return new, {"loss": loss, "lr": schedule(state["step"]), "grad_norm": optax.tree.norm(grads)}

    def batch_at(s: int) -> dict[str, np.ndarray]:
        idx = order[s * batch_size: (s + 1) * batch_size]
        return {k: v[idx] for k, v in data.items()}

    task = TrainTask(
        init=jax.jit(new_state, out_shardings=shardings), abstract_state=abstract, state_shardings=shardings,
        step=step, batch_at=batch_at,
        abstract_batch={k: jax.ShapeDtypeStruct((batch_size, *v.shape[1:]), v.dtype, sharding=rep)
                        for k, v in data.items()},
        fingerprint={"seed": seed, "n_steps": n_steps, "batch_size": batch_size, "model": repr(model),
                     "loss": loss_identity(loss_fn), "data": _digest(*data.values())})
    trainer = Trainer(workdir, TrainerConfig(steps=n_steps, seed=seed, log_every=log_every, progress=False,
                                             tensorboard=False),
                      CheckpointConfig(every=0, keep=1, async_save=False, resume=resume))
    state, summary = trainer.fit(task)
    return model.merge(state["params"], state["frozen"]), summary


def predict_proba(model, params, arrays: Mapping[str, np.ndarray], *, batch_size: int = 256) -> np.ndarray:
    """softmax(model(params, rows)) [N, 2] float64, in fixed-size chunks (the last one padded)."""
    data = {k: np.asarray(arrays[k]) for k in model.input_keys}
    n = len(next(iter(data.values())))
    apply = jax.jit(lambda p, b: jax.nn.softmax(model.apply(p, b), axis=-1))
    out = []
    for start in range(0, n, batch_size):
        chunk = {k: v[start: start + batch_size] for k, v in data.items()}
        m = len(next(iter(chunk.values())))
        if m < batch_size and n > batch_size:
            chunk = {k: np.concatenate([v, np.repeat(v[-1:], batch_size - m, 0)]) for k, v in chunk.items()}
        out.append(np.asarray(apply(params, chunk), np.float64)[:m])
    return np.concatenate(out)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """mean(argmax(probs) == labels); ties go to class 0 (argmax's first index), as in the reference."""
    return float(np.mean(np.argmax(probs, axis=-1) == labels))


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(2, dtype=np.float32)[np.asarray(labels)]


def split_train(n: int, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(val, train1, train2) row indices of a train split of n rows, shuffled with `seed`."""
    perm = np.random.default_rng(seed).permutation(n)
    val, rest = perm[:n_val], perm[n_val:]
    half = len(rest) // 2
    return val, rest[:half], rest[half:]


def run_seed(workdir: str, weak, strong, train: BinarySplit, test: BinarySplit, *, seed: int,
             transfer_losses: Mapping[str, Mapping], n_val: int, gt_epochs: int, transfer_epochs: int,
             batch_size: int, weak_optim, strong_optim, resume: bool = True,
             log: Callable[[str], None] = print) -> dict:
    """One seed of the protocol (module doc). `transfer_losses`: {label: {"loss": name, **hyper-params}},
    e.g. {"xent": {"loss": "xent"}, "logconf": {"loss": "logconf", "aux_coef": 0.5}}.
    Returns flat metrics: acc_weak, acc_strong, acc_w2s.<label>, pgr.<label> (test) and the same with a
    `val.` prefix, plus weak-label statistics."""
    val, t1, t2 = split_train(len(train), n_val, seed)
    sub = lambda idx: {k: v[idx] for k, v in train.arrays.items()}  # noqa: E731
    y = train.labels
    fit = lambda name, model, idx, targets, loss_fn, epochs, opt: fit_classifier(  # noqa: E731
        os.path.join(workdir, name), model, sub(idx), targets, loss_fn, epochs=epochs, batch_size=batch_size,
        optim_cfg=opt, seed=seed, resume=resume)[0]

    def evaluate(model, params) -> tuple[float, float]:
        return (accuracy(predict_proba(model, params, sub(val)), y[val]) if len(val) else float("nan"),
                accuracy(predict_proba(model, params, test.arrays), test.labels))

    out = {"seed": seed, "n_train1": len(t1), "n_train2": len(t2), "n_val": len(val), "n_test": len(test)}
    weak_params = fit("weak", weak, t1, one_hot(y[t1]), losses.xent, gt_epochs, weak_optim)
    weak_labels = predict_proba(weak, weak_params, sub(t2)).astype(np.float32)
    out["val.acc_weak"], out["acc_weak"] = evaluate(weak, weak_params)
    out["weak_label_acc_train2"] = accuracy(weak_labels, y[t2])
    out["weak_label_mean_class1"] = float(weak_labels[:, 1].mean())
    log(f"seed {seed}: weak test {out['acc_weak']:.4f} (labels on train2 {out['weak_label_acc_train2']:.4f})")

    strong_params = fit("strong_ceiling", strong, t2, one_hot(y[t2]), losses.xent, gt_epochs, strong_optim)
    out["val.acc_strong"], out["acc_strong"] = evaluate(strong, strong_params)
    log(f"seed {seed}: strong ceiling test {out['acc_strong']:.4f}")

    for label, spec in transfer_losses.items():
        spec = dict(spec)
        loss_fn = losses.get_loss(spec.pop("loss"), **spec)
        params = fit(f"w2s_{label}", strong, t2, weak_labels, loss_fn, transfer_epochs, strong_optim)
        out[f"val.acc_w2s.{label}"], out[f"acc_w2s.{label}"] = evaluate(strong, params)
        for prefix in ("", "val."):
            out[f"{prefix}pgr.{label}"] = metrics.pgr(out[f"{prefix}acc_weak"], out[f"{prefix}acc_strong"],
                                                       out[f"{prefix}acc_w2s.{label}"])
        log(f"seed {seed}: w2s[{label}] test {out[f'acc_w2s.{label}']:.4f}, PGR {out[f'pgr.{label}']:.3f}")
    return out


def aggregate(per_seed: list[dict]) -> dict:
    """{key: {mean, std, median, per_seed, n}} for every accuracy / PGR key shared by all seeds."""
    keys = [k for k in per_seed[0] if ("acc_" in k or "pgr." in k or k.startswith("weak_label"))]
    return {k: metrics.summarize_seeds([r[k] for r in per_seed]) for k in keys}
