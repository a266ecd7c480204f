r"""HumanLLM multi-task user-behaviour SFT (experiment `experiments/humanllm.py`).

COMMAND (default: the paper's item-selection task on MovieLens-100K, real users: demographic persona +
the last 10 rated titles -> the next rated movie among 20 candidates, trained in one multi-task run with
rating prediction (same users) and continuation of real Blogger posts (data.tasks; rating: RMSE/MAE/exact
match next to global/user/item mean and a bias model; writing: per-token NLL next to unigram/bigram LMs and
context ablations); users split train/val/test; a small
model trained from scratch with a tokenizer fit on the training text, CPU; both model protocols
(generation, likelihood ranking) next to random / popularity / genre / ItemKNN / EASE on the same
candidates, exact 95% CIs, in results.json; numbers, wall time and load in docs/humanllm.md):
  python -m experiments.run --config configs/humanllm_sft.py --workdir /tmp/humanllm

Variants (first word of the config argument; `key=value` pairs after a comma override):
  movielens        the default above (data: ../shared/data/recsys/ml-100k relative to the repo root)
  table            the default for 3 seeds (mean, std, per-seed, pooled exact CI in results.json)
  movielens_smoke  a few steps on MovieLens (tests: reproducibility)
  synthetic        the old default, synthetic users (a fast test fixture only: a 10-line rule solves it;
                   its rule baseline is reported beside it); `tiny` is the same
  smoke            a few steps on a handful of synthetic users (tests)
  files            SFT on task-builder output: configs/humanllm_sft.py:files,train=/p/train.jsonl,test=/p/test.jsonl
                   (add hf_path=/ckpt/dir to start from a real checkpoint and its chat template)
  qwen2.5_7b_fsdp8 the reference recipe on Qwen2.5-7B-Instruct shapes: bf16, full remat, FSDP over 8 GPUs,
                   lr 5e-6 cosine, warmup 5%, cutoff 8192, global batch 64 (8 x accum 8 rows of 1)
  tpu_v5p_32       the same model on a TPU v5p-32 pod slice (95 GiB HBM per chip): FSDP 32, global batch 64
                   (2 rows per chip, accum 2), cutoff 8192

Memory plan of a real-size variant (jax.eval_shape on an abstract mesh, nothing allocated):
  python -m experiments.memory_plan --config configs/humanllm_sft.py:qwen2.5_7b_fsdp8
Model merging of two HF checkpoints (`merged/*` is reported only when training starts from `hf_path`):
  python -m experiments.humanllm_merge --sft DIR --base DIR --out DIR --alpha 0.5
"""

import ml_collections

from humanai_jax import configs
from humanai_jax.configs import choose_variant, parse_arg

_VARIANTS = {"movielens": {}, "table": {}, "movielens_smoke": {}, "synthetic": {}, "tiny": {}, "smoke": {},
             "files": {}, "qwen2.5_7b_fsdp8": {}, "tpu_v5p_32": {}}
