r"""Causal-LM training (generic trainer `experiments/lm.py`).

COMMAND (default experiment: a small model trained from scratch on a generated corpus, CPU, minutes):
  python -m experiments.run --config configs/lm.py:tiny --workdir /tmp/lm_tiny

Variants (first word of the config argument; `key=value` pairs after a comma override variant args):
  tiny               ~0.9M-parameter Qwen2-style model, own BPE tokenizer, 200 steps (default)
  hf                 fine-tune a HF checkpoint dir: configs/lm.py:hf,hf_path=/path/to/Qwen2.5-0.5B-Instruct
  qwen2.5_0.5b       Qwen2.5-0.5B shapes (pass hf_path=... to load the real weights), FSDP over all devices
  qwen2.5_7b_fsdp8   Qwen2.5-7B shapes, bf16 compute, full remat, FSDP over 8 devices, chunked loss;
                     see its memory plan with `python -m experiments.memory_plan --config configs/lm.py:qwen2.5_7b_fsdp8`

Any field can be overridden on the command line: `--config.train.steps=50 --config.mesh.tensor=2`.
"""

import ml_collections

from humanai_jax import configs
from humanai_jax.configs import choose_variant, parse_arg

_VARIANTS = {
    "tiny": dict(),
    "hf": dict(),
    "qwen2.5_0.5b": dict(),
    "qwen2.5_7b_fsdp8": dict(),
}

# Real Qwen2.5 shapes (config.json of Qwen/Qwen2.5-0.5B and -7B).
_QWEN25 = {
    "qwen2.5_0.5b": dict(d_model=896, n_layers=24, n_heads=14, n_kv_heads=2, head_dim=64, mlp_dim=4864,
                         vocab_size=151936, tie_embeddings=True),
    "qwen2.5_7b_fsdp8": dict(d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4, head_dim=128, mlp_dim=18944,
                             vocab_size=152064, tie_embeddings=False),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, rest = choose_variant(arg, _VARIANTS, default="tiny")
    args = parse_arg(rest, hf_path="", steps=0)

    c = ml_collections.ConfigDict()
    c.experiment = "lm"
    c.seed = 0

    # The shared blocks (humanai_jax/configs.py documents every key); from scratch (shapes below) or from a
    # HF checkpoint dir (`hf_path`; shapes then come from its config.json).
    c.model = configs.model_block(hf_path=args.hf_path)
    c.mesh = configs.mesh_block()
    c.rules = configs.rules_block()

    c.data = ml_collections.ConfigDict(dict(
        source="synthetic",  # synthetic (generated offline) | file (data.path: .jsonl with text_field, or .txt)
        path="", text_field="text",
        num_docs=6000,
        tokenizer="",  # a HF tokenizer dir; "" = hf_path's, else train a BPE into WORKDIR/tokenizer
        vocab_size=512,  # size of the BPE trained when no tokenizer is given
        seq_len=128,
        eval_fraction=0.05,
        seed=0,  # the batch at step s is a pure function of (seed, s)
    ))

    c.optim = configs.optim_block()
    c.train = configs.train_block()
    c.ckpt = configs.ckpt_block()

    if variant == "hf":
        # Fine-tune a HF checkpoint on the generated corpus with its own tokenizer.
        c.optim.update(lr=2e-5, warmup_steps=10, weight_decay=0.0)
        c.train.update(steps=100, batch_size=4, log_every=5, eval_every=50, loss_chunk=64)
        c.ckpt.update(every=50, export_hf=True)
    elif variant in _QWEN25:
        shapes = dict(_QWEN25[variant])
        c.model.update(family="qwen2", **shapes)
        c.data.vocab_size = 512
        c.optim.update(lr=1e-5, warmup_steps=100, weight_decay=0.0)
        c.train.update(steps=1000, batch_size=8, loss_chunk=512)
        c.ckpt.every = 200
        if variant == "qwen2.5_7b_fsdp8":
            c.model.update(dtype="bfloat16", remat="full")
            c.mesh.update(fsdp=8)
            c.data.seq_len = 4096
            c.train.update(batch_size=8, grad_accum=1)
    if args.steps:
        c.train.steps = args.steps
    return c
