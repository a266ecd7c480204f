r"""HumanLLM multi-task user-behaviour SFT (experiment `experiments/humanllm.py`).

COMMAND (default: synthetic users with latent preferences, a small model trained from scratch with a
locally trained tokenizer, CPU; item-selection accuracy with its exact 95% CI vs. 5% chance in
results.json; numbers, wall time and load in docs/humanllm.md and BENCHMARKS.md):
  python -m experiments.run --config configs/humanllm_sft.py --workdir /tmp/humanllm

Variants (first word of the config argument; `key=value` pairs after a comma override):
  tiny             the default above
  smoke            a few steps on a handful of users (tests)
  files            SFT on task-builder output: configs/humanllm_sft.py:files,train=/p/train.jsonl,test=/p/test.jsonl
                   (add hf_path=/ckpt/dir to start from a real checkpoint and its chat template)
  qwen2.5_7b_fsdp8 the reference recipe on Qwen2.5-7B-Instruct shapes: bf16, full remat, FSDP over 8 GPUs,
                   lr 5e-6 cosine, warmup 5%, cutoff 8192, global batch 64 (8 x accum 8 rows of 1)
  tpu_v5p_32       the same model on a TPU v5p-32 pod slice (95 GiB HBM per chip): FSDP 32, global batch 64
                   (2 rows per chip, accum 2), cutoff 8192

Memory plan of a real-size variant (jax.eval_shape on an abstract mesh, nothing allocated):
  python -m experiments.memory_plan --config configs/humanllm_sft.py:qwen2.5_7b_fsdp8
Model merging of two HF checkpoints:
  python -m experiments.humanllm_merge --sft DIR --base DIR --out DIR --alpha 0.5
"""

import ml_collections

from humanai_jax.configs import choose_variant, parse_arg
from humanai_jax.sharding import DEFAULT_RULES

_VARIANTS = {"tiny": {}, "smoke": {}, "files": {}, "qwen2.5_7b_fsdp8": {}, "tpu_v5p_32": {}}
_QWEN25_7B = dict(d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4, head_dim=128, mlp_dim=18944,
                  vocab_size=152064, tie_embeddings=False)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, rest = choose_variant(arg, _VARIANTS, default="tiny")
    args = parse_arg(rest, hf_path="", train="", test="", steps=0)

    c = ml_collections.ConfigDict()
    c.experiment = "humanllm"
    c.seed = 2025

    c.model = ml_collections.ConfigDict(dict(
        hf_path=args.hf_path,  # a HF checkpoint dir (config.json, safetensors, tokenizer with chat template)
        family="qwen2", vocab_size=0, d_model=128, n_layers=3, n_heads=4, n_kv_heads=2, head_dim=0, mlp_dim=384,
        tie_embeddings=True, dtype="float32", param_dtype="float32", scan_layers=True, remat="none",
    ))
    c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=1, tensor=1, axis_type="auto"))
    c.rules = ml_collections.ConfigDict({k: tuple(v) for k, v in DEFAULT_RULES.items()})

    c.data = ml_collections.ConfigDict(dict(
        source="synthetic",  # synthetic | files
        train_path=args.train, test_path=args.test,  # JSONL of {uid, source, messages} (files)
        n_users=4000, n_genres=8, items_per_genre=8,  # synthetic users with latent preferences (synthetic.py)
        profile_frac=2_000 / 15_000,  # persona2profile cap / item_selection cap: the reference's Amazon ratio
        tokenizer="",  # "" = hf_path's, else a byte-level BPE trained into WORKDIR/tokenizer
        vocab_size=512,
        seq_len=384,  # packed row length (cutoff_len); rows hold seq_len + 1 tokens
        seed=2025,
    ))
    c.optim = ml_collections.ConfigDict(dict(
        name="adamw", lr=3e-3, schedule="warmup_cosine", warmup_steps=30, decay_steps=0, end_lr_frac=0.05,
        b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.0, clip_norm=1.0,
    ))
    c.train = ml_collections.ConfigDict(dict(
        steps=800, batch_size=8, grad_accum=1, loss_chunk=0,
        mix_temperature=1.0,  # task mixing: probability ∝ count^T (1 = proportional, as the reference; 0 = balanced)
        log_every=25, distributed="auto",
        slow_step_s=0.0,  # sleeps after each step: lets tests interrupt a run mid-way
    ))
    c.ckpt = ml_collections.ConfigDict(dict(dir="", every=250, keep=2, resume=True))
    c.merge = ml_collections.ConfigDict(dict(enabled=True, alpha=0.5))
    c.eval = ml_collections.ConfigDict(dict(
        n_per_source=500, batch=32, temperature=0.0, max_new_tokens=8, free_text_max_tokens=256,
        judge_base_url="", judge_model="",  # an OpenAI-compatible judge for the free-text tasks (optional)
    ))
    c.export_hf = False

    if variant == "smoke":
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