_QWEN25_7B = dict(d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4, head_dim=128, mlp_dim=18944,
                  vocab_size=152064, tie_embeddings=False)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, rest = choose_variant(arg, _VARIANTS, default="movielens")
    args = parse_arg(rest, hf_path="", train="", test="", steps=0)

    c = ml_collections.ConfigDict()
    c.experiment = "humanllm"
    c.seed = 2025

    # The shared blocks (humanai_jax/configs.py documents every key). hf_path: a HF checkpoint dir (config.json,
    # safetensors, tokenizer with a chat template).
    c.model = configs.model_block(hf_path=args.hf_path, n_layers=3)
    c.mesh = configs.mesh_block(fsdp=1)
    c.rules = configs.rules_block()

    c.seeds = ()  # non-empty: one sub-run per seed (WORKDIR/seed_<s>) and mean/std/per-seed results
    c.data = ml_collections.ConfigDict(dict(
        source="movielens",  # movielens | synthetic | files
        path="../shared/data/recsys/ml-100k",  # RecBole atomic ml-100k.{inter,item,user} (relative: repo root)
        user_fractions=(0.6, 0.1, 0.3),  # train / val / test users
        history_len=10,  # rated titles before the target shown in the prompt
        positions_per_user=20,  # next-item training positions per train user (never the user's last item)
        min_history=5,  # a training position has at least this many items before it
        # movielens: the tasks trained together in one multi-task SFT run (item selection is always on):
        # rating = the user's 1-5 rating of a held-out movie (MovieLens); writing = continuation of real
        # Blogger posts (blog_path, split by post; no author ids, see docs)
        tasks=("item_selection", "rating", "writing"),
        rating_positions_per_user=10,  # rating training positions per train user (never the user's last item)
        blog_path="../shared/data/motivebench/blog_extracted.json",  # MotiveBench's 631 Blogger posts
        blog_max_words=120,  # a post's first words used for the continuation sample (~280 tokens; fits seq_len)
        train_path=args.train, test_path=args.test,  # JSONL of {uid, source, messages} (files)
        n_users=4000, n_genres=8, items_per_genre=8,  # synthetic users with latent preferences (synthetic.py)
        profile_frac=2_000 / 15_000,  # persona2profile cap / item_selection cap: the reference's Amazon ratio
        tokenizer="",  # "" = hf_path's, else a byte-level BPE trained into WORKDIR/tokenizer
        vocab_size=4096,
        seq_len=512,  # packed row length (cutoff_len); rows hold seq_len + 1 tokens
        seed=2025,
    ))
    c.optim = configs.optim_block(warmup_steps=30, end_lr_frac=0.05, weight_decay=0.0)
    # movielens: 600 steps (the one size/steps measured, see docs). No periodic eval: item selection is scored once
    # at the end. Checkpoints are written synchronously: the end-of-run evaluation follows the last save at once.
    c.train = configs.train_block(steps=600, batch_size=8, log_every=25, eval_every=0, progress=False)
    c.train.mix_temperature = 1.0  # task mixing: probability ∝ count^T (1 = proportional, as the reference; 0 = balanced)
    c.ckpt = configs.ckpt_block(every=250, keep=2, async_save=False)
    c.merge = ml_collections.ConfigDict(dict(enabled=True, alpha=0.5))
    c.eval = ml_collections.ConfigDict(dict(
        n_per_source=500, batch=32, temperature=0.0, max_new_tokens=32, free_text_max_tokens=256,
        rank_batch=32,  # rows per forward pass when ranking the 20 candidates by likelihood
        rating_max_tokens=4,  # greedy reply length for the rating task's generation protocol
        max_users=0,  # > 0: evaluate only the first max_users val and test users (quick looks, tests)
        sasrec_steps=600,  # the SASRec baseline's training steps (humanai_jax.recsys.sasrec); 0 = no SASRec
        judge_base_url="", judge_model="",  # an OpenAI-compatible judge for the free-text tasks (optional)
    ))
    c.export_hf = False

    if variant in ("synthetic", "tiny", "smoke"):  # the old synthetic default (a test fixture, see docs)
        c.data.update(source="synthetic", vocab_size=512, seq_len=384)
        c.train.steps = 800
        c.eval.max_new_tokens = 8
    if variant == "table":
        c.seeds = (2025, 2026, 2027)
    elif variant == "movielens_smoke":
        c.data.update(user_fractions=(0.5, 0.2, 0.3), positions_per_user=2, rating_positions_per_user=2, seq_len=640,
                      blog_max_words=60)
        c.model.update(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=64)
        c.train.update(steps=3, batch_size=2, log_every=1)
        c.eval.update(batch=16, max_new_tokens=4, rank_batch=40, max_users=10, sasrec_steps=12)
    elif variant == "smoke":
        c.data.update(n_users=60)
        c.model.update(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=64)
        c.train.update(steps=3, batch_size=4, log_every=1)
        c.eval.update(n_per_source=8, batch=8, max_new_tokens=4)
        c.ckpt.every = 2
    elif variant == "files":
        if not (args.train and args.test):
            raise ValueError("the files variant needs train=/path/train.jsonl,test=/path/test.jsonl")
        c.data.source = "files"
    elif variant in ("qwen2.5_7b_fsdp8", "tpu_v5p_32"):
        c.data.source = "files" if args.train else "synthetic"
        c.model.update(family="qwen2", dtype="bfloat16", param_dtype="float32", remat="full", **_QWEN25_7B)
        c.data.update(seq_len=8192, vocab_size=_QWEN25_7B["vocab_size"])
        c.optim.update(lr=5e-6, warmup_steps=0, end_lr_frac=0.0, b2=0.999, weight_decay=0.0)
        c.train.update(batch_size=64, grad_accum=8, loss_chunk=1024, steps=3000, log_every=10)
        c.mesh.update(fsdp=8 if variant == "qwen2.5_7b_fsdp8" else 32)
        if variant == "tpu_v5p_32":
            c.train.grad_accum = 2  # 64 rows over 32 chips: 2 per chip, one per micro-batch
        c.ckpt.every = 500
        c.export_hf = True
        # warmup ratio 0.05 of the run, as in the reference
        c.optim.warmup_steps = int(0.05 * c.train.steps)
    if args.steps:
        c.train.steps = args.steps
    return c
