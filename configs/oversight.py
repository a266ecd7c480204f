r"""Scalable oversight (experiments/oversight.py; docs/oversight.md; docs/oversight.md).

COMMAND (default: weak-to-strong on toy_latent, 3 seeds, CPU, ~6 min under load; the transfer losses'
epochs and aux weight chosen on validation, w2s.grid):
  python -m experiments.run --config configs/oversight.py:w2s_toy --workdir runs/oversight_w2s_toy

Variants (first word; `key=value` pairs after a comma override the variant args below):
  w2s_toy           toy_latent: weak = MLP on a noisy subset of x, strong = zero-init linear head on latent
                    features (w·x + noise dims). Checks the losses and the pipeline; PGR values are no claims.
  w2s_motivebench   motivebench_binary; weak / strong = a small / a larger decoder pretrained here briefly
                    (weak on the generated corpus, strong on that corpus + MotiveBench-domain text),
                    or any HF checkpoint dirs (weak_hf=..., strong_hf=...)
  w2s_blog          blog_need (Love and Belonging vs other), same models as w2s_motivebench
  w2s_hf            any HF `datasets` set with text + binary label: set data.hf.* and weak_hf / strong_hf
  debate            debate on MotiveBench items over a ChatBackend (backend_* blocks; default scripted)
  sandwich          sandwiching on MotiveBench items over a ChatBackend (default scripted)
Variant args: seeds=3 (number of seeds 0..n-1), weak_hf="", strong_hf="", limit=0 (debate/sandwich items).

Any field can be overridden: --config.w2s.grid.logconf.aux_coef="(0.5,)" --config.data.toy.n_train=8000
(a one-value grid fixes a hyper-parameter; --config.w2s.select_on=weak chooses without ground truth)
"""

import ml_collections

from humanai_jax import configs
from humanai_jax.configs import choose_variant, parse_arg

_VARIANTS = {"w2s_toy": {}, "w2s_motivebench": {}, "w2s_blog": {}, "w2s_hf": {}, "debate": {}, "sandwich": {}}


def _backend(kind="scripted", script="", checkpoint="", base_url="", model="", seed=0):
    """A ChatBackend block (humanai_jax/methods/oversight/backends.py documents the kinds)."""
    return ml_collections.ConfigDict(dict(
        kind=kind,  # scripted | project | hf | openai | replay
        script=script,  # scripted: lexical (see backends.py)
        checkpoint=checkpoint, tokenizer="", chat_template="",
        base_url=base_url, model=model, api_key_env="OPENAI_API_KEY",
        replay="", record="", max_batch=16, seed=seed,
    ))


