r"""HumanLLM SFT: chat samples -> assistant-masked, packed, task-mixed SFT -> evaluation.

  python -m experiments.run --config configs/humanllm_sft.py --workdir /tmp/humanllm

Default (`data.source = "movielens"`): the paper's item-selection task on MovieLens-100K (real users):
demographic persona + time-ordered history -> the next rated movie among 20 candidates, users split
into train/val/test (`methods/humanllm/movielens.py`). The model is scored with both protocols, the
paper's generation (hit iff the target title is in the reply) and likelihood ranking of the 20
candidate titles, next to the baselines on exactly the same candidates (random, popularity, genre,
ItemKNN, EASE: `methods/humanllm/baselines.py`). `results.json["item_selection"][method]` holds the test
accuracy with its exact 95% CI and n; `validation` the same on the val users (what the config's size,
steps and lr were chosen on; test is read once, at the end of the run). `seeds = (a, b, c)` runs one
sub-run per seed (WORKDIR/seed_<s>) and writes mean, std and per-seed values.

Other sources: `synthetic` (the old default, kept as a fast test fixture: a 10-line rule solves it, see
docs/humanllm.md) and `files` (task-builder JSONL). Model merging (`alpha * sft + (1 - alpha) * base`,
`merged/*`) runs only when training started from a pretrained checkpoint (`model.hf_path`): merging with
a random initialisation is meaningless.
"""

from __future__ import annotations

import functools
import json
import os

import jax
import numpy as np

from humanai_jax import experiment
from humanai_jax.agents import GenConfig
from humanai_jax.agents.jax_backend import JaxChatBackend
from humanai_jax.backbone.params import init_params, param_logical_axes
from humanai_jax.eval import stats
from humanai_jax.methods.humanllm import baselines, evaluation, movielens, sft, synthetic, tasks, tokenize
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
        raise ValueError(f"data.source must be 'movielens', 'synthetic' or 'files', got {d.source!r}")
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


# ============================================================================ evaluation
def movielens_samples(config, workdir: str):
    """MovieLens-100K item selection split by user: ({"train", "val", "test"}, report, data)."""
    d = config.data
    path = d.path if os.path.isabs(d.path) else os.path.join(os.path.dirname(os.path.dirname(__file__)), d.path)
    data = movielens.load_movielens(path)
    parts, report = movielens.build_samples(data, seed=d.seed, fractions=tuple(d.user_fractions),
                                            history_len=d.history_len, positions_per_user=d.positions_per_user,
                                            min_history=d.min_history)
    if config.eval.max_users:  # a quick look (tests): only the first held-out users of each split
        parts = dict(parts, val=parts["val"][:config.eval.max_users], test=parts["test"][:config.eval.max_users])
    for name, rows in parts.items():
        tasks.write_samples(os.path.join(workdir, "data", f"{name}.jsonl"), rows)
    return parts, report, data


def model_item_selection(params, model_cfg, tokenizer, config, samples, nll_fn) -> dict[str, list[bool]]:
    """Hits of both model protocols on `samples`: `model_generate` (the paper's: greedy reply, hit iff the
    target title is a substring of it) and `model_rank` (the candidate with the highest sum log-prob)."""
    backend = JaxChatBackend(params, model_cfg, tokenizer, max_batch=config.eval.batch)
    gens = evaluation.generate_answers(backend, samples, GenConfig(temperature=config.eval.temperature,
                                                                   max_tokens=config.eval.max_new_tokens,
                                                                   seed=config.seed))
    scores = evaluation.candidate_logprobs(params, model_cfg, tokenizer, samples, config.data.seq_len + 1,
                                           nll_fn=nll_fn, rows_per_batch=config.eval.rank_batch)
    ranked = baselines.choose(scores, config.seed)
    named = [any(evaluation.item_hit(c, g) for c in evaluation.candidate_titles(s)) for s, g in zip(samples, gens)]
    return {"model_generate": evaluation.generation_hits(samples, gens), "model_rank": baselines.hits(samples, ranked),
            "_generations": gens, "_names_a_candidate": named}


