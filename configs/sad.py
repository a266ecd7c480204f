r"""SaD: sparse (SLIM) + dense (MF, UltraGCN loss) collaborative filtering (docs/sad.md).

Variants (data directory: `data_dir`, default ../shared/data/recsys/<name> relative to the repo root):

  python -m experiments.run --config configs/sad.py --workdir /tmp/sad_synth              # synthetic (default, ~1 min CPU)
  python -m experiments.run --config configs/sad.py:ml1m_m1 --workdir /tmp/sad_ml1m       # BARS protocol, ~10 min CPU
  python -m experiments.run --config configs/sad.py:ml1m_m1,protocol=honest --workdir /tmp/sad_ml1m_honest
  python -m experiments.run --config configs/sad.py:lastfm --workdir /tmp/sad_lastfm
  # user-supplied LightGCN text files (no I x I matrix is built: scale.sparse_views):
  python -m experiments.run --config configs/sad.py:gowalla_m1 --workdir /tmp/sad_gowalla
  python -m experiments.run --config configs/sad.py:yelp18_m1 --workdir /tmp/sad_yelp
  python -m experiments.run --config configs/sad.py:amazonbooks_m1 --workdir /tmp/sad_books
  # the same shapes generated (users, items, interactions, long-tailed popularity), no files needed:
  python -m experiments.run --config configs/sad.py:amazonbooks_m1,synthetic_shape,max_epochs=20 --workdir /tmp/b

  # the ablation table: every protocol x 3 seeds -> results.json protocols.<bars|honest>.<stage>.<metric>
  python -m experiments.run --config configs/sad.py:table --workdir runs/sad_ml1m_table    # = ml1m_m1,table

Variant-string options (after the variant name, comma-separated): protocol=bars|honest,
dense_alone=True|False, faithful_order, max_epochs=N, data_dir=PATH, table (both protocols, `seeds` seeds),
seeds=N, synthetic_shape (generate data of this data set's shape instead of reading files). Any field can also be
overridden with --config.<field>=value (e.g. --config.dense.negative_group_size=1).
"""

from __future__ import annotations

import ml_collections

from humanai_jax.configs import choose_variant, parse_arg

# 40k-92k items: no I x I array anywhere (candidate SLIM, blocked ItemKNN); EASE's dense inverse is off
# (6.7-34 GB); the memory plan refuses any stage that would not fit, naming it.
_LARGE_SCALE = dict(sparse_views=True)
_LARGE_BASELINES = dict(ease=False, knn_k_grid=[100])

# Per-dataset values from the reference (spec sad.md §2, §4, §6).
_DATASETS = {
    "synthetic": dict(
        sparse=dict(alpha=0.01, l1_ratio=1e-4),
        dense=dict(dim=32, init_std=1e-3, batch_size=128, num_negatives=64, negative_weight=64, w1=1e-7, w3=1e-7,
                   gamma=1e-4, max_epochs=60, eval_every=5, eval_every_after=30, patience=6, lr=1e-2),
        d2s=dict(k_user_train=5, k_item_train=10, k_user_test=0, k_item_test=0),
        fusion=dict(beta=3.0),
    ),
    "ml1m_m1": dict(
        sparse=dict(alpha=0.01, l1_ratio=1e-4),
        # negative_group_size=1024 (one shared draw per batch): ~10x faster epochs than per-pair draws,
        # which is what fits the pipeline in ~10 CPU minutes (docs/sad.md, "Negative sampling").
        # 130 epochs: with shared negatives the dense model was still improving at epoch 100 (best epoch =
        # last); at 130 the idle 2-core pipeline takes 503 s and meets the SimpleX anchor (BENCHMARKS.md).
        dense=dict(dim=128, init_std=1e-3, batch_size=1024, num_negatives=200, negative_weight=200, w1=1e-7,
                   w3=1e-7, gamma=1e-4, max_epochs=130, patience=50, negative_group_size=1024),
        d2s=dict(k_user_train=5, k_item_train=25, k_user_test=0, k_item_test=0),
        fusion=dict(beta=3.0),
    ),
    # No SaD values exist for Last.fm: ML-1M dense settings. Its 17,388 items make SLIM's dense O(I^3)
    # coordinate descent too slow for a CPU, so the sparse view is cosine ItemKNN (top-100); set
    # --config.sparse.model=slim to use SLIM (alpha/l1_ratio as for ML-1M) on a bigger machine.
    "lastfm": dict(
        # 2,382 test items never occur in train: kept as cold items (they count in recall's denominator).
        data=dict(test_only_ids="keep"),
        baselines=dict(ease=False),  # a dense 17k x 17k inverse per grid point: too slow on a CPU
        sparse=dict(model="itemknn", alpha=0.01, l1_ratio=1e-4),
        dense=dict(dim=64, init_std=1e-3, batch_size=1024, num_negatives=200, negative_weight=200, w1=1e-7,
                   w3=1e-7, gamma=1e-4, max_epochs=150, patience=20),
        d2s=dict(k_user_train=5, k_item_train=25, k_user_test=0, k_item_test=0),
        fusion=dict(beta=3.0),
    ),
    "gowalla_m1": dict(
        scale=_LARGE_SCALE,
        baselines=_LARGE_BASELINES,
        sparse=dict(alpha=0.005, l1_ratio=1e-6),
        dense=dict(dim=64, init_std=1e-4, batch_size=512, num_negatives=1500, negative_weight=300, w1=1e-6,
                   w3=1e-6, gamma=1e-4, max_epochs=2000, patience=50),
        d2s=dict(k_user_train=5, k_item_train=10, k_user_test=0, k_item_test=15),
        fusion=dict(beta=10.0),
    ),
    "yelp18_m1": dict(
        scale=_LARGE_SCALE,
        baselines=_LARGE_BASELINES,
        sparse=dict(alpha=0.01, l1_ratio=1e-4),
        dense=dict(dim=64, init_std=1e-4, batch_size=1024, num_negatives=800, negative_weight=300, w1=1e-8,
                   w3=1e-8, gamma=1e-4, max_epochs=2000, patience=15),
        d2s=dict(k_user_train=0, k_item_train=25, k_user_test=0, k_item_test=50),
        fusion=dict(beta=15.0),
    ),
    "amazonbooks_m1": dict(
        scale=_LARGE_SCALE,
        baselines=_LARGE_BASELINES,
        sparse=dict(alpha=0.001, l1_ratio=0.001),
        # w3 = 1, w4 = 1e-8 as released (docs/sad.md §4, marked unusual).
        dense=dict(dim=64, init_std=1e-4, batch_size=1024, num_negatives=500, negative_weight=500, w1=1e-8,
                   w3=1.0, w4=1e-8, gamma=1e-4, max_epochs=2000, patience=15),
        d2s=dict(k_user_train=0, k_item_train=10, k_user_test=0, k_item_test=0),
        fusion=dict(beta=100.0),
    ),
}