def _lm(d_model, n_layers, n_heads, mlp_dim, steps, corpus, hf_path=""):
    """A backbone classifier block: from a HF dir (hf_path) or pretrained here (`pretrain`)."""
    m = ml_collections.ConfigDict(dict(
        hf_path=hf_path,
        mode="head",  # head (zero-init bias-free hidden -> 2) | lm_head (choice tokens' LM logits)
        linear_probe=False,  # stop the gradient into the backbone
        choice_tokens=(" No", " Yes"),  # lm_head mode: class 0 / class 1 tokens (first id of each)
        model=configs.model_block(d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_heads,
                                  mlp_dim=mlp_dim),
        pretrain=ml_collections.ConfigDict(dict(
            steps=steps, batch_size=16, seq_len=128, lr=3e-3,
            corpus=corpus,  # generated | generated+domain (domain = the data set's train texts + MotiveBench stories)
            num_docs=4000,
        )),
    ))
    m.optim = configs.optim_block(name="adamw", lr=1e-3, schedule="warmup_cosine", warmup_steps=0, end_lr_frac=0.0,
                                  b2=0.999, weight_decay=0.0, clip_norm=0.0)
    return m


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, rest = choose_variant(arg, _VARIANTS, default="w2s_toy")
    args = parse_arg(rest, seeds=3, weak_hf="", strong_hf="", limit=0)

    c = ml_collections.ConfigDict()
    c.experiment = "oversight"
    c.variant = variant
    c.protocol = variant.split("_")[0]  # w2s | debate | sandwich
    c.seed = 0
    c.seeds = tuple(range(args.seeds))
    c.shared_data = "../shared/data"

    c.data = ml_collections.ConfigDict(dict(
        name="toy_latent", dir="", seed=0, max_ctx=1024,
        truncate=False,  # True: cut inputs to max_ctx - 1 tokens instead of dropping them (w2s_blog: long posts)
        toy=dict(n_train=10000, n_test=1000, dim=16, weak_dims=10, weak_noise=0.3, noise_features=256,
                 signal_noise=0.1),
        hf=dict(path="", name="", data_files="", train_split="train", test_split="test", text_field="text",
                label_field="label"),
        tokenizer="",  # a HF tokenizer dir for pretrained-here models; "" = train a BPE (WORKDIR/tokenizer)
        vocab_size=4096,  # BPE trained here for the text variants (shorter inputs than 1024)
    ))
    c.w2s = ml_collections.ConfigDict(dict(
        n_val=500,  # held out of train before the 50/50 split, for choosing hyper-parameters
        gt_epochs=2, transfer_epochs=2, batch_size=32, resume=True,
        transfer_losses=dict(
            xent=dict(loss="xent"),
            logconf=dict(loss="logconf", aux_coef=0.5, warmup_frac=0.1, warmup="reference"),
            logconf_linear=dict(loss="logconf", aux_coef=0.5, warmup_frac=0.1, warmup="linear"),
            product=dict(loss="product", alpha=1.0, beta=1.0),
        ),
        # Hyper-parameters chosen on validation (mean val accuracy over seeds; test scored for the choice only).
        # {loss label: {key: values}}, keys = the loss's hyper-parameters or "epochs" (transfer epochs).
        # Every loss gets the same epochs grid; the confidence losses also their weight (spec default 0.5).
        grid=dict(
            xent=dict(epochs=(2, 4, 8, 16)),
            logconf=dict(aux_coef=(0.1, 0.25, 0.5, 0.75), epochs=(2, 4, 8, 16)),
            logconf_linear=dict(aux_coef=(0.1, 0.25, 0.5, 0.75), epochs=(2, 4, 8, 16)),
            product=dict(epochs=(2, 4, 8, 16)),
        ),
        select_on="gt",  # gt: val ground truth | weak: the weak model's labels on val (no ground truth at all)
    ))
    # toy_latent models (protocol w2s with data.name=toy_latent)
    c.weak = ml_collections.ConfigDict(dict(kind="toy_mlp", hidden=16))
    c.weak.optim = configs.optim_block(name="adamw", lr=1e-2, schedule="warmup_cosine", warmup_steps=0,
                                       end_lr_frac=0.0, b2=0.999, weight_decay=0.0, clip_norm=0.0)
    c.strong = ml_collections.ConfigDict(dict(kind="toy_linear"))
    c.strong.optim = configs.optim_block(name="adamw", lr=1e-2, schedule="warmup_cosine", warmup_steps=0,
                                         end_lr_frac=0.0, b2=0.999, weight_decay=0.0, clip_norm=0.0)

    if variant in ("w2s_motivebench", "w2s_blog", "w2s_hf"):
        c.data.name = {"w2s_motivebench": "motivebench_binary", "w2s_blog": "blog_need", "w2s_hf": "hf"}[variant]
        c.data.max_ctx = 512
        c.w2s.n_val = 60
        c.data.truncate = variant == "w2s_blog"  # 85% of the posts are >= 512 tokens: keep their beginning
        c.weak = _lm(64, 2, 2, 192, 300, "generated", args.weak_hf)
        c.weak.kind = "backbone"
        c.strong = _lm(128, 4, 4, 384, 600, "generated+domain", args.strong_hf)
        c.strong.kind = "backbone"
        c.weak.optim.lr = c.strong.optim.lr = 3e-4
        # a smaller grid: each candidate is a backbone fine-tune (CPU: minutes each)
        c.w2s.grid = dict(xent=dict(epochs=(2, 4)), logconf=dict(aux_coef=(0.25, 0.5, 0.75)),
                          logconf_linear=dict(aux_coef=(0.25, 0.5, 0.75)), product=dict(epochs=(2, 4)))

    # debate / sandwiching over chat backends (scripted by default: plumbing checks, not claims)
    c.dialogue = ml_collections.ConfigDict(dict(
        limit=args.limit or 30,  # MotiveBench items (0 = all 600)
        tasks=(1, 2, 3), wrong_option="random",  # random | hardest (needs hardest_from)
        hardest_from="",  # a MotiveBench predictions.jsonl: most-chosen wrong option per item
        rounds=3, words=150, turns=3, nonexpert_chars=200, n_resamples=2000,
        temperature=0.0, max_tokens=400,
    ))
    c.backend_strong = _backend(script="lexical")  # debaters / consultant / assistant
    c.backend_weak = _backend(script="lexical")  # judge / non-expert
    return c
