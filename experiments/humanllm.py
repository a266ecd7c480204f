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

`data.tasks` adds, in the same multi-task SFT run (the reference mixes all its task sources), MovieLens rating
prediction on the same user split (`results.json["rating"]`: RMSE / MAE with bootstrap CIs, exact match with
its exact CI, next to global / user / item mean and a regularised bias model; `methods/humanllm/rating.py`)
and continuation of real Blogger posts (`results.json["writing"]`: held-out per-token NLL next to unigram /
bigram LMs and the model without context; `methods/humanllm/writing.py`, `multitask.py`).

Other sources: `synthetic` (the old default, kept as a fast test fixture: a 10-line rule solves it, see
docs/humanllm.md) and `files` (task-builder JSONL). Model merging (`alpha * sft + (1 - alpha) * base`,
`merged/*`) runs only when training started from a pretrained checkpoint (`model.hf_path`): merging with
a random initialisation is meaningless.
"""

from __future__ import annotations

import functools
import json
import os
import time

import jax
import numpy as np

from humanai_jax import experiment
from humanai_jax.agents import GenConfig
from humanai_jax.agents.jax_backend import JaxChatBackend
from humanai_jax.backbone.params import init_params, param_logical_axes
from humanai_jax.methods.humanllm import (
    evaluation,
    item_selection as IS,
    multitask as MT,
    sft,
    sft_data as D,
    synthetic,
    tokenize,
)
from humanai_jax.train import optim, runtime as loop, state as state_lib
from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig, TrainTask


def _print(*args):
    if jax.process_index() == 0:
        print(*args, flush=True)



# ============================================================================ run
def run(config, workdir: str) -> dict:
    """One run, or with `config.seeds` one sub-run per seed (WORKDIR/seed_<s>) and their aggregate."""
    if not config.get("seeds"):
        return run_one(config, workdir)
    per_seed = experiment.run_seeds(config, workdir, run_one, seed_keys=("seed", "data.seed"))
    last_seed, last = list(per_seed.items())[-1]
    if last.get("preempted"):
        return {"preempted": True, "seed": last_seed, "final_step": last["final_step"]}
    return {**IS.aggregate_seeds(per_seed), **MT.aggregate_seeds(per_seed)}


def run_one(config, workdir: str) -> dict:
    loop.maybe_initialize_distributed(config.train.distributed)
    mesh, rules = loop.mesh_and_rules(config)
    t, d = config.train, config.data
    with jax.set_mesh(mesh):
        # --- 1. samples and tokenizer (fit on the training text only) ---------------------------------
        ml_data, parts, extra = None, None, {}
        if d.source == "movielens":
            parts, split_report, ml_data = IS.movielens_samples(config, workdir)
            unknown = set(d.tasks) - {"item_selection", "rating", "writing"}
            if unknown or "item_selection" not in d.tasks:
                raise ValueError(f"data.tasks must hold 'item_selection' and any of 'rating', 'writing'; got {d.tasks}")
            if "rating" in d.tasks:  # one multi-task SFT run, as the reference mixes all its task sources
                extra["rating"] = MT.rating_samples(config, ml_data, workdir)
            if "writing" in d.tasks:
                extra["writing"], split_report["writing"] = MT.writing_samples(config, workdir)
            train = [*parts["train"], *(s for p in extra.values() for s in p["train"])]
            test = [*parts["test"], *(s for p in extra.values() for s in p["test"])]
            split_report["train_samples_per_task"] = {"item_selection": len(parts["train"]),
                                                      **{k: len(p["train"]) for k, p in extra.items()}}
        else:
            train, test, split_report = D.load_samples(config, workdir)
        tokenizer = D.build_tokenizer(config, workdir, train)
        # samples longer than a row are dropped and counted (the reference drops > cutoff_len tokens)
        enc_train, train, long_train = D.encode_fitting(tokenizer, train, d.seq_len + 1)
        if not train:
            raise ValueError(f"no training sample fits data.seq_len={d.seq_len} (+1) tokens; raise data.seq_len")
        if ml_data is None:
            enc_test, test, long_test = D.encode_fitting(tokenizer, test, d.seq_len + 1)
        else:  # every held-out user is evaluated: one that does not fit is an error, not a silent drop
            enc_test, _, long_test = D.encode_fitting(tokenizer, test, d.seq_len + 1)
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

        model_cfg, base_params = D.model_and_params(config, tokenizer, rules, params_shardings)
        abstract_state, state_sh = state_lib.train_state_shardings(
            lambda r: init_params(model_cfg, r), param_logical_axes(model_cfg), tx, rules)
        b_sh = loop.batch_sharding(rules)
        nll_fn = jax.jit(tokenize.sft_token_nll, static_argnums=2)
        n_params = sum(x.size for x in jax.tree.leaves(base_params))
        _print(f"Model: {n_params:,} parameters, mesh {dict(mesh.shape)}")

        # --- 3. SFT on the Trainer: the rows of step s are a pure function of (seed, s) ----------------
        rows = D.packed_rows(enc_train, src_train, config, t.steps * t.batch_size, d.seed).as_dict()
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
                t0 = time.perf_counter()
                ev = IS.evaluate_movielens(params, model_cfg, tokenizer, config, parts, ml_data, nll_fn, workdir)
                if name == "sft":
                    results.update(ev)
                    timing = {"item_selection": time.perf_counter() - t0}
                    if "rating" in extra:
                        t0 = time.perf_counter()
                        results.update(MT.evaluate_rating(params, model_cfg, tokenizer, config, extra["rating"],
                                                          ml_data, nll_fn, workdir))
                        timing["rating"] = time.perf_counter() - t0
                        _print("rating (test): " + "; ".join(f"{m} RMSE {v['rmse']:.3f} MAE {v['mae']:.3f} acc "
                                                              f"{v['accuracy']:.3f}" for m, v in results["rating"].items()))
                    if "writing" in extra:
                        t0 = time.perf_counter()
                        results.update(MT.evaluate_writing(params, model_cfg, tokenizer, config, extra["writing"],
                                                           nll_fn))
                        timing["writing"] = time.perf_counter() - t0
                        _print("writing (test, NLL/token): " + "; ".join(
                            f"{m} {v['nll_per_token']:.3f}" for m, v in results["writing"].items()))
                    results["eval_time_s"] = timing  # wall seconds per task's evaluation (baselines included)
                else:
                    results[f"{name}/item_selection"] = ev["item_selection"]
                _print(f"{name}: " + "; ".join(
                    f"{m} {v['accuracy']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
                    for m, v in ev["item_selection"].items()) + f" (test n={len(parts['test'])}); validation: " + "; ".join(
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
