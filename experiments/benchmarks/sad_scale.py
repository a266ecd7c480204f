"""SaD at the paper's scale on synthetic data of the BARS shapes: time and peak RSS per stage.

  python experiments/benchmarks/sad_scale.py [--shape amazonbooks_m1] [--epochs 20] [--fraction 1.0]
                                             [--workdir /tmp/sad_scale] [--set key=value ...]

Generates data with the shape of `--shape` (users, items, interactions, long-tailed popularity;
`recsys.data.synthetic_shaped`, scaled by `--fraction` for a quick run), then runs the full pipeline of
`configs/sad.py:<shape>` under the BARS protocol (sparse view without any I x I array, S->D, a dense stage
of `--epochs` epochs, D->S, fusion, blocked full-ranking evaluation). Prints each stage's wall time and
peak resident memory (VmHWM, reset per stage), the memory plans, the load average, and the projected
time of a full run (the dense stage scaled to the reference's epoch count).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from humanai_jax import host  # noqa: E402
from humanai_jax.configs import set_dotted  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="amazonbooks_m1", choices=["gowalla_m1", "yelp18_m1", "amazonbooks_m1"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--fraction", type=float, default=1.0, help="scale users, items and interactions")
    ap.add_argument("--workdir", default="/tmp/sad_scale")
    ap.add_argument("--set", action="append", default=[], help="config override key=value")
    ap.add_argument("--plan-only", action="store_true",
                    help="print every stage's memory plan for the full shape and exit (no data, no fit)")
    ap.add_argument("--full-epochs", type=int, default=0,
                    help="epochs of a full run for the projection (default: best UltraGCN-like epoch, 100)")
    args = ap.parse_args()

    from configs import sad
    from humanai_jax.methods.sad import pipeline
    from humanai_jax.recsys import data as data_lib, memory

    config = sad.get_config(f"{args.shape},dense_alone=False,max_epochs={args.epochs}")
    config.dense.eval_every, config.dense.eval_every_after = args.epochs, args.epochs  # one selection eval
    for assignment in args.set:
        set_dotted(config, assignment)
    load_before = os.getloadavg()
    shape = {k: max(int(v * args.fraction), 1) for k, v in data_lib.SHAPES[args.shape].items()}
    if args.plan_only:
        print_plans(config, shape, memory)
        return
    memory.reset_peak_rss()
    start = time.time()
    d = data_lib.synthetic_shaped(**shape, popularity_exponent=config.data.popularity_exponent, seed=config.seed,
                                  name=f"{args.shape}_synthetic")
    gen_time, gen_rss = time.time() - start, memory.peak_rss_bytes() / memory.GIB
    print(f"data {d.summary()}: generated in {gen_time:.1f} s, peak RSS {gen_rss:.2f} GiB", flush=True)
    start = time.time()
    out = pipeline.run_protocol(d, config)
    wall = time.time() - start
    load_after = os.getloadavg()
    print(f"\n{args.shape} shape x{args.fraction}, {args.epochs} dense epochs, protocol bars; cpus {os.cpu_count()}; "
          f"load average before {load_before}, after {load_after}"
          + ("  (measured under load)" if max(load_before[0], load_after[0]) > 2 else ""))
    print(f"{'stage':<16}{'time (s)':>10}{'peak RSS (GiB)':>16}")
    print(f"{'data':<16}{gen_time:>10.1f}{gen_rss:>16.2f}")
    for stage, t in out["times"].items():
        print(f"{stage:<16}{t:>10.1f}{out['peak_rss_gib'].get(stage, float('nan')):>16.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"pipeline wall time {wall:.1f} s; process peak RSS {peak:.2f} GiB (ru_maxrss)")
    full_epochs = args.full_epochs or 100
    dense_t = out["times"].get("dense", 0.0)
    projected = wall - dense_t + dense_t * full_epochs / max(args.epochs, 1)
    print(f"projected full run ({full_epochs} dense epochs, same load): {projected / 60:.1f} min")
    print("metrics (recall@20 / ndcg@20): " + ", ".join(
        f"{k} {m['recall@20']:.4f}/{m['ndcg@20']:.4f}" for k, m in out["metrics"].items()))
    print(f"info: {json.dumps(out['info'], default=float)}")
    os.makedirs(args.workdir, exist_ok=True)
    with open(os.path.join(args.workdir, f"{args.shape}_x{args.fraction}.json"), "w") as f:
        json.dump({"shape": args.shape, "fraction": args.fraction, "epochs": args.epochs, "data": d.summary(),
                   "times_s": {"data": gen_time, **out["times"]}, "peak_rss_gib": {"data": gen_rss,
                                                                                 **out["peak_rss_gib"]},
                   "wall_s": wall, "process_peak_rss_gib": peak, "load_before": load_before,
                   "load_after": load_after, "projected_full_run_min": projected / 60,
                   "metrics": out["metrics"], "info": out["info"]}, f, indent=1, default=float)


def print_plans(config, shape: dict, memory) -> None:
    """The memory plans `pipeline.fit_models` prints, for the full shape, without building anything."""
    n_users, n_items, n = shape["n_users"], shape["n_items"], shape["n_interactions"]
    d, sp_cfg, block = config.dense, config.sparse, config.eval.block
    limit = memory.limit_bytes(config.scale.memory_limit_gb)
    plans = {
        "sparse view (candidate SLIM, blocked)": memory.blocked_item_item(n_items, sp_cfg.column_block,
                                                                          n_items * sp_cfg.topk, sp_cfg.candidates),
        "s2d": memory.column_block(n_users, 512),
        "dense training": memory.dense_training(n_users, n_items, d.dim, int(0.8 * n) + 5 * n_items, d.batch_size,
                                                d.num_negatives, d.negative_group_size),
        "d2s": {**memory.column_block(n_users, block), **memory.ranking_block(n_items, block, n_users, 0)},
        "evaluation / fusion": memory.ranking_block(n_items, block, n_users, max(config.eval.ks)),
        "dense I x I SLIM (refused)": memory.dense_item_item(n_items, "slim"),
        "dense I x I EASE (refused)": memory.dense_item_item(n_items, "ease"),
    }
    for stage, need in plans.items():
        try:
            memory.check(stage, need, limit)
        except memory.MemoryBudgetError as e:
            print(f"  -> refused: {e}")


if __name__ == "__main__":
    host.reexec_with_malloc_tunables()  # before any work: see humanai_jax/host.py
    main()
