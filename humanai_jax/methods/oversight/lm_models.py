"""Weak and strong backbone classifiers for the text variants (w2s_motivebench, w2s_blog, w2s_hf).

Each side (`config.weak`, `config.strong`) is either a HF checkpoint dir (`hf_path`, its own tokenizer), or a
decoder pretrained here with the shared Trainer and the project's LM step (`train/step.py`) on a corpus the
project builds, so that weak and strong differ in what they learned, not only in size:
  corpus "generated"          the generated English corpus (data/corpus.py: stories, counting, arithmetic)
  corpus "generated+domain"   that corpus + domain text: the data set's *train* texts (never test) and the
                              MotiveBench Amazon scenario stories (../shared/data/motivebench/amazon_scenarios_1000.json)
Models pretrained here share one BPE tokenizer trained on generated + domain text (WORKDIR/tokenizer).
Pretraining uses `config.seed` once; the per-seed protocol then fine-tunes copies of these backbones.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from humanai_jax import experiment
from humanai_jax.backbone.params import init_params
from humanai_jax.data import TokenWindows, generate_corpus, load_tokenizer, tokenize_documents, train_tokenizer
from humanai_jax.methods.oversight import models, w2s
from humanai_jax.methods.oversight.data import BinaryData, BinarySplit, encode_texts
from humanai_jax.train import optim, step as step_lib
from humanai_jax.train.model_block import model_config
from humanai_jax.train.state import new_train_state
from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig, TrainTask

CORPORA = ("generated", "generated+domain")


def domain_texts(train: BinarySplit, shared_dir: str) -> list[str]:
    """The data set's train texts + the MotiveBench Amazon scenario stories (when the file exists)."""
    texts = list(train.texts or [])
    path = os.path.join(shared_dir, "motivebench", "amazon_scenarios_1000.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            texts += [r["story"] for r in json.load(f) if isinstance(r, dict) and isinstance(r.get("story"), str)]
    return texts


def corpus(name: str, block, train: BinarySplit, shared_dir: str, seed: int) -> list[str]:
    if name not in CORPORA:
        raise ValueError(f"pretrain.corpus must be one of {CORPORA}, got {name!r}")
    docs = generate_corpus(block.num_docs, seed=seed)
    return docs + domain_texts(train, shared_dir) if name == "generated+domain" else docs


def pretrain(workdir: str, side, tokenizer, docs: list[str], seed: int, log: Callable[[str], None]):
    """(ModelConfig, params): a decoder of `side.model`'s shapes trained `side.pretrain.steps` steps of
    next-token prediction on `docs` with the shared Trainer (resumes from WORKDIR's checkpoint)."""
    p = side.pretrain
    model_cfg = model_config(ml_collections.ConfigDict({"model": side.model.to_dict()}), tokenizer)
    windows = TokenWindows(tokenize_documents(tokenizer, docs), p.seq_len, seed=seed)
    opt_cfg = ml_collections.ConfigDict(dict(name="adamw", lr=p.lr, schedule="warmup_cosine", warmup_steps=20,
                                             end_lr_frac=0.1, weight_decay=0.1, clip_norm=1.0))
    tx, schedule = optim.make_optimizer(opt_cfg, p.steps)
    rep = w2s._replicated()
    new_state = lambda rng: new_train_state(init_params(model_cfg, rng), tx, rng)  # noqa: E731
    abstract = jax.eval_shape(new_state, jax.ShapeDtypeStruct((2,), jnp.uint32))
    shardings = jax.tree.map(lambda _: rep, abstract)
    task = TrainTask(
        init=jax.jit(new_state, out_shardings=shardings),
        abstract_state=jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep), abstract),
        state_shardings=shardings,
        step=functools.partial(step_lib.train_step, cfg=step_lib.StepConfig(model=model_cfg), tx=tx, schedule=schedule),
        batch_at=lambda s: {"tokens": windows.batch(s, p.batch_size)},
        abstract_batch={"tokens": jax.ShapeDtypeStruct((p.batch_size, p.seq_len + 1), jnp.int32, sharding=rep)},
        fingerprint={"seed": seed, "model": model_cfg.identity(), "pretrain": p.to_dict(), "n_docs": len(docs)},
        tokens_per_step=p.batch_size * p.seq_len)
    trainer = Trainer(workdir, TrainerConfig(steps=p.steps, seed=seed, log_every=25, progress=False, tensorboard=False),
                      CheckpointConfig(every=0, keep=1, async_save=False))
    state, _ = trainer.fit(task)
    logged = [r["loss"] for r in experiment.read_metrics(workdir) if "loss" in r]  # also after a resume
    loss = logged[-1] if logged else None
    log(f"pretrained {os.path.basename(workdir)}: {p.steps} steps on {len(docs)} docs "
        f"({windows.num_windows} windows), final train loss {loss}")
    return model_cfg, state["params"], loss