_DATA_DIRS = {"ml1m_m1": "ml1m_m1", "lastfm": "lastfm", "gowalla_m1": "gowalla_m1", "yelp18_m1": "yelp18_m1",
              "amazonbooks_m1": "amazonbooks_m1"}


def _base() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.experiment = "sad"
    c.seed = 0
    c.protocol = "bars"  # "bars": select on test (leaderboard convention); "honest": select on validation
    c.valid_fraction = 0.1  # honest protocol, data sets without a valid file

    c.data = ml_collections.ConfigDict()
    c.data.name = "synthetic"
    c.data.format = "synthetic"  # "synthetic" | "lightgcn" | "recbole"
    c.data.dir = ""  # a directory for every file format; "" -> ../shared/data/recsys/<name> (relative: repo root)
    c.data.test_only_ids = "error"  # ids in test/valid but not train: "error" | "drop" | "keep" (cold ids)
    c.data.recbole_split = "leave_one_out"  # RecBole .inter files: "leave_one_out" | "ratio"
    c.data.synthetic_users = 600
    c.data.synthetic_items = 400
    c.data.synthetic_mean_items = 30.0
    c.data.popularity_exponent = 0.8  # synthetic_shaped: Zipf exponent of item popularity

    c.sparse = ml_collections.ConfigDict()
    c.sparse.model = "slim"  # "slim" | "ease" | "itemknn"
    c.sparse.alpha = 0.01  # scikit-learn ElasticNet alpha
    c.sparse.l1_ratio = 1e-4
    c.sparse.max_iter = 100  # reference: max_iter=100, tol=1.0, selection='random' (early-stopped SLIM)
    c.sparse.tol = 1.0
    c.sparse.selection = "random"
    c.sparse.topk = 100
    c.sparse.faithful_topk = True  # keep min(nnz - 1, topk) as daisyRec does (docs/sad.md §7 #3)
    c.sparse.block = 64
    c.sparse.candidates = 200  # scale.sparse_views: each SLIM column is solved over its top co-occurring items
    c.sparse.column_block = 512  # scale.sparse_views: items per block of Gram columns
    c.sparse.ease_l2 = 500.0
    c.sparse.knn_k = 100

    c.s2d = ml_collections.ConfigDict()
    c.s2d.n_per_item = 5
    c.s2d.exclude_train_positives = False  # released: train positives are not masked (docs/sad.md §7 #4)
    c.s2d.dedup_augmentation = False  # released: ~90% of the added pairs duplicate a train positive
    c.s2d.numpy_tie_break = True  # ties pick the highest user ids, as numpy argsort(...)[-k:]

    c.dense = ml_collections.ConfigDict()
    c.dense.backbone = "mf"  # "mf" | "lightgcn"
    c.dense.n_layers = 3
    c.dense.loss = "ultragcn"  # "ultragcn" (L_O) | "bpr"
    c.dense.user_weight = "sad"  # "sad": 1/sqrt(d_u+1) | "ultragcn": sqrt(d_u+1)/d_u
    c.dense.negative_group_size = 32  # pairs sharing one negative draw; 1 = per pair (released, ~10x slower)
    c.dense.faithful_order = False  # True: released unshuffled, user-sorted order (stalls; docs/sad.md §7 #5)
    c.dense.dim = 64
    c.dense.init_std = 1e-4
    c.dense.batch_size = 1024
    c.dense.num_negatives = 200
    c.dense.negative_weight = 200.0
    c.dense.w1 = 1e-7
    c.dense.w2 = 1.0
    c.dense.w3 = 1e-7
    c.dense.w4 = 1.0
    c.dense.gamma = 1e-4
    c.dense.lr = 1e-3
    c.dense.max_epochs = 100
    c.dense.eval_every = 5  # UltraGCN schedule: every 5 epochs, every epoch from eval_every_after
    c.dense.eval_every_after = 50
    c.dense.patience = 50  # evaluations without improvement before stopping

    c.d2s = ml_collections.ConfigDict()
    c.d2s.alpha = 0.3
    c.d2s.k_user_train = 5
    c.d2s.k_item_train = 25
    c.d2s.k_user_test = 0
    c.d2s.k_item_test = 0

    c.fusion = ml_collections.ConfigDict()
    c.fusion.beta = 3.0  # the coded value (reported as sad_coded_beta)
    c.fusion.beta_grid = [1.0, 3.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0]  # beta selected on the selection split

    c.baselines = ml_collections.ConfigDict()  # simple baselines on X, their setting selected like beta
    c.baselines.ease = True
    c.baselines.ease_l2_grid = [100.0, 200.0, 500.0, 1000.0, 2000.0]
    c.baselines.itemknn = True
    c.baselines.knn_k_grid = [20, 50, 100, 200]
    c.baselines.slim_sklearn = False  # SLIM(X) in scikit-learn's own coordinate order (CPU, reference path)

    c.table = ml_collections.ConfigDict()  # `table`: run every protocol for every seed, report mean/std
    c.table.enabled = False
    c.table.seeds = [0, 1, 2]
    c.table.protocols = ["honest", "bars"]

    c.stages = ml_collections.ConfigDict()
    c.stages.dense_alone = True  # also train the dense model without S->D pairs (doubles dense time)

    c.scale = ml_collections.ConfigDict()
    c.scale.sparse_views = False  # True: no I x I array (candidate SLIM, blocked ItemKNN); for 40k+ items
    c.scale.memory_limit_gb = 0.0  # 0: 85% of the memory available at each stage's plan

    c.eval = ml_collections.ConfigDict()
    c.eval.ks = [20, 50]
    c.eval.block = 1024

    c.diagnostics = ml_collections.ConfigDict()
    c.diagnostics.enabled = True
    c.diagnostics.n_buckets = 5
    c.save_checkpoint = True
    return c


