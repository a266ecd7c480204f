"""HumanLLM SFT's data and model setup: samples (synthetic fixture or task-builder files), the chat tokenizer
(fit on the training text only, or the checkpoint's), task-mixed packed rows, and the initial params
(docs/humanllm.md)."""

from __future__ import annotations

import os

import jax
import numpy as np

from humanai_jax.methods.humanllm import sft, synthetic, tasks, tokenize
from humanai_jax.methods.humanllm.readers import iter_jsonl


def synthetic_samples(d) -> tuple[list[dict], list[dict], dict]:
    """Synthetic Amazon-like users -> item selection + persona2profile samples, split by user."""
    catalog, genre_of = synthetic.make_catalog(d.n_genres, d.items_per_genre)
    users, logs = synthetic.make_users(d.n_users, catalog, genre_of, seed=d.seed)
    samples = tasks.build_item_selection(users, logs, "Synthetic", catalog, seed=d.seed)
    samples += tasks.build_persona2profile(users, "amazon", prefix="amazon.Synthetic", seed=d.seed)
    caps = {"item_selection": d.n_users, "persona2profile": max(1, int(round(d.profile_frac * d.n_users)))}
    return tasks.split_all(samples, caps=caps, seed=d.seed)


def load_samples(config, workdir: str) -> tuple[list[dict], list[dict], dict]:
    d = config.data
    if d.source == "synthetic":
        train, test, report = synthetic_samples(d)
    elif d.source == "files":
        train = [r for _, r in iter_jsonl(d.train_path)]
        test = [r for _, r in iter_jsonl(d.test_path)]
        report = {}
        for name, rows in (("train", train), ("test", test)):
            bad = [i for i, r in enumerate(rows, 1) if "messages" not in r or "source" not in r]
            if bad:
                raise ValueError(f"data.{name}_path line {bad[0]}: every sample needs 'messages' and 'source'")
    else:
        raise ValueError(f"data.source must be 'movielens', 'synthetic' or 'files', got {d.source!r}")
    tasks.write_samples(os.path.join(workdir, "data", "train.jsonl"), train)
    tasks.write_samples(os.path.join(workdir, "data", "test.jsonl"), test)
    return train, test, report


def build_tokenizer(config, workdir: str, samples: list[dict]):
    """`data.tokenizer` or the checkpoint's (with a chat template), else a BPE fit on the training text."""
    from humanai_jax.data.tokenizer import given_or_trained

    return given_or_trained(config.data.tokenizer or config.model.hf_path, os.path.join(workdir, "tokenizer"),
                            lambda out: tokenize.train_chat_tokenizer(
                                [m["content"] for s in samples for m in s["messages"]], config.data.vocab_size, out),
                            chat=True)


def packed_rows(encoded, sources, config, n_rows: int, seed: int) -> tokenize.PackedBatch:
    """`n_rows` packed rows drawn in task-balanced order (weights ∝ count^mix_temperature)."""
    t = config.train
    counts = {}
    for s in sources:
        counts[s] = counts.get(s, 0) + 1
    weights = tokenize.mixture_weights(counts, t.mix_temperature)
    n = n_rows  # every row holds >= 1 sample; draw more (doubling) until the rows are filled
    while True:
        order = tokenize.mixed_order(sources, weights, n, np.random.default_rng(seed))
        pb = tokenize.pack([encoded[i] for i in order], config.data.seq_len + 1)
        if len(pb.sample_index) >= n_rows:
            break
        n *= 2
    keep = slice(0, n_rows)
    return tokenize.PackedBatch(pb.tokens[keep], pb.mask[keep], pb.segment_ids[keep], pb.positions[keep],
                                pb.sample_index[keep])


def encode_fitting(tokenizer, samples, row_len):
    encoded, kept, dropped = [], [], 0
    for s in samples:
        tok, mask = tokenize.tokenize_chat(tokenizer, s["messages"])
        if len(tok) > row_len:
            dropped += 1
            continue
        encoded.append((tok, mask))
        kept.append(s)
    return encoded, kept, dropped


def model_and_params(config, tokenizer, rules, params_sh_fn):
    from humanai_jax.train.model_block import model_config  # the model block every trainer uses

    model_cfg = model_config(config, tokenizer)
    if config.model.hf_path:
        from humanai_jax.backbone import load_pretrained

        _, params = load_pretrained(config.model.hf_path, dtype=model_cfg.params_dtype, mesh=rules.mesh, rules=rules)
    else:
        params = sft.host_init_params(model_cfg, config.seed)
    return model_cfg, jax.device_put(params, params_sh_fn(model_cfg))
