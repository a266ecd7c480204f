r"""RecLM (Liao et al., arXiv 2505.03336): RecLM-cgen and RecLM-ret next to SASRec and popularity.

COMMAND (default: RecLM-cgen from scratch on MovieLens-100K, CPU):
  python -m experiments.run --config configs/reclm.py --workdir runs/reclm_cgen

Variants (first word of the config argument; `key=value` pairs after a comma override variant args):
  cgen     RecLM-cgen: SFT with <SOI>/<EOI> and the scope-mask loss, decoded with the item-trie constraint
  ret      RecLM-ret: projection head at <SOI> + trainable item table, retrieval + LM loss, forced decoding
  sasrec   the SASRec teacher alone (and popularity), full ranking
  table    sasrec, popularity, cgen and ret, 3 seeds: results.json methods.<m>.<metric> = {mean, std, per_seed}
  gpu      cgen with a bigger model and 20 epochs (the reference's epoch count), sized for one accelerator

LoRA: `--config.lora.rank=8 [--config.lora.alpha=16 --config.lora.targets=q,v]` (with `hf_path` the usual
way to fine-tune a real checkpoint); `--config.ckpt.export_hf=True` writes WORKDIR/<variant>/hf_export.
Args: seeds=0 (a single seed; `table` uses 0,1,2), epochs, hf_path (a HF checkpoint dir to fine-tune).
Every field can be overridden: `--config.train.epochs=5 --config.model.d_model=256`.
"""

import ml_collections

from humanai_jax import configs
from humanai_jax.configs import choose_variant, parse_arg

_VARIANTS = {"cgen": {}, "ret": {}, "sasrec": {}, "table": {}, "gpu": {}}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, rest = choose_variant(arg, _VARIANTS, default="cgen")
    args = parse_arg(rest, epochs=0, hf_path="", seeds="")

    c = ml_collections.ConfigDict()
    c.experiment = "reclm"
    c.variant = variant
    # which methods run: the RecLM variant(s); the teacher SASRec and popularity are always reported
    c.methods = {"cgen": ("cgen",), "ret": ("ret",), "sasrec": (), "table": ("cgen", "ret"), "gpu": ("cgen",)}[variant]
    c.seed = 0
    seeds = tuple(int(s) for s in args.seeds.split("/") if s) if args.seeds else ()
    c.seeds = seeds or ((0, 1, 2) if variant == "table" else ())

    c.data = ml_collections.ConfigDict(dict(
        source="recbole",  # recbole (ML-100K stand-in) | amazon | steam
        inter_path="../shared/data/recsys/ml-100k/ml-100k.inter",
        item_path="../shared/data/recsys/ml-100k/ml-100k.item",
        review_path="", meta_path="",  # amazon / steam files (.json[.gz] lines)
        min_len=17, max_len=17,  # users with >= 17 interactions, truncated to their first 17 (§5.1)
        n_users=10000,  # random.seed(0); random.choices (with replacement), duplicates collapse
        history_len=10, max_reply_items=10,
        sample_seed=0,  # the §5.1 user draw (random.seed(0) in the reference)
        vocab_size=2048,  # BPE fit on the training text (titles, templates) when no tokenizer is given
        tokenizer="",
        seq_len=384,  # row length - 1; longer prompts keep their last tokens
    ))

    c.sasrec = ml_collections.ConfigDict(dict(
        d_model=64, n_heads=2, n_layers=2, inner=128, max_len=10,
        steps=600, batch_size=128, lr=1e-3, eval_every=100,
        teacher_exclude_history="hard",  # hard | offset (the reference's -1 score offset)
    ))

    c.model = configs.model_block(hf_path=args.hf_path)
    c.model.update(dict(d_model=128, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=384, family="qwen2",
                        tie_embeddings=True))
    # LoRA on the backbone's linear layers (rank 0 = off, full fine-tuning): the base layer stack is frozen,
    # the adapters (and the embeddings, for the new <SOI>/<EOI> rows) train; merged back for hf_export.
    c.lora = ml_collections.ConfigDict(dict(rank=0, alpha=16.0, targets="q,k,v,o,gate,up,down",
                                            train_embeddings=True))
    c.item_proj = ml_collections.ConfigDict(dict(hidden=256, dim=64))  # ret head: D -> hidden -> dim
    c.output_init = "reference_resize"  # new <SOI>/<EOI> head rows of a loaded checkpoint

    # The shared train block (steps 0 = epochs x steps per epoch; validation runs every epoch, see `eval`; shared
    # keys RecLM does not implement are refused when changed) plus RecLM's own keys: the reference's AdamW
    # (linear warm-up over warmup_frac of the steps, polynomial decay; methods/reclm/train.make_optimizer).
    c.train = configs.train_block(steps=0, batch_size=16, log_every=20, progress=False)
    c.train.update(dict(
        # One freshly drawn sample per user per epoch. 20 = the reference's count (§2.6), chosen on validation:
        # a 30-epoch cgen run (seed 0) had val HR@10 0.13-0.14 at epochs 20-29 against <= 0.09 by epoch 10.
        epochs=args.epochs or 20,
        lr=2e-3, warmup_frac=0.0125, weight_decay=0.01, clip=1.0,
        loss_norm="per_sample", emb_alpha=1.0, scope_mask_eoi=False,
    ))
    c.eval = ml_collections.ConfigDict(dict(
        n_val_users=320,  # validation: the first users of the val split, every epoch; best NDCG@10 kept
        item_count=10, max_new_tokens=200, batch=64,
        prompt="train",  # reference (ValSeqRec_MR_group) | reference_cs | train (see docs/reclm.md)
        unconstrained_ablation=True,  # cgen: also decode test without the trie (unconstrained_* in results)
        sampling=False,  # also decode with the reference's sampling (T 0.6, top-p 0.9)
        temperature=0.6, top_p=0.9,
        general_docs=200,  # held-out non-recommendation documents for the general-ability check
    ))
    c.ckpt = configs.ckpt_block()

    if variant == "gpu":
        c.model.update(dict(d_model=512, n_layers=8, n_heads=8, n_kv_heads=4, mlp_dim=1536))
        c.train.update(dict(epochs=args.epochs or 20, batch_size=64, lr=5e-4))
        c.sasrec.update(dict(d_model=128, inner=256, steps=2000))
        c.data.vocab_size = 8192
    return c
