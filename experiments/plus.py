"""PLUS on Attributes (default; held-out attribute combinations) or Pets / Pets-OOD: data -> tokenizer ->
models -> format-only SFT warm-up -> co-adaptation -> evaluation.

Reads top to bottom; the pieces it builds on (task, tokenizer, models, warm-up, steps, batch order) are in
`humanai_jax/methods/plus/setup.py`, the curves in `plots.py`. `run(config, workdir)` writes metrics.jsonl
(per rollout batch, eval curves),
checkpoints/ (Orbax: actor, critic, RM, their optimizer states, the frozen reference, the RNG),
tokenizer.json, curves.png, and returns the headline metrics for results.json. With `config.table`
it runs every method over the seeds instead (`run_table`) and returns the aggregated table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import ml_collections
from absl import logging

from humanai_jax import experiment
from humanai_jax.checkpoint import abstract_like
from humanai_jax.eval import stats
from humanai_jax.methods.plus import loaders, loop, plots, setup as S
from humanai_jax.rl import ppo
from humanai_jax.train import runtime as train_loop
from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig, TrainTask

METHODS = tuple(loop.CONDITIONING)
# Reported numbers (docs/plus.md §8, unverified third-party summaries): RM accuracy % on Pets / Pets-OOD.
PAPER = {
    "pets": {"btl": 44.15, "in_context": 100.0, "untrained": 96.20, "plus": 99.80, "oracle": 100.0},
    "pets_ood": {"btl": 49.5, "in_context": 72.50, "untrained": 85.83, "plus": 93.67},
}


# ----------------------------------------------------------------------------- run


def run(config, workdir: str) -> dict:
    if config.table:
        return run_table(config, workdir)
    return run_one(config, workdir)[0]


def run_one(config, workdir: str):
    """One method, one seed. Returns (results, `Trained`: what the table's transfer evaluation reuses)."""
    method = config.method
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; valid: {METHODS}")
    os.makedirs(workdir, exist_ok=True)
    log = experiment.MetricsLog(workdir)
    task = S.build_data(config)
    chat = S.build_chat(config, task)  # our word-level codec, or the checkpoint's tokenizer and chat template
    chat.save(workdir)
    rm_len = config.shapes.context_rm_len if method == "in_context" else config.shapes.rm_len
    shapes = loop.Shapes(config.shapes.prompt_len, config.shapes.completion_len, rm_len)
    codec = loop.Codec(chat, shapes)
    S.check_lengths(codec, task, method)

    max_len = max(shapes.seq_len, shapes.rm_len)
    actor_cfg, actor_weights = S.build_model(config.model, chat, max_len)
    rm_cfg, rm_weights = S.build_model(config.rm_model, chat, max_len)
    pretrained = {"actor": actor_weights, "rm": rm_weights}
    hyper = ppo.PPOConfig(
        kl_coef=config.ppo.kl_coef, kl_estimator=config.ppo.kl_estimator, gamma=config.ppo.gamma, lam=config.ppo.lam,
        clip_eps=config.ppo.clip_eps, value_clip_eps=config.ppo.value_clip_eps,
        reward_clip=(config.ppo.reward_clip_low, config.ppo.reward_clip_high),
        policy_reduction=config.ppo.policy_reduction, value_reduction=config.ppo.value_reduction,
        whiten_advantages=config.ppo.whiten_advantages, kl_controller=config.ppo.kl_controller,
        kl_target=config.ppo.kl_target, kl_horizon=config.ppo.kl_horizon, epochs=config.ppo.epochs,
    )
    mesh, rules = train_loop.mesh_and_rules(config)
    with jax.set_mesh(mesh):
        return _run(config, workdir, method, log, task, codec, actor_cfg, rm_cfg, hyper, rules, pretrained)


@dataclasses.dataclass
class Trained:
    """A finished run's state and the pieces needed to evaluate it again (transfer)."""

    state: dict
    task: S.Task
    common: dict
    eval_rng: jax.Array


def _run(config, workdir, method, log, task: S.Task, codec, actor_cfg, rm_cfg, hyper, rules, pretrained):
    splits = task.splits
    txs, steps = S.compiled_steps(actor_cfg, rm_cfg, hyper, config.optim.to_json(), S.schedule_lengths(config), rules)
    uses_summarizer = loop.CONDITIONING[method] == "summarizer"
    common = dict(steps=steps, codec=codec, actor_cfg=actor_cfg, oracle=task.oracle, method=method, rules=rules,
                  controversial=task.controversial, summary_score=task.summary_score)
    eval_rng = jax.random.PRNGKey(config.seed + 12345)
    # Rollout batches 1..W are the RM warm-up (spec fallback "warm-start the RM on untrained-summarizer
    # outputs"): the RM pass alone; for `plus` on the frozen warmed-up summarizer's summaries (no PPO).
    # Batches W+1..W+R are co-adaptation. Every method runs all W+R RM passes, so all methods get the same
    # number of RM updates, (W + R) · rollout_batch / rm_batch.
    warmup, total = config.rm_warmup_steps, config.rm_warmup_steps + config.ppo.rollouts

    # Diagnosis of PPO only (reads user-type labels; docs/plus.md "Why PPO gets no signal"): the exact
    # fraction of attributes a summary states right replaces the RM's reward in the PPO update.
    diagnostic_reward = None
    if config.ppo.reward == "summary_score":
        if method != "plus" or task.summary_score is None:
            raise ValueError("ppo.reward='summary_score' is a PPO diagnosis for method 'plus' on a task with "
                             f"summary scores (attributes); got method {method!r}, data {config.data.name!r}")
        diagnostic_reward = task.summary_score
    elif config.ppo.reward != "rm":
        raise ValueError(f"ppo.reward must be 'rm' (PLUS) or 'summary_score' (diagnosis), got {config.ppo.reward!r}")

    def init(rng):
        state = S.init_state(config, actor_cfg, rm_cfg, txs, rng, rules, pretrained)
        if uses_summarizer and config.sft.steps:
            state = S.warm_up_summarizer(state, task, config, steps, codec, txs, log)
        return state

    def rollout_step(state, batch):
        """One rollout batch: a Python step calling PLUS's jitted pieces (the Trainer's `python_step`)."""
        it = batch["iteration"]
        state, metrics = loop.plus_iteration(state, batch["examples"], train_batch=config.ppo.train_batch,
                                             rm_batch=config.ppo.rm_batch, rm_epochs=config.ppo.rm_epochs,
                                             diagnostic_reward=diagnostic_reward,
                                             temperature=config.ppo.temperature,
                                             update_actor=it >= warmup, steps=steps, codec=codec, actor_cfg=actor_cfg,
                                             oracle=task.oracle, method=method, rules=rules)
        metrics["phase_rm_warmup"] = float(it < warmup)
        return state, metrics

    def batch_at(it):
        return {"iteration": it, "examples": S.batch_examples(splits["train"], it, config.ppo.rollout_batch, config.seed)}

    curve = {name: splits[name][: config.eval.curve_rows] for name in task.curve}

    def evaluate_curves(step, state):
        """Held-out curves (validation splits only: never the headline), every eval.every batches."""
        if step % config.eval.every and step != total:
            return None
        metrics = {}
        for name, exs in curve.items():
            ev = loop.evaluate(state, exs, rng=eval_rng, num_samples=1, batch_size=config.eval.batch, **common)
            metrics[f"eval_{name}_accuracy"] = ev["accuracy"]
            for key in ("accuracy_controversial", "summary_exact_match", "summary_score"):
                if key in ev:
                    metrics[f"eval_{name}_{key.replace('summary_exact_match', 'summary_match')}"] = ev[key]
            if task.wrong_type is not None and uses_summarizer:
                gap = loop.reward_gap(state["rm"]["params"], exs, steps=steps, codec=codec, oracle=task.oracle,
                                      wrong=task.wrong_type, batch_size=config.eval.batch)
                metrics.update({f"eval_{name}_{k}": v for k, v in gap.items()})
        return metrics

    # The abstract state (restore target) from one cheap initialisation of the small from-scratch models.
    abstract = abstract_like(S.init_state(config, actor_cfg, rm_cfg, txs, jax.random.PRNGKey(config.seed), rules,
                                          pretrained))
    train_task = TrainTask(
        init=init, abstract_state=abstract, state_shardings=jax.tree.map(lambda a: a.sharding, abstract),
        step=rollout_step, batch_at=batch_at, abstract_batch={}, python_step=True,
        fingerprint={"seed": config.seed, "method": method, "data": config.data.to_dict(),
                     "model": config.model.to_dict(), "rm_model": config.rm_model.to_dict(),
                     "ppo": config.ppo.to_dict(), "sft": config.sft.to_dict(), "rm_warmup_steps": warmup},
    )
    stop = min(config.stop_after, total) if config.stop_after else total
    trainer = Trainer(workdir, TrainerConfig(steps=stop, seed=config.seed, log_every=1, progress=False,
                                                    slow_step_s=config.slow_step_s),
                      CheckpointConfig(every=config.checkpoint_every, keep=2))
    trainer.add_hook(evaluate_curves, every=1, at_end=False)
    state, summary = trainer.fit(train_task)
    if summary["final_step"] < total:
        return {"method": method, "stopped_at": summary["final_step"], "complete": False}, None

    results = {"method": method, "seed": config.seed, "data": config.data.name, "rollouts": config.ppo.rollouts,
               "ppo_reward": config.ppo.reward,
               "rm_warmup_steps": warmup, "sft_label_noise": config.sft.label_noise,
               "rm_updates": S.rm_updates(config), "complete": True}
    for population, name in task.populations.items():
        ev = loop.evaluate(state, splits[name], rng=eval_rng, num_samples=config.eval.samples,
                           batch_size=config.eval.batch, **common)
        for key, value in ev.items():
            results[f"{population}_{key}"] = value
    results.update(task.rules)
    if task.wrong_type is not None and uses_summarizer:  # diagnosis: does the RM's reward depend on the summary?
        gap = loop.reward_gap(state["rm"]["params"], splits[task.populations["unseen"]], steps=steps, codec=codec,
                              oracle=task.oracle, wrong=task.wrong_type, batch_size=config.eval.batch)
        results.update({f"unseen_{k}": v for k, v in gap.items()})
    if config.data.name == "pets":
        groups = loaders.seen_unseen(splits["test_seen"] + splits["test_ood"])
        results["num_seen_pairs"], results["num_unseen_pairs"] = len(groups["seen"]), len(groups["unseen"])
        results["paper_pets_accuracy"] = PAPER["pets"].get(method)
        results["paper_pets_ood_accuracy"] = PAPER["pets_ood"].get(method)
    if uses_summarizer:
        shown = splits[task.populations["unseen"]][:4]
        _, _, sample = loop.sample_summaries(state["actor"]["params"], actor_cfg, codec, shown, eval_rng,
                                             temperature=config.ppo.temperature, rules=rules)
        results["example_summaries"] = [{"user_type": ex.user_type, "summary": s} for ex, s in zip(shown, sample)]
    plots.plot_curves(workdir)
    return results, Trained(state, task, common, eval_rng)


# ----------------------------------------------------------------------------- the table (all methods x seeds)


TABLE_METHODS = ("btl", "in_context", "untrained", "oracle", "plus")


def transfer_accuracy(oracle_run: Trained, summarizer_run: Trained, config) -> dict:
    """The paper's interpretability check: the RM trained only on oracle summaries, scored zero-shot with
    another run's sampled summaries (same seed, data and tokenizer) in place of the oracle's."""
    state = dict(oracle_run.state, actor=summarizer_run.state["actor"])
    common = dict(oracle_run.common, method="plus")
    out = {}
    for population, name in oracle_run.task.populations.items():
        ev = loop.evaluate(state, oracle_run.task.splits[name], rng=oracle_run.eval_rng,
                           num_samples=config.eval.samples, batch_size=config.eval.batch, **common)
        out[f"{population}_accuracy"] = ev["accuracy"]
    return out


def run_table(config, workdir: str) -> dict:
    """Every method of `config.table_methods` over `config.table_seeds` (sub-runs in `<workdir>/<method>_s<seed>`,
    each resumable), the transfer evaluation, and the summary: `methods.<name>.<metric>` as
    `{mean, std, per_seed}`, `rule_accuracy`, `transfer`, per-method wall time."""
    per_run: dict[str, list[dict]] = {m: [] for m in config.table_methods}
    transfer: dict[str, list[dict]] = {"plus": [], "untrained": []}
    rules: list[dict] = []
    for seed in config.table_seeds:
        trained = {}
        for method in config.table_methods:
            sub = ml_collections.ConfigDict(config.to_dict())
            sub.table, sub.method, sub.seed = False, method, int(seed)
            t0 = time.time()
            results, trained[method] = run_one(sub, os.path.join(workdir, f"{method}_s{seed}"))
            results["wall_s"] = time.time() - t0
            with open(os.path.join(workdir, f"{method}_s{seed}", "results.json"), "w") as f:
                json.dump(results, f, indent=1)
            per_run[method].append(results)
            logging.info("table: %s seed %d: seen %.3f unseen %.3f (%.0f s)", method, seed,
                         results["seen_accuracy"], results["unseen_accuracy"], results["wall_s"])
        rules.append(trained[config.table_methods[0]].task.rules)
        if "oracle" in trained:
            for name in transfer:
                if name in trained:
                    transfer[name].append(transfer_accuracy(trained["oracle"], trained[name], config))
    summary = lambda values: dict(stats.mean_std(values).to_dict(), per_seed=list(values))  # noqa: E731
    keys = ("seen_accuracy", "unseen_accuracy", "seen_mean_log_sigmoid", "unseen_mean_log_sigmoid",
            "unseen_reward_gap", "unseen_true_summary_accuracy",
            "seen_summary_score", "unseen_summary_score", "seen_summary_exact_match", "unseen_summary_exact_match",
            "wall_s")
    methods = {m: {k: summary([r[k] for r in runs]) for k in keys if all(k in r for r in runs)}
               for m, runs in per_run.items()}
    out = {"data": config.data.name, "seeds": list(config.table_seeds), "methods": methods,
           "rule_accuracy": {k: summary([r[k] for r in rules]) for k in rules[0]},
           "transfer": {name: {k: summary([r[k] for r in runs]) for k in runs[0]} for name, runs in transfer.items() if runs},
           "rm_updates": per_run[config.table_methods[0]][0]["rm_updates"], "sft_label_noise": config.sft.label_noise,
           "load_average": os.getloadavg()}
    if {"plus", "untrained", "btl"} <= set(methods):
        p, u, b = (methods[m]["unseen_accuracy"] for m in ("plus", "untrained", "btl"))
        out["acceptance"] = {
            "plus_minus_untrained_unseen": p["mean"] - u["mean"], "plus_minus_btl_unseen": p["mean"] - b["mean"],
            "met": bool(p["mean"] - u["mean"] >= 0.05 and p["mean"] - p["std"] > u["mean"] + u["std"]
                        and p["mean"] - b["mean"] >= 0.10 and p["mean"] - p["std"] > b["mean"] + b["std"]),
        }
    plots.plot_table_curves(workdir, config)
    return out
