r"""HumanLLM SFT: chat samples -> assistant-masked, packed, task-mixed SFT -> merge -> evaluation.

  python -m experiments.run --config configs/humanllm_sft.py --workdir /tmp/humanllm

Reads top to bottom: samples (synthetic users with latent preferences, or the JSONL files the task
builders wrote), tokenizer (trained locally, or the checkpoint's), tokenization with the chat template
and the assistant-only loss mask, task-balanced packing, model (from scratch or a HF checkpoint,
sharded by the config's mesh), the SFT loop (metrics, held-out loss per task, Orbax checkpoints),
model merging (`alpha * sft + (1 - alpha) * base`), and evaluation through `JaxChatBackend`
(item-selection accuracy vs. 5% chance; held-out loss per task; optional LLM judge over HTTP).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import numpy as np

from humanai_jax import experiment
from humanai_jax.agents import GenConfig
from humanai_jax.agents.jax_backend import JaxChatBackend
from humanai_jax.backbone.params import init_params, param_logical_axes
from humanai_jax.methods.humanllm import evaluation, sft, synthetic, tasks, tokenize
from humanai_jax.methods.humanllm.readers import iter_jsonl
from humanai_jax.train import optim, runtime as loop, state as state_lib
from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig, TrainTask


def _print(*args):
    if jax.process_index() == 0:
        print(*args, flush=True)


# ============================================================================ data
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
        raise ValueError(f"data.source must be 'synthetic' or 'files', got {d.source!r}")
    tasks.write_samples(os.path.join(workdir, "data", "train.jsonl"), train)
    tasks.write_samples(os.path.join(workdir, "data", "test.jsonl"), test)
    return train, test, report


def build_tokenizer(config, workdir: str, samples: list[dict]):
    from humanai_jax.data.tokenizer import load_tokenizer

    path = config.data.tokenizer or config.model.hf_path
    if path:
        tok = load_tokenizer(path)
        if not tok.chat_template:
            raise ValueError(f"tokenizer at {path} has no chat_template")
        return tok
    tok_dir = os.path.join(workdir, "tokenizer")
    if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        return load_tokenizer(tok_dir)
    texts = [m["content"] for s in samples for m in s["messages"]]
    return tokenize.train_chat_tokenizer(texts, config.data.vocab_size, tok_dir)


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


def _encode_fitting(tokenizer, samples, row_len):
    encoded, kept, dropped = [], [], 0
    for s in samples:
        tok, mask = tokenize.tokenize_chat(tokenizer, s["messages"])
        if len(tok) > row_len:
            dropped += 1
            continue
        encoded.append((tok, mask))
        kept.append(s)
    return encoded, kept, dropped


# ============================================================================ model
def model_and_params(config, tokenizer, rules, params_sh_fn):
    from humanai_jax.train.model_block import model_config  # the model block every trainer uses

    model_cfg = model_config(config, tokenizer)
    if config.model.hf_path:
        from humanai_jax.backbone import load_pretrained

        _, params = load_pretrained(config.model.hf_path, dtype=model_cfg.params_dtype, mesh=rules.mesh, rules=rules)
    else:
        params = sft.host_init_params(model_cfg, config.seed)
    return model_cfg, jax.device_put(params, params_sh_fn(model_cfg))


# ============================================================================ run
def run(config, workdir: str) -> dict:
    loop.maybe_initialize_distributed(config.train.distributed)
    mesh, rules = loop.mesh_and_rules(config)
    t, d = config.train, config.data
    with jax.set_mesh(mesh):
        # --- 1. samples and tokenizer ----------------------------------------------------------------
        train, test, split_report = load_samples(config, workdir)
        tokenizer = build_tokenizer(config, workdir, train + test)
        # samples longer than a row are dropped and counted (the reference drops > cutoff_len tokens)
        enc_train, train, long_train = _encode_fitting(tokenizer, train, d.seq_len + 1)
        enc_test, test, long_test = _encode_fitting(tokenizer, test, d.seq_len + 1)
        src_train = [s["source"] for s in train]
        _print(f"Samples: {len(train)} train / {len(test)} test; tokenizer {len(tokenizer)} tokens; "
               f"mean length {np.mean([len(e[0]) for e in enc_train]):.0f} tokens")

        # --- 2. model, optimizer, train state ---------------------------------------------------------
        tx, schedule = optim.make_optimizer(config.optim, t.steps)

        def params_shardings(model_cfg):
            abstract = jax.eval_shape(functools.partial(init_params, model_cfg), jax.random.PRNGKey(0))
            from humanai_jax.sharding import tree_shardings

            return tree_shardings(rules, param_logical_axes(model_cfg), abstract)

        model_cfg, base_params = model_and_params(config, tokenizer, rules, params_shardings)
        abstract_state, state_sh = state_lib.train_state_shardings(
            lambda r: init_params(model_cfg, r), param_logical_axes(model_cfg), tx, rules)
        b_sh = loop.batch_sharding(rules)
        nll_fn = jax.jit(tokenize.sft_token_nll, static_argnums=2)
        _print(f"Model: {sum(x.size for x in jax.tree.leaves(base_params)):,} parameters, mesh {dict(mesh.shape)}")

        # --- 3. SFT on the Trainer: the rows of step s are a pure function of (seed, s) ----------------
        rows = packed_rows(enc_train, src_train, config, t.steps * t.batch_size, d.seed).as_dict()
        per_host = t.batch_size // jax.process_count()

        def batch_at(step: int) -> dict[str, np.ndarray]:
            first = step * t.batch_size + jax.process_index() * per_host
            return {k: v[first:first + per_host] for k, v in rows.items()}

        def train_step(state, batch):
            lr = schedule(state["step"])
            state, metrics = sft.sft_train_step(state, batch, model_cfg=model_cfg, tx=tx, accum=t.grad_accum,
                                                rules=rules, loss_chunk=t.loss_chunk)
            return state, dict(metrics, lr=lr)

        task = TrainTask(
            init=lambda rng: jax.jit(lambda p, r: state_lib.new_train_state(p, tx, r), out_shardings=state_sh)(
                base_params, rng),
            abstract_state=abstract_state, state_shardings=state_sh, step=train_step, batch_at=batch_at,
            abstract_batch={k: jax.ShapeDtypeStruct((t.batch_size, *v.shape[1:]), v.dtype, sharding=b_sh)
                            for k, v in rows.items()},
            fingerprint={"seed": config.seed, "data": config.data.to_dict(), "model": dataclasses.asdict(model_cfg)},
            tokens_per_step=t.batch_size * (d.seq_len + 1),
        )
        c = config.ckpt
        trainer = Trainer(workdir, TrainerConfig(steps=t.steps, seed=config.seed, log_every=t.log_every, progress=False,
                                                   slow_step_s=t.slow_step_s),
                          CheckpointConfig(dir=c.dir, every=c.every, keep=c.keep, async_save=False, resume=c.resume))
        state, summary = trainer.fit(task)
        last = summary["last_metrics"]
        if last:
            _print(f"step {summary['final_step']}: loss {last['loss']:.4f}")

        # --- 4. merge and evaluate ---------------------------------------------------------------------
        results = {"n_train": len(train), "n_test": len(test), "split": split_report,
                   "dropped_too_long": {"train": long_train, "test": long_test},
                   "final_train_loss": last.get("loss") if summary["final_step"] > summary["start_step"] else None}
        models = {"sft": state["params"]}
        if config.merge.enabled:
            models["merged"] = jax.jit(functools.partial(sft.merge_params, alpha=config.merge.alpha))(
                state["params"], base_params)
        src_test = [s["source"] for s in test]
        for name, params in models.items():
            held = sft.eval_loss(params, enc_test, src_test, model_cfg, d.seq_len + 1, nll_fn=nll_fn)
            results[f"{name}/heldout_loss"] = held
            backend = JaxChatBackend(params, model_cfg, tokenizer, max_batch=config.eval.batch)
            sel = [s for s in evaluation.first_per_source(test, config.eval.n_per_source)
                   if s["source"].endswith(".item_selection")]
            gens = evaluation.generate_answers(backend, sel, GenConfig(temperature=config.eval.temperature,
                                                                       max_tokens=config.eval.max_new_tokens,
                                                                       seed=config.seed))
            acc = evaluation.item_selection_accuracy(sel, gens)
            results[f"{name}/item_selection_accuracy"] = acc["accuracy"]
            results[f"{name}/item_selection_n"] = acc["n"]
            results[f"{name}/item_selection"] = acc
            if d.source == "synthetic":  # synthetic titles are "<genre>, <object>": did it find the latent genre?
                acc["genre_accuracy"] = float(np.mean([g.split()[:1] == s["messages"][-1]["content"].split()[:1]
                                                       for s, g in zip(sel, gens)])) if sel else 0.0
            if name == "sft":
                experiment.write_json(os.path.join(workdir, "generations.json"),
                                      {"samples": [{"target": s["messages"][-1]["content"], "generation": g}
                                                   for s, g in zip(sel[:50], gens[:50])]})
            _print(f"{name}: item selection {acc['accuracy']:.3f} (95% CI {acc['ci95'][0]:.3f}-{acc['ci95'][1]:.3f}, "
                   f"chance {acc['chance']:.2f}, n={acc['n']}); by context {json.dumps(acc['by_context'])}; "
                   f"held-out loss {json.dumps({k: round(v, 3) for k, v in held.items()})}")
        results["item_selection_chance"] = evaluation.CHANCE_ITEM_SELECTION
        if config.eval.judge_base_url:
            from humanai_jax.agents import OpenAICompatBackend

            judge = OpenAICompatBackend(config.eval.judge_base_url, config.eval.judge_model)
            free = [s for s in evaluation.first_per_source(test, config.eval.n_per_source)
                    if not s["source"].endswith(".item_selection")]
            backend = JaxChatBackend(state["params"], model_cfg, tokenizer, max_batch=config.eval.batch)
            gens = evaluation.generate_answers(backend, free, GenConfig(max_tokens=config.eval.free_text_max_tokens))
            results["sft/free_text_judge"] = evaluation.judge_free_text(judge, free, gens)
        if config.export_hf:
            from humanai_jax.backbone.hf import save_pretrained

            for name, params in models.items():
                out = os.path.join(workdir, f"hf_{name}")
                save_pretrained(out, model_cfg, params)  # every process: it gathers per tensor
                if jax.process_index() == 0:
                    tokenizer.save_pretrained(out)
    return results
