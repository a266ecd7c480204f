"""The whole SaD pipeline on ML1M_m1, with the reference and BARS anchors side by side.

  python experiments/benchmarks/sad_ml1m.py [--workdir /tmp/sad_ml1m_bench] [--variant ml1m_m1,dense_alone=False]
                                            [--set dense.negative_group_size=1 ...]

Runs `configs/sad.py:<variant>` through the experiment runner, then prints Recall/NDCG@20 of each
stage next to the reference code's measured numbers and the BARS/RecZoo anchors (spec sad.md §7, §10),
with ratios, the per-stage wall times and the machine load (the CPU is shared).
Reads ../shared/data/recsys/ml1m_m1/{train,test}.txt.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from humanai_jax import host  # noqa: E402
from humanai_jax.configs import set_dotted  # noqa: E402

ANCHORS = {  # (recall@20, ndcg@20)
    "SLIM(X), SaD reference code (measured)": (0.2558, 0.2494),
    "UltraGCN (RecZoo)": (0.2787, 0.2642),
    "SimpleX (RecZoo, best BARS entry)": (0.2802, 0.2670),
    "LightGCN (RecZoo)": (0.2576, 0.2427),
}
COMPARE = {"sparse_alone": "SLIM(X), SaD reference code (measured)", "dense_alone": "UltraGCN (RecZoo)",
           "dense_s2d": "UltraGCN (RecZoo)", "sad": "SimpleX (RecZoo, best BARS entry)",
           "sad_coded_beta": "SimpleX (RecZoo, best BARS entry)", "sparse_d2s": "SLIM(X), SaD reference code (measured)",
           "ease": "SLIM(X), SaD reference code (measured)", "itemknn": "SLIM(X), SaD reference code (measured)",
           "slim_sklearn": "SLIM(X), SaD reference code (measured)"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/sad_ml1m_bench")
    ap.add_argument("--variant", default="ml1m_m1")
    ap.add_argument("--set", action="append", default=[], help="config override key=value")
    args = ap.parse_args()
    if not os.path.exists(ROOT.parent / "shared/data/recsys/ml1m_m1/train.txt"):
        raise SystemExit("../shared/data/recsys/ml1m_m1/train.txt not found (see ../shared/data/README.md)")
    from configs import sad
    from experiments.run import run_experiment

    config = sad.get_config(args.variant)
    for assignment in args.set:
        set_dotted(config, assignment)
    load_before = os.getloadavg()
    start = time.time()
    results = run_experiment(config, args.workdir)
    wall = time.time() - start
    print(f"variant {args.variant} {args.set}; protocol {results['protocol']} (selection on "
          f"{results['selection_split']}); cpus {os.cpu_count()}; load average before {load_before}, "
          f"after {os.getloadavg()}")
    print(f"{'stage':<16}{'recall@20':>10}{'ndcg@20':>9}   anchor (recall/ndcg)                         ratio R/N")
    for stage, m in results["stages"].items():
        name = COMPARE.get(stage, "SLIM(X), SaD reference code (measured)")  # baselines: vs the reference SLIM
        ar, an = ANCHORS[name]
        print(f"{stage:<16}{m['recall@20']:>10.4f}{m['ndcg@20']:>9.4f}   {name:<38}{ar:.4f}/{an:.4f}  "
              f"{m['recall@20'] / ar:.3f}/{m['ndcg@20'] / an:.3f}")
    print(f"selected: {results['selected']}")
    print("stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in results["stage_times_s"].items()))
    print(f"pipeline wall time {results['pipeline_wall_time_s']:.1f} s; with diagnostics and checkpoint "
          f"{wall:.1f} s")


if __name__ == "__main__":
    host.reexec_with_malloc_tunables()  # before any work: see humanai_jax/host.py
    main()
