"""The weak-to-strong protocol (Burns et al. 2023; docs/oversight.md §1.1), trained with the shared `Trainer`.

    fit_classifier(workdir, model, arrays, targets, loss_fn, ...) -> params   one training run
    predict_proba(model, params, arrays) -> [N, 2]
    run_protocol(weak, strong, train, test, seeds, transfer_losses, grid, ...) -> (per-seed records, selection)
    hyper_grid / select_on_validation   the transfer losses' hyper-parameters (aux weight, epochs, ...) on val

Per seed: the train split is shuffled with `seed`; `n_val` rows are held out as a validation set (for
choosing hyper-parameters; the spec's protocol has none, test is read once); the rest is cut 50/50 into
train1 / train2. Weak: trained on train1 ground truth (xent); its softmax on train2 are the weak labels.
Strong ceiling: trained on train2 ground truth. Weak-to-strong: a fresh strong model on train2 with the
weak labels, once per transfer loss and hyper-parameter candidate. The candidate with the best mean
validation accuracy over seeds is chosen; only its test predictions are scored (test is read once).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
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


def hyper_grid(spec: Mapping, grid: Mapping | None, epochs: int) -> list[dict]:
    """The candidates of one transfer loss: `spec` ({"loss": name, **hyper-parameters}) plus `epochs`, crossed
    with every combination of `grid` ({key: non-empty sequence}; keys: the loss's hyper-parameters or "epochs"),
    the first key varying slowest. No grid: [spec + epochs]. Every candidate is validated (unknown keys raise)."""
    base = {**dict(spec), "epochs": epochs}
    grid = dict(grid or {})
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"w2s.grid.{key} must be a non-empty list of values, got {values!r}")
    keys = list(grid)
    out = [{**base, **dict(zip(keys, combo))} for combo in itertools.product(*(grid[k] for k in keys))]
    for candidate in out:
        loss_and_epochs(candidate)
    return out


def loss_and_epochs(candidate: Mapping) -> tuple[losses.LossFn, int]:
    """(loss function, transfer epochs) of a candidate from `hyper_grid`."""
    kwargs = dict(candidate)
    name, epochs = kwargs.pop("loss"), kwargs.pop("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"transfer epochs must be a positive integer, got {epochs!r}")
    return losses.get_loss(name, **kwargs), int(epochs)


def candidate_name(candidate: Mapping, grid_keys) -> str:
    """A directory-safe name of the grid values, e.g. "aux_coef-0.25_epochs-2"; "" without a grid."""
    return "_".join(f"{k}-{candidate[k]}" for k in grid_keys)


def select_on_validation(val_acc: np.ndarray) -> int:
    """The candidate with the highest mean validation accuracy over seeds; val_acc [seeds, candidates].
    Ties go to the earlier candidate (grid order). Test accuracy never enters: the caller scores test only
    for the returned index."""
    val_acc = np.asarray(val_acc, np.float64)
    if val_acc.ndim != 2 or val_acc.shape[1] == 0 or np.isnan(val_acc).any():
        raise ValueError(f"validation accuracies must be a NaN-free [seeds, candidates] array, got {val_acc.shape}"
                         " (a grid needs w2s.n_val > 0)")
    return int(np.argmax(val_acc.mean(axis=0)))


def run_protocol(workdir: str, weak, strong, train: BinarySplit, test: BinarySplit, *, seeds,
                 transfer_losses: Mapping[str, Mapping], grid: Mapping[str, Mapping] | None = None,
                 select_on: str = "gt", n_val: int, gt_epochs: int, transfer_epochs: int, batch_size: int,
                 weak_optim, strong_optim, resume: bool = True,
                 log: Callable[[str], None] = print) -> tuple[list[dict], dict]:
    """The protocol (module doc) over `seeds`, with hyper-parameters of the transfer losses chosen on validation.

    transfer_losses: {label: {"loss": name, **hyper-params}}, e.g. {"logconf": {"loss": "logconf", "aux_coef": .5}}.
    grid: {label: {key: values}} (keys: that loss's hyper-parameters or "epochs"; default epochs =
        `transfer_epochs`). Every candidate is trained on every seed; the one with the best mean validation
        accuracy over seeds (`select_on_validation`) is the one whose test accuracy is scored and reported.
        Test predictions of the other candidates are made in the same pass but never scored.
    select_on: "gt" scores validation against ground truth; "weak" against the weak model's argmax on the
        validation rows (the setting where no ground truth exists at all).
    Returns (per-seed records with acc_weak, acc_strong, acc_w2s.<label>, pgr.<label> (test) and the same with a
    `val.` prefix, plus weak-label statistics; selection {selected.<label>: grid values, val_grid.<label>:
    [{hparams, val_acc_mean, val_acc_per_seed}]}).
    """
    if select_on not in ("gt", "weak"):
        raise ValueError(f"w2s.select_on must be 'gt' or 'weak', got {select_on!r}")
    grid = {k: dict(v) for k, v in (grid or {}).items()}
    unknown = sorted(set(grid) - set(transfer_losses))
    if unknown:
        raise ValueError(f"w2s.grid names {unknown}, which are not in w2s.transfer_losses {sorted(transfer_losses)}")
    cands = {label: hyper_grid(spec, grid.get(label), transfer_epochs) for label, spec in transfer_losses.items()}
    records, sealed_test, val_acc = [], [], {label: [] for label in cands}
    for seed in seeds:
        rec, w2s_val, w2s_test = _run_one_seed(
            os.path.join(workdir, f"seed{seed}"), weak, strong, train, test, seed=seed, cands=cands, grid=grid,
            select_on=select_on, n_val=n_val, gt_epochs=gt_epochs, batch_size=batch_size, weak_optim=weak_optim,
            strong_optim=strong_optim, resume=resume, log=log)
        records.append(rec)
        sealed_test.append(w2s_test)
        for label in cands:
            val_acc[label].append(w2s_val[label])
    selection = {}
    for label, cs in cands.items():
        table = np.asarray(val_acc[label], np.float64)  # [seeds, candidates]
        best = select_on_validation(table) if len(cs) > 1 else 0
        keys = list(grid.get(label, {}))
        selection[f"selected.{label}"] = {k: cs[best][k] for k in keys}
        selection[f"val_grid.{label}"] = [{"hparams": {k: c[k] for k in keys}, "val_acc_mean": float(table[:, j].mean()),
                                           "val_acc_per_seed": table[:, j].tolist()} for j, c in enumerate(cs)]
        if len(cs) > 1:
            log(f"w2s[{label}]: chosen on validation ({select_on}): {selection[f'selected.{label}']} "
                f"(mean val acc {table[:, best].mean():.4f})")
        for rec, w2s_test in zip(records, sealed_test):
            rec[f"val.acc_w2s.{label}"] = rec.pop(f"_val_gt.{label}")[best]
            rec[f"acc_w2s.{label}"] = accuracy(w2s_test[label][best], test.labels)
            for prefix in ("", "val."):
                rec[f"{prefix}pgr.{label}"] = metrics.pgr(rec[f"{prefix}acc_weak"], rec[f"{prefix}acc_strong"],
                                                          rec[f"{prefix}acc_w2s.{label}"])
            log(f"seed {rec['seed']}: w2s[{label}] test {rec[f'acc_w2s.{label}']:.4f}, PGR {rec[f'pgr.{label}']:.3f}")
    return records, selection


def _run_one_seed(workdir: str, weak, strong, train: BinarySplit, test: BinarySplit, *, seed: int, cands, grid,
                  select_on: str, n_val: int, gt_epochs: int, batch_size: int, weak_optim, strong_optim,
                  resume: bool, log) -> tuple[dict, dict, dict]:
    """Weak, strong ceiling and every transfer candidate on one seed. Returns (record, {label: [selection-score
    val accuracy per candidate]}, {label: [test probabilities per candidate]}); the record holds the ground-truth
    val accuracies of the candidates under `_val_gt.<label>` until one is chosen."""
    val, t1, t2 = split_train(len(train), n_val, seed)
    sub = lambda idx: {k: v[idx] for k, v in train.arrays.items()}  # noqa: E731
    y = train.labels

    def fit(name, model, idx, targets, loss_fn, epochs, opt):
        return fit_classifier(os.path.join(workdir, name), model, sub(idx), targets, loss_fn, epochs=epochs,
                              batch_size=batch_size, optim_cfg=opt, seed=seed, resume=resume)[0]

    def val_accuracy(probs, labels) -> float:
        return accuracy(probs, labels) if len(val) else float("nan")

    out = {"seed": seed, "n_train1": len(t1), "n_train2": len(t2), "n_val": len(val), "n_test": len(test)}
    weak_params = fit("weak", weak, t1, one_hot(y[t1]), losses.xent, gt_epochs, weak_optim)
    weak_labels = predict_proba(weak, weak_params, sub(t2)).astype(np.float32)
    weak_val = predict_proba(weak, weak_params, sub(val)) if len(val) else np.zeros((0, 2))
    out["val.acc_weak"] = val_accuracy(weak_val, y[val])
    out["acc_weak"] = accuracy(predict_proba(weak, weak_params, test.arrays), test.labels)
    out["weak_label_acc_train2"] = accuracy(weak_labels, y[t2])
    out["weak_label_mean_class1"] = float(weak_labels[:, 1].mean())
    log(f"seed {seed}: weak test {out['acc_weak']:.4f} (labels on train2 {out['weak_label_acc_train2']:.4f})")

    strong_params = fit("strong_ceiling", strong, t2, one_hot(y[t2]), losses.xent, gt_epochs, strong_optim)
    out["val.acc_strong"] = val_accuracy(predict_proba(strong, strong_params, sub(val)), y[val])
    out["acc_strong"] = accuracy(predict_proba(strong, strong_params, test.arrays), test.labels)
    log(f"seed {seed}: strong ceiling test {out['acc_strong']:.4f}")

    select_labels = y[val] if select_on == "gt" else np.argmax(weak_val, axis=-1)
    score, sealed = {}, {}
    for label, cs in cands.items():
        keys = list(grid.get(label, {}))
        score[label], sealed[label], out[f"_val_gt.{label}"] = [], [], []
        for c in cs:
            name = f"w2s_{label}" + (f"/{candidate_name(c, keys)}" if keys else "")
            loss_fn, epochs = loss_and_epochs(c)
            params = fit(name, strong, t2, weak_labels, loss_fn, epochs, strong_optim)
            val_probs = predict_proba(strong, params, sub(val)) if len(val) else np.zeros((0, 2))
            score[label].append(val_accuracy(val_probs, select_labels))
            out[f"_val_gt.{label}"].append(val_accuracy(val_probs, y[val]))
            sealed[label].append(predict_proba(strong, params, test.arrays))
    return out, score, sealed


def aggregate(per_seed: list[dict]) -> dict:
    """{key: {mean, std, median, per_seed, n}} for every accuracy / PGR key shared by all seeds."""
    keys = [k for k in per_seed[0] if ("acc_" in k or "pgr." in k or k.startswith("weak_label"))]
    return {k: metrics.summarize_seeds([r[k] for r in per_seed]) for k in keys}
