"""SaD experiment: `run(config, workdir) -> dict` for `python -m experiments.run --config configs/sad.py[:variant]`.

Writes under workdir: metrics.jsonl (dense selection metrics per evaluated epoch, then one line per
stage), diagnostics.png (recall and SNR per item-popularity bucket), checkpoint/ (Orbax: embeddings,
W_origin, W_D2S, Q), and returns the results.json payload: the final metrics of every stage.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import numpy as np
import scipy.sparse as sp
from absl import logging

from humanai_jax.checkpoint import Checkpointer
from humanai_jax.eval import stats
from humanai_jax.experiment import MetricsLog
from humanai_jax.methods.sad import diagnostics, pipeline
from humanai_jax.recsys import data as data_lib
from humanai_jax.train import runtime

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

STAGES = pipeline.STAGES
TABLE_METRICS = ("recall@20", "ndcg@20", "recall@50", "ndcg@50")


def data_dir(cfg) -> str:
    """`data.dir` is a directory for every file format: "" -> ../shared/data/recsys/<name>; relative paths are
    resolved against the repository root."""
    d = cfg.data
    path = d.dir or f"../shared/data/recsys/{d.name}"
    path = path if os.path.isabs(path) else str(REPO_ROOT / path)
    if os.path.isfile(path):
        raise ValueError(f"data.dir={d.dir!r} is a file; it must be the directory holding the data set "
                         f"(lightgcn: train.txt, test.txt[, valid.txt]; recbole: <data.name>.inter)")
    return path


def load_data(cfg) -> data_lib.Interactions:
    """The configured data set (see `data_dir`)."""
    d = cfg.data
    if d.format == "synthetic":
        return data_lib.synthetic_long_tail(d.synthetic_users, d.synthetic_items,
                                            mean_items_per_user=d.synthetic_mean_items, seed=cfg.seed)
    if d.format == "synthetic_shaped":  # the shape (users, items, interactions) of data.name, no files
        return data_lib.synthetic_shaped(**data_lib.SHAPES[d.name], popularity_exponent=d.popularity_exponent,
                                         seed=cfg.seed, name=f"{d.name}_synthetic")
    if d.format == "lightgcn":
        return data_lib.load_lightgcn_text(data_dir(cfg), d.name, test_only_ids=d.test_only_ids)
    if d.format == "recbole":
        path = os.path.join(data_dir(cfg), f"{d.name}.inter")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found (data.format='recbole' reads <data.dir>/<data.name>.inter)")
        return data_lib.load_recbole_inter(path, split=d.recbole_split, seed=cfg.seed)
    raise ValueError(f"data.format={d.format!r} is not supported; choose 'synthetic', 'synthetic_shaped', "
                     "'lightgcn' or 'recbole'")


def _matrix_leaves(name: str, w) -> dict:
    """A weight matrix as checkpoint leaves: dense -> {name: array}; scipy sparse -> CSC pieces."""
    if sp.issparse(w):
        w = sp.csc_matrix(w)
        return {f"{name}_indptr": w.indptr, f"{name}_indices": w.indices, f"{name}_data": w.data,
                f"{name}_shape": np.asarray(w.shape)}
    return {name: np.asarray(w)}


def save_checkpoint(path: str, artifacts: dict, meta: dict) -> None:
    """Checkpoint (through humanai_jax/checkpoint.py, with its content fingerprints) of what steps 3-5
    need, so they can be rerun without retraining: step 0 of `path`."""
    q = artifacts["q"].tocsr()
    tree = {"user_emb": np.asarray(artifacts["user_emb"]), "item_emb": np.asarray(artifacts["item_emb"]),
            **_matrix_leaves("w_origin", artifacts["w_origin"]), **_matrix_leaves("w_d2s", artifacts["w_d2s"]),
            "q_indptr": q.indptr, "q_indices": q.indices, "q_data": q.data}
    checkpointer = Checkpointer(path, max_to_keep=1, async_save=False)
    checkpointer.save(0, tree, meta, force=True)
    checkpointer.close()


def run(config, workdir: str) -> dict:
    runtime.quiet_library_info_logs()
    if config.table.enabled:
        return run_table(config, workdir)
    return run_single(config, workdir)


def run_single(config, workdir: str) -> dict:
    start = time.time()
    data = load_data(config)
    logging.info("SaD data: %s", data.summary())
    log = MetricsLog(workdir)
    out = pipeline.run_protocol(data, config, log=log.write)
    for step, (stage, m) in enumerate(out["metrics"].items()):
        log.write(step, stage=stage, **m)
    results = {
        "dataset": data.summary(),
        "protocol": config.protocol,
        "selection_split": out["selection_split"],
        "stages": {k: out["metrics"][k] for k in STAGES if k in out["metrics"]},
        "stage_descriptions": {k: v for k, v in STAGES.items() if k in out["metrics"]},
        "selected": out["selected"],
        "beta_sweep": out["beta_sweep"],
        "info": out["info"],
        "stage_times_s": out["times"],
        "stage_peak_rss_gib": out.get("peak_rss_gib", {}),
        "pipeline_wall_time_s": time.time() - start,
    }
    if "selection" in out:
        results["selection"] = out["selection"]
    if config.diagnostics.enabled:
        art = out["artifacts"]
        beta = out["selected"]["beta"]
        fns = {"sparse": art["sparse_rows"], "dense": art["dense_rows"],
               "fused": lambda u: beta * art["sparse_rows"](u) + art["dense_rows"](u)}
        diag = diagnostics.bucket_diagnostics(fns, out["train_matrix"], data.test, config.diagnostics.n_buckets,
                                              block=config.eval.block, seed=config.seed)
        results["diagnostics"] = diag
        results["diagnostics_plot"] = diagnostics.plot_diagnostics(diag, os.path.join(workdir, "diagnostics.png"))
    if config.save_checkpoint:
        save_checkpoint(os.path.join(workdir, "checkpoint"), out["artifacts"],
                        {"seed": config.seed, "selected": out["selected"]})
    results["total_wall_time_s"] = time.time() - start
    return results


def run_table(config, workdir: str) -> dict:
    """Every protocol in `table.protocols` for every seed in `table.seeds`. Each (protocol, seed) run is kept
    as table/<protocol>_seed<k>.json and reused when present, so an interrupted table resumes. Returns
    {"protocols": {protocol: {stage: {metric: {mean, std, per_seed}}}}, "runs": {...}, ...}."""
    start = time.time()
    table_dir = os.path.join(workdir, "table")
    os.makedirs(table_dir, exist_ok=True)
    runs: dict[str, dict[int, dict]] = {}
    # Seed-major, so an interrupted table already holds every protocol for its first seeds.
    for seed in config.table.seeds:
        for protocol in config.table.protocols:
            path = os.path.join(table_dir, f"{protocol}_seed{seed}.json")
            if os.path.exists(path):
                with open(path) as f:
                    runs.setdefault(protocol, {})[seed] = json.load(f)
                continue
            cfg = config.copy_and_resolve_references()
            cfg.protocol, cfg.seed = protocol, int(seed)
            cfg.table.enabled = False
            cfg.diagnostics.enabled, cfg.save_checkpoint = False, False
            logging.info("SaD table: protocol %s seed %d", protocol, seed)
            result = run_single(cfg, os.path.join(table_dir, f"{protocol}_seed{seed}"))
            result["load_average"] = os.getloadavg()
            with open(path + ".tmp", "w") as f:
                json.dump(result, f, indent=1, default=float)
            os.replace(path + ".tmp", path)
            runs.setdefault(protocol, {})[seed] = result
    return {"protocols": summarise_table(runs), "runs": {p: {str(s): {"selected": r["selected"],
                                                                       "selection_split": r["selection_split"]}
                                                               for s, r in by_seed.items()}
                                                           for p, by_seed in runs.items()},
            "seeds": list(config.table.seeds), "stage_descriptions": STAGES,
            "total_wall_time_s": time.time() - start}


def summarise_table(runs: dict[str, dict[int, dict]]) -> dict:
    """{protocol: {seed: results}} -> {protocol: {stage: {metric: {mean, std, per_seed}}}} (std: ddof 1)."""
    out = {}
    for protocol, by_seed in runs.items():
        seeds = sorted(by_seed)
        stages = [k for k in STAGES if all(k in by_seed[s]["stages"] for s in seeds)]
        out[protocol] = {}
        for stage in stages:
            out[protocol][stage] = {}
            for metric in TABLE_METRICS:
                values = [float(by_seed[s]["stages"][stage][metric]) for s in seeds]
                ms = stats.mean_std(values)
                out[protocol][stage][metric] = {"mean": ms.mean, "std": ms.std, "per_seed": values}
    return out