def evaluate_movielens(params, model_cfg, tokenizer, config, parts, data, nll_fn, workdir) -> dict:
    """Model (both protocols) and baselines on the val users, then the test users (read once)."""
    train_seqs = {s["meta"]["uid"]: data.sequences[s["meta"]["uid"]] for s in parts["train"]}
    fit_seqs = movielens.fit_sequences(parts, data)
    base = baselines.all_baselines(parts["val"], parts["test"], data, fit_seqs, train_seqs, config.seed)
    if config.eval.sasrec_steps:
        base["sasrec"] = baselines.sasrec_baseline(parts["val"], parts["test"], data.items, fit_seqs, workdir,
                                                   steps=config.eval.sasrec_steps, seed=config.seed,
                                                   max_len=config.data.history_len)
    out = {"item_selection": {}, "validation": {}, "baseline_selected": {}}
    for split, key in (("val", "validation"), ("test", "item_selection")):
        model = model_item_selection(params, model_cfg, tokenizer, config, parts[split], nll_fn)
        for name in ("model_generate", "model_rank"):
            out[key][name] = evaluation.accuracy_entry(model[name])
        out[key]["model_generate"]["names_a_candidate"] = float(np.mean(model["_names_a_candidate"]))
        for name, b in base.items():
            out[key][name] = evaluation.accuracy_entry(b["val_hits" if split == "val" else "test_hits"])
        if split == "test":
            experiment.write_json(os.path.join(workdir, "generations.json"), {"samples": [
                {"uid": s["uid"], "target": s["messages"][-1]["content"], "generation": g}
                for s, g in zip(parts["test"], model["_generations"])]})
    out["baseline_selected"] = {k: v["selected"] for k, v in base.items() if "selected" in v}
    out["chance"] = 1 / len(parts["test"][0]["meta"]["candidates"])
    return out


def aggregate_seeds(per_seed: dict[int, dict]) -> dict:
    """item_selection.<method>: mean accuracy, std (sample, over seeds), per_seed, and the exact 95% CI of the
    pooled hits/n; the same for `validation`."""
    first = next(iter(per_seed.values()))
    out = {"seeds": list(per_seed), "per_seed_wall_time_s": {s: r.get("wall_time_s") for s, r in per_seed.items()}}
    for key in ("item_selection", "validation"):
        out[key] = {}
        for method in first[key]:
            accs = [r[key][method]["accuracy"] for r in per_seed.values()]
            k = sum(r[key][method]["hits"] for r in per_seed.values())
            n = sum(r[key][method]["n"] for r in per_seed.values())
            ms = stats.mean_std(accs)
            lo, hi = stats.binomial_ci(k, n)
            out[key][method] = {"accuracy": ms.mean, "mean": ms.mean, "std": ms.std, "per_seed": accs,
                                "ci_low": lo, "ci_high": hi, "n": n, "hits": k}
    return out


# ============================================================================ run
def run(config, workdir: str) -> dict:
    """One run, or with `config.seeds` one sub-run per seed (WORKDIR/seed_<s>) and their aggregate."""
    if not config.get("seeds"):
        return run_one(config, workdir)
    per_seed = experiment.run_seeds(config, workdir, run_one, seed_keys=("seed", "data.seed"))
    last_seed, last = list(per_seed.items())[-1]
    if last.get("preempted"):
        return {"preempted": True, "seed": last_seed, "final_step": last["final_step"]}
    return aggregate_seeds(per_seed)


