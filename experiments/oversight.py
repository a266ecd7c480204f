r"""Scalable oversight: `run(config, workdir) -> results` (configs/oversight.py; docs/oversight.md).

  python -m experiments.run --config configs/oversight.py:w2s_toy --workdir runs/oversight_w2s_toy

protocol "w2s": data set -> weak and strong classifiers -> per seed: weak, strong ceiling, weak-to-strong per
transfer loss (humanai_jax/methods/oversight/w2s.py) -> results.json {acc_weak, acc_strong, acc_w2s.<loss>,
pgr.<loss>} as {mean, std, median, per_seed, n}, the same under `val.`, the transfer losses' hyper-parameters
chosen on validation (`selected.<loss>`, `val_grid.<loss>`; test is scored for the chosen candidate only),
and per-seed records in WORKDIR/per_seed.jsonl.
protocols "debate" / "sandwich": MotiveBench items over chat backends (methods/oversight/{debate,sandwich}.py).
"""

from __future__ import annotations

import os

import jax
import numpy as np

from humanai_jax import experiment
from humanai_jax.data.jsonl import write_jsonl
from humanai_jax.methods.oversight import data as data_lib, models, w2s


def _print(*args):
    if jax.process_index() == 0:
        print(*args, flush=True)


def _shared_dir(config) -> str:
    return os.path.abspath(config.shared_data)


def _toy_models(config, train):
    if config.weak.kind != "toy_mlp" or config.strong.kind != "toy_linear":
        raise ValueError("data.name=toy_latent takes weak.kind=toy_mlp and strong.kind=toy_linear, got "
                         f"{config.weak.kind!r} / {config.strong.kind!r}")
    weak = models.MLP(n_in=train.arrays["weak_x"].shape[1], n_hidden=config.weak.hidden)
    strong = models.LinearHead(n_features=train.arrays["features"].shape[1])
    return weak, strong, train


def run_w2s(config, workdir: str) -> dict:
    data = data_lib.build(config.data, _shared_dir(config))
    _print(f"Data {data.name}: {len(data.train)} train, {len(data.test)} test, "
           f"class-1 share {data.train.labels.mean():.3f} / {data.test.labels.mean():.3f}")
    if config.data.name == "toy_latent":
        weak, strong, _ = _toy_models(config, data.train)
        train, test, info = data.train, data.test, {}
    else:
        from humanai_jax.methods.oversight import lm_models

        weak, strong, train, test, info = lm_models.build_pair(config, data, workdir, log=_print)
    per_seed, selection = w2s.run_protocol(
        workdir, weak, strong, train, test, seeds=config.seeds,
        transfer_losses={k: v.to_dict() for k, v in config.w2s.transfer_losses.items()},
        grid={k: v.to_dict() for k, v in config.w2s.grid.items()}, select_on=config.w2s.select_on,
        n_val=config.w2s.n_val, gt_epochs=config.w2s.gt_epochs, transfer_epochs=config.w2s.transfer_epochs,
        batch_size=config.w2s.batch_size, weak_optim=config.weak.optim, strong_optim=config.strong.optim,
        resume=config.w2s.resume, log=_print)
    if jax.process_index() == 0:
        write_jsonl(os.path.join(workdir, "per_seed.jsonl"), [experiment.to_jsonable(r) for r in per_seed])
    majority = int(train.labels.mean() >= 0.5)  # the simplest baseline: the train split's majority class
    results = {"data": data.name, "n_train": len(train), "n_test": len(test), "seeds": list(config.seeds),
               "class1_share_test": float(test.labels.mean()),
               "acc_majority_baseline": float(np.mean(test.labels == majority)), **info, **selection,
               **w2s.aggregate(per_seed)}
    _print(_summary_table(results))
    return results


def _summary_table(results: dict) -> str:
    rows = [k for k in results if isinstance(results[k], dict) and "per_seed" in results[k]
            and not k.startswith("val.")]
    val = lambda k: results.get("val." + k, {}).get("mean", float("nan"))  # noqa: E731
    return "\n".join(f"{k:28s} {results[k]['mean']:.4f} ± {results[k]['std']:.4f}  (val {val(k):.4f})" for k in rows)


def run(config, workdir: str) -> dict:
    if config.protocol == "w2s":
        return run_w2s(config, workdir)
    if config.protocol in ("debate", "sandwich"):
        from humanai_jax.methods.oversight import dialogue_runs

        return dialogue_runs.run(config, workdir, _shared_dir(config), log=_print)
    raise ValueError(f"config.protocol must be w2s, debate or sandwich, got {config.protocol!r}")


def replay_metrics(trace_path: str) -> dict:
    """`experiments.replay_metrics` hook for the debate and sandwiching runs: their metrics recomputed from the
    judgment / answer events of traces.jsonl alone, with the run's bootstrap settings (DIR/config.json)."""

    from humanai_jax.methods.oversight import debate, sandwich
    from humanai_jax.methods.oversight.traces import read_events

    run_dir = os.path.dirname(os.path.abspath(trace_path))
    config = experiment.read_config(run_dir)
    protocol, d = config["protocol"], config["dialogue"]
    if protocol not in ("debate", "sandwich"):
        raise ValueError(f"{trace_path}: replay covers the debate and sandwich protocols, not {protocol!r}")
    module, event = (debate, "judgment") if protocol == "debate" else (sandwich, "answer")
    metrics = module.metrics_from_events(read_events(trace_path, event), n_resamples=d["n_resamples"],
                                         seed=config["seed"])
    return {"metrics": metrics, "results": os.path.join(run_dir, "results.json"), "key": ""}
