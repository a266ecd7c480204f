"""SaD experiment: `run(config, workdir) -> dict` for `python -m experiments.run --config configs/sad.py[:variant]`.

Writes under workdir: metrics.jsonl (dense selection metrics per evaluated epoch, then one line per
stage), diagnostics.png (recall and SNR per item-popularity bucket), checkpoint/ (Orbax: embeddings,
W_origin, W_D2S, Q), and returns the results.json payload: the final metrics of every stage.
"""

from __future__ import annotations

import os
import pathlib
import time

import numpy as np
from absl import logging

from humanai_jax.checkpoint import Checkpointer
from humanai_jax.experiment import MetricsLog
from humanai_jax.methods.sad import diagnostics, pipeline
from humanai_jax.recsys import data as data_lib
from humanai_jax.train import runtime

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

STAGES = {
    "sparse_alone": "SLIM(X) alone (step 1)",
    "dense_alone": "dense model on X only",
    "dense_s2d": "dense model on X + S->D pairs (step 2)",
    "sparse_d2s": "SLIM(Q) alone (step 4)",
    "sad_coded_beta": "full SaD, coded beta",
    "sad": "full SaD, selected beta",
}


def load_data(cfg) -> data_lib.Interactions:
    """The configured data set; relative directories are resolved against the repository root."""
    d = cfg.data
    if d.format == "synthetic":
        return data_lib.synthetic_long_tail(d.synthetic_users, d.synthetic_items,
                                            mean_items_per_user=d.synthetic_mean_items, seed=cfg.seed)
    path = d.dir if os.path.isabs(d.dir) else str(REPO_ROOT / d.dir)
    if d.format == "lightgcn":
        return data_lib.load_lightgcn_text(path, d.name)
    if d.format == "recbole":
        return data_lib.load_recbole_inter(path, split=d.recbole_split, seed=cfg.seed)
    raise ValueError(f"data.format={d.format!r} is not supported; choose 'synthetic', 'lightgcn' or 'recbole'")


def save_checkpoint(path: str, artifacts: dict, meta: dict) -> None:
    """Checkpoint (through humanai_jax/checkpoint.py, with its content fingerprints) of what steps 3-5
    need, so they can be rerun without retraining: step 0 of `path`."""
    q = artifacts["q"].tocsr()
    tree = {"user_emb": np.asarray(artifacts["user_emb"]), "item_emb": np.asarray(artifacts["item_emb"]),
            "w_origin": np.asarray(artifacts["w_origin"]), "w_d2s": np.asarray(artifacts["w_d2s"]),
            "q_indptr": q.indptr, "q_indices": q.indices, "q_data": q.data}
    checkpointer = Checkpointer(path, max_to_keep=1, async_save=False)
    checkpointer.save(0, tree, meta, force=True)
    checkpointer.close()


def run(config, workdir: str) -> dict:
    start = time.time()
    runtime.quiet_library_info_logs()
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
        "pipeline_wall_time_s": time.time() - start,
    }
    if "selection" in out:
        results["selection"] = out["selection"]
    if config.diagnostics.enabled:
        art = out["artifacts"]
        beta = out["selected"]["beta"]
        train = out.get("train_matrix", data.train)
        fns = {"sparse": art["sparse_rows"], "dense": art["dense_rows"],
               "fused": lambda u: beta * art["sparse_rows"](u) + art["dense_rows"](u)}
        diag = diagnostics.bucket_diagnostics(fns, train, data.test, config.diagnostics.n_buckets,
                                              block=config.eval.block, seed=config.seed)
        results["diagnostics"] = diag
        results["diagnostics_plot"] = diagnostics.plot_diagnostics(diag, os.path.join(workdir, "diagnostics.png"))
    if config.save_checkpoint:
        save_checkpoint(os.path.join(workdir, "checkpoint"), out["artifacts"],
                        {"seed": config.seed, "selected": out["selected"]})
    results["total_wall_time_s"] = time.time() - start
    return results