def _choice_ids(tokenizer, words) -> tuple[int, int]:
    ids = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
    if any(not x for x in ids):
        raise ValueError(f"choice_tokens {tuple(words)} give an empty tokenization")
    return ids[0][0], ids[1][0]


def build_pair(config, data: BinaryData, workdir: str, log: Callable[[str], None] = print):
    """(weak, strong, train, test, info): both classifiers, and the splits with each model's token arrays
    (`weak_tokens`/`weak_mask`, `tokens`/`mask`); inputs either tokenizer makes >= max_ctx long are dropped."""
    from humanai_jax.backbone import load_pretrained

    shared_dir = os.path.abspath(config.shared_data)
    tok_dir = config.data.tokenizer or os.path.join(workdir, "tokenizer")
    own_tok = None
    if not (config.weak.hf_path and config.strong.hf_path):
        if not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
            train_tokenizer(generate_corpus(config.weak.pretrain.num_docs, seed=config.seed)
                            + domain_texts(data.train, shared_dir), config.data.vocab_size, tok_dir)
        own_tok = load_tokenizer(tok_dir)
    info, sides = {}, {}
    for name, side in (("weak", config.weak), ("strong", config.strong)):
        if side.hf_path:
            tok = load_tokenizer(side.hf_path)
            model_cfg, params = load_pretrained(side.hf_path)
            info[f"{name}_model"] = f"hf:{side.hf_path}"
        else:
            tok = own_tok
            docs = corpus(side.pretrain.corpus, side.pretrain, data.train, shared_dir, config.seed)
            model_cfg, params, loss = pretrain(os.path.join(workdir, f"pretrain_{name}"), side, tok, docs,
                                               config.seed, log)
            info[f"{name}_model"] = f"pretrained here: {side.pretrain.corpus}, {side.pretrain.steps} steps"
            info[f"{name}_pretrain_loss"] = loss
        info[f"{name}_params"] = int(sum(x.size for x in jax.tree.leaves(params)))
        prefix = "weak_" if name == "weak" else ""
        clf = models.ClassifierWithHead(
            model_cfg, params, mode=side.mode, linear_probe=side.linear_probe,
            choice_ids=_choice_ids(tok, side.choice_tokens) if side.mode == "lm_head" else (0, 0),
            input_keys=(f"{prefix}tokens", f"{prefix}mask"))
        sides[name] = (clf, tok)

    def encode(split: BinarySplit) -> BinarySplit:
        arrays, kept = {}, np.ones(len(split), bool)
        for name, (_, tok) in sides.items():
            tokens, mask, k = encode_texts(tok, split.texts, config.data.max_ctx, truncate=config.data.truncate)
            arrays[name] = (tokens, mask, k)
            kept &= k
        out = split.take(np.flatnonzero(kept))
        for name, (tokens, mask, k) in arrays.items():
            rows = kept[k]  # of the rows this tokenizer kept, those every tokenizer kept
            t, m = tokens[rows], mask[rows]
            width = int(m.sum(1).max())
            prefix = "weak_" if name == "weak" else ""
            out.arrays[f"{prefix}tokens"], out.arrays[f"{prefix}mask"] = t[:, :width], m[:, :width]
        return out

    train, test = encode(data.train), encode(data.test)
    info.update(dropped_train=len(data.train) - len(train), dropped_test=len(data.test) - len(test),
                truncated_to=config.data.max_ctx - 1 if config.data.truncate else None,
                max_tokens=int(train.arrays["mask"].sum(1).max()))
    log(f"encoded: {len(train)} train / {len(test)} test kept (< {config.data.max_ctx} tokens); {info}")
    return sides["weak"][0], sides["strong"][0], train, test, info