def _merge(c: ml_collections.ConfigDict, values: dict) -> None:
    for section, fields in values.items():
        for key, value in fields.items():
            if key not in c[section]:
                raise KeyError(f"unknown config field {section}.{key}")
            c[section][key] = value


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    table_alias = arg is not None and (arg == "table" or arg.startswith("table,"))
    if table_alias:  # `table` = ML1M_m1, 3 seeds, both protocols, every ablation and baseline
        arg = "ml1m_m1,table" + arg[len("table"):]
    variant, rest = choose_variant(arg, _DATASETS, default="synthetic")
    opts = parse_arg(rest, protocol="bars", dense_alone=True, faithful_order=False, max_epochs=0, data_dir="",
                     table=False, seeds=3, synthetic_shape=False)
    c = _base()
    _merge(c, _DATASETS[variant])
    c.data.name = variant
    if variant != "synthetic":
        c.data.format = "lightgcn"
        c.data.dir = opts.data_dir or f"../shared/data/recsys/{_DATA_DIRS[variant]}"
    if opts.synthetic_shape:  # this data set's users/items/interactions, generated (no files needed)
        c.data.format = "synthetic_shaped"
    c.protocol = opts.protocol
    c.stages.dense_alone = opts.dense_alone
    c.dense.faithful_order = opts.faithful_order
    if opts.max_epochs:
        c.dense.max_epochs = opts.max_epochs
    if opts.table:
        c.table.enabled = True
        c.table.seeds = list(range(opts.seeds))
        c.baselines.slim_sklearn = variant == "ml1m_m1"  # the reference-order SLIM next to ours
    return c