def run_one(config, workdir: str) -> dict:
    loop.maybe_initialize_distributed(config.train.distributed)
    mesh, rules = loop.mesh_and_rules(config)
    t, d = config.train, config.data
    with jax.set_mesh(mesh):
        # --- 1. samples and tokenizer (fit on the training text only) ---------------------------------
        ml_data, parts = None, None
        if d.source == "movielens":
            parts, split_report, ml_data = movielens_samples(config, workdir)
            train, test = parts["train"], parts["test"]
        else:
            train, test, split_report = load_samples(config, workdir)
        tokenizer = build_tokenizer(config, workdir, train)
        # samples longer than a row are dropped and counted (the reference drops > cutoff_len tokens)
        enc_train, train, long_train = _encode_fitting(tokenizer, train, d.seq_len + 1)
        if not train:
            raise ValueError(f"no training sample fits data.seq_len={d.seq_len} (+1) tokens; raise data.seq_len")
        if ml_data is None:
            enc_test, test, long_test = _encode_fitting(tokenizer, test, d.seq_len + 1)
        else:  # every held-out user is evaluated: one that does not fit is an error, not a silent drop
            enc_test, _, long_test = _encode_fitting(tokenizer, test, d.seq_len + 1)
            if long_test:
                raise ValueError(f"{long_test} test samples are longer than data.seq_len={d.seq_len}; raise it")
        src_train = [s["source"] for s in train]
        _print(f"Samples: {len(train)} train / {len(test)} test; tokenizer {len(tokenizer)} tokens; "
               f"mean length {np.mean([len(e[0]) for e in enc_train]):.0f} tokens "
               f"(max {max(len(e[0]) for e in enc_train)})")

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
        n_params = sum(x.size for x in jax.tree.leaves(base_params))
        _print(f"Model: {n_params:,} parameters, mesh {dict(mesh.shape)}")

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
            fingerprint={"seed": config.seed, "data": config.data.to_dict(), "model": model_cfg.identity()},
            tokens_per_step=t.batch_size * (d.seq_len + 1),
        )
        trainer = Trainer(workdir, TrainerConfig(steps=t.steps, seed=config.seed, log_every=t.log_every,
                                                   progress=t.progress, peak_flops=(t.peak_flops * jax.device_count()) or None,
                                                   slow_step_s=t.slow_step_s),
                          CheckpointConfig.from_config(config.ckpt))
        state, summary = trainer.fit(task)
        if summary["preempted"]:  # SIGTERM: the checkpoint is saved; evaluating a half-trained model would mislead
            _print(f"preempted at step {summary['final_step']}: rerun the same command to resume")
            return {"preempted": True, "final_step": summary["final_step"]}
        last = summary["last_metrics"]
        if last:
            _print(f"step {summary['final_step']}: loss {last['loss']:.4f}")

        # --- 4. evaluate (merge only from a pretrained start) ----------------------------------------
        results = {"n_train": len(train), "n_test": len(test), "n_params": int(n_params), "split": split_report,
                   "dropped_too_long": {"train": long_train, "test": long_test}, "seeds": [config.seed],
                   "final_train_loss": last.get("loss") if summary["final_step"] > summary["start_step"] else None}
        models = {"sft": state["params"]}
        if config.merge.enabled and config.model.hf_path:
            models["merged"] = jax.jit(functools.partial(sft.merge_params, alpha=config.merge.alpha))(
                state["params"], base_params)
        src_test = [s["source"] for s in test]
        for name, params in models.items():
            held = sft.eval_loss(params, enc_test, src_test, model_cfg, d.seq_len + 1, nll_fn=nll_fn)
            results[f"{name}/heldout_loss"] = held
            if ml_data is not None:
                ev = evaluate_movielens(params, model_cfg, tokenizer, config, parts, ml_data, nll_fn, workdir)
                if name == "sft":
                    results.update(ev)
                else:
                    results[f"{name}/item_selection"] = ev["item_selection"]
                _print(f"{name}: " + "; ".join(
                    f"{m} {v['accuracy']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
                    for m, v in ev["item_selection"].items()) + f" (test n={len(test)}); validation: " + "; ".join(
                    f"{m} {v['accuracy']:.3f}" for m, v in ev["validation"].items()))
                continue
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
            if d.source == "synthetic":  # the rule that solves the synthetic data, reported beside its number
                rule = [synthetic.rule_choice(s["messages"][-2]["content"]) for s in sel]
                results["synthetic_rule/item_selection"] = evaluation.accuracy_entry(
                    [r == s["messages"][-1]["content"] for r, s in zip(rule, sel)])
            if name == "sft":
                experiment.write_json(os.path.join(workdir, "generations.json"),
                                      {"samples": [{"target": s["messages"][-1]["content"], "generation": g}
                                                   for s, g in zip(sel[:50], gens[:50])]})
            _print(f"{name}: item selection {acc['accuracy']:.3f} (95% CI {acc['ci95'][0]:.3f}-{acc['ci95'][1]:.3f}, "
                   f"chance {acc['chance']:.2f}, n={acc['n']}); held-out loss "
                   f"{json.dumps({k: round(v, 3) for k, v in held.items()})}")
        if ml_data is None:
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
