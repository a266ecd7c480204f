"""PLUS on Attributes (default; held-out attribute combinations) or Pets / Pets-OOD: data -> tokenizer ->
models -> format-only SFT warm-up -> co-adaptation -> evaluation.

Reads top to bottom. `run(config, workdir)` writes metrics.jsonl (per rollout batch, eval curves),
checkpoints/ (Orbax: actor, critic, RM, their optimizer states, the frozen reference, the RNG),
tokenizer.json, curves.png, and returns the headline metrics for results.json. With `config.table`
it runs every method over the seeds instead (`run_table`) and returns the aggregated table.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from humanai_jax import experiment, sharding as shd
from humanai_jax.backbone import ModelConfig, init_params, param_logical_axes
from humanai_jax.checkpoint import abstract_like
from humanai_jax.eval import stats
from humanai_jax.methods.plus import attributes as A, data as D, loaders, loop, pets, text as T
from humanai_jax.rl import kl_control, ppo, reward_model as RM
from humanai_jax.train import runtime as train_loop
from humanai_jax.train.optim import make_optimizer
from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig, TrainTask

METHODS = tuple(loop.CONDITIONING)
# Reported numbers (docs/plus.md §8, unverified third-party summaries): RM accuracy % on Pets / Pets-OOD.
PAPER = {
    "pets": {"btl": 44.15, "in_context": 100.0, "untrained": 96.20, "plus": 99.80, "oracle": 100.0},
    "pets_ood": {"btl": 49.5, "in_context": 72.50, "untrained": 85.83, "plus": 93.67},
}


# ----------------------------------------------------------------------------- data and tokenizer


@dataclasses.dataclass
class Task:
    """One dataset as the loop needs it. `populations` maps a results prefix (seen / unseen) to a split;
    `curve` names the splits scored during training (validation, never used for the headline)."""

    splits: dict
    populations: dict
    curve: tuple
    oracle: Callable[[str], str]  # user type -> true summary (oracle baseline and analysis only)
    random_summary: Callable[[np.random.RandomState], str]  # format-only warm-up target (no user content)
    texts: list
    controversial: Callable | None = None
    summary_score: Callable[[str, str], float] | None = None
    wrong_type: Callable[[str], str] | None = None  # user type -> the type whose summary is wrong everywhere
    rules: dict = dataclasses.field(default_factory=dict)


def build_data(config) -> Task:
    if config.data.name == "attributes":
        return attributes_task(config)
    if config.data.name != "pets":
        raise ValueError(f"Unsupported data.name {config.data.name!r}: expected 'attributes' or 'pets' "
                         "(UF-P-2/4 and PRISM load via humanai_jax.methods.plus.loaders)")
    path = config.data.sentences_path
    sentences = pets.load_vpl_sentences(path) if path else pets.builtin_sentences()
    kw = dict(seed=config.seed, context_length=config.data.context_length)
    splits = {
        "train": pets.pets_examples(sentences, "train", num_rows=config.data.train_rows, **kw),
        "test_seen": pets.pets_examples(sentences, "test", num_rows=config.data.test_rows, **kw),
        "test_ood": pets.pets_examples(sentences, "test", num_rows=config.data.test_rows, ood=True, **kw),
    }
    texts = [D.SUMMARY_INSTRUCTION, *pets.ORACLE_SUMMARIES.values()]
    return Task(splits, {"seen": "test_seen", "unseen": "test_ood"}, ("test_seen", "test_ood"), pets.oracle_summary,
                lambda rng: pets.oracle_summary(pets.USER_TYPES[rng.randint(2)]), texts, controversial=pets.controversial)


def attributes_task(config) -> Task:
    spec = A.Spec(config.data.num_attributes, config.data.num_unseen, config.data.num_distractors,
                  config.data.agreed_fraction, config.data.shared_words)
    rows = {"train": config.data.train_rows, "val": config.data.test_rows, "test_seen": config.data.test_rows,
            "test_unseen": config.data.test_rows}
    splits = {name: A.examples(spec, name, n, seed=config.seed) for name, n in rows.items()}
    rules = {f"{population}_{key}": value for population, name in (("seen", "test_seen"), ("unseen", "test_unseen"))
             for key, value in A.rule_accuracy(splits[name], splits["train"], spec.num_attributes).items()}
    return Task(splits, {"seen": "test_seen", "unseen": "test_unseen"}, ("val",), A.oracle_summary,
                lambda rng: A.random_summary(spec.num_attributes, rng), A.vocabulary_texts(spec),
                summary_score=A.summary_attribute_accuracy, wrong_type=A.complement_type, rules=rules)


def build_tokenizer(task: Task):
    """Word-level vocabulary over every string the models will read or write."""
    texts = [D.RM_PREFIX, *task.texts]
    for examples in task.splits.values():
        for ex in examples:
            texts.append(ex.context_messages[-1]["content"])
            texts += [ex.reward.prompt, ex.reward.chosen, ex.reward.rejected]
    return T.train_tokenizer(texts)


def check_lengths(codec: loop.Codec, task: Task, method: str) -> None:
    """Fixed shapes must hold the data: fail loudly instead of silently truncating a context."""
    longest_prompt = max(len(T.encode(codec.tokenizer, T.render_chat(ex.context_messages, add_generation_prompt=True)))
                         for exs in task.splits.values() for ex in exs)
    if longest_prompt > codec.shapes.prompt_len:
        raise ValueError(f"shapes.prompt_len={codec.shapes.prompt_len} but the longest summarizer prompt has "
                         f"{longest_prompt} tokens; raise shapes.prompt_len")
    sample = [ex for exs in task.splits.values() for ex in exs[:50]]
    condition = loop.conditions_for(method, sample, [task.oracle(ex.user_type) for ex in sample], task.oracle)
    longest_rm = max(
        len(T.encode(codec.tokenizer, T.render_chat(D.reward_chat(c, ex.reward.prompt, ex.reward.chosen),
                                                    add_generation_prompt=False)))
        for c, ex in zip(condition, sample)
    )
    if longest_rm > codec.shapes.rm_len:
        raise ValueError(f"shapes.rm_len={codec.shapes.rm_len} but reward-model inputs reach {longest_rm} tokens "
                         f"for method {method!r}; raise shapes.rm_len")


# ----------------------------------------------------------------------------- models and state


def model_config(block, vocab_size: int, max_len: int, pad_id: int, end_id: int) -> ModelConfig:
    """A from-scratch ModelConfig from a shared `model` block, sized to PLUS's own codec."""
    if block.hf_path or block.vocab_size:
        raise ValueError("PLUS trains from scratch on its word-level codec: model.hf_path and model.vocab_size "
                         f"must be unset, got {block.hf_path!r}, {block.vocab_size}")
    return ModelConfig.small(
        vocab_size=vocab_size, d_model=block.d_model, n_layers=block.n_layers, n_heads=block.n_heads,
        n_kv_heads=block.n_kv_heads, head_dim=block.head_dim or None, mlp_dim=block.mlp_dim,
        model_type=block.family, tie_embeddings=block.tie_embeddings, dtype=block.dtype,
        param_dtype=block.param_dtype, scan_layers=block.scan_layers, remat=block.remat,
        max_position_embeddings=max_len, pad_token_id=pad_id, eos_token_id=end_id,
    )


def init_state(config, actor_cfg, rm_cfg, txs, rng, rules):
    """Fresh state with every parameter placed by its logical axes on the mesh (`rules`); optimizer
    states inherit the parameters' shardings (Adam moments are `zeros_like` the parameters)."""
    actor_rng, rm_rng, loop_rng = jax.random.split(rng, 3)
    actor_params = place(init_params(actor_cfg, actor_rng), param_logical_axes(actor_cfg), rules)
    rm_params = place(RM.init_value_model(rm_cfg, rm_rng), RM.value_model_logical_axes(rm_cfg), rules)
    critic_params = RM.init_critic_from_reward_model(rm_params)
    return {
        "step": jnp.zeros((), jnp.int32),
        "actor": {"params": actor_params, "opt_state": txs["actor"].init(actor_params)},
        "critic": {"params": critic_params, "opt_state": txs["critic"].init(critic_params)},
        "rm": {"params": rm_params, "opt_state": txs["rm"].init(rm_params)},
        "ref": actor_params,
        "rng": loop_rng,
        "kl": kl_control.init_kl_state(config.ppo.kl_coef),  # the KL controller's state (checkpointed)
    }


def place(params, logical_axes, rules):
    return jax.device_put(params, shd.tree_shardings(rules, logical_axes, params))


def warm_up_summarizer(state, task: Task, config, steps, codec, txs, log):
    """SFT that teaches the summary *format* only. With `label_noise = 1` (the default) every target is
    a summary of uniformly random content (`task.random_summary`), independent of the context it is
    paired with, so no user label reaches the summarizer: what its summaries say about the user must
    come from PPO on the RM's reward. `label_noise < 1` keeps that fraction's oracle summary (an ablation
    only: it leaks the user-type label)."""
    train = task.splits["train"]
    sft_slot = {"params": state["actor"]["params"], "opt_state": txs["sft"].init(state["actor"]["params"])}
    work = dict(state, actor=sft_slot)
    rng = np.random.RandomState(config.seed + 100)
    for i in range(config.sft.steps):
        index = rng.randint(len(train), size=config.sft.batch)
        batch = [train[j] for j in index]
        noisy = rng.rand(len(batch)) < config.sft.label_noise
        targets = [task.random_summary(rng) if n else task.oracle(ex.user_type) for ex, n in zip(batch, noisy)]
        work, logs = loop.sft_iteration(work, batch, targets, steps=steps, codec=codec)
        if i % 25 == 0 or i == config.sft.steps - 1:
            log.write(-config.sft.steps + i, **logs)
    params = work["actor"]["params"]
    # The PPO reference policy is the warmed-up summarizer, frozen from here on.
    return dict(state, actor={"params": params, "opt_state": txs["actor"].init(params)}, ref=params)


def schedule_lengths(config) -> tuple[int, int, int]:
    """Optimizer steps of (actor and critic, RM, SFT) over the run, for the lr schedules."""
    ppo = config.ppo.rollouts * (config.ppo.rollout_batch // config.ppo.train_batch)
    rm = (config.ppo.rollouts + config.rm_warmup_steps) * (config.ppo.rollout_batch // config.ppo.rm_batch)
    return ppo, rm, max(config.sft.steps, 1)


@functools.lru_cache(maxsize=8)
def compiled_steps(actor_cfg, rm_cfg, hyper, optim_json: str, lengths: tuple[int, int, int], rules):
    """Optimizers and jitted steps for one (models, PPO, optim) setting. Memoised so that runs with the
    same setting in one process (baselines, resumes, tests) reuse the compiled functions."""
    optim = ml_collections.ConfigDict(json.loads(optim_json))
    ppo, rm, sft = lengths
    txs = {
        "actor": make_optimizer(optim.actor, ppo)[0],
        "critic": make_optimizer(optim.critic, ppo)[0],
        "rm": make_optimizer(optim.rm, rm)[0],
        "sft": make_optimizer(optim.sft, sft)[0],
    }
    return txs, loop.make_steps(actor_cfg, rm_cfg, txs, hyper, rules)


def _batch(examples, iteration: int, size: int, seed: int):
    """Deterministic data order by iteration (so a resumed run reads exactly what it would have)."""
    start = iteration * size
    epoch, offset = divmod(start, len(examples))
    order = np.random.RandomState(seed + epoch).permutation(len(examples))
    order = np.concatenate([order, np.random.RandomState(seed + epoch + 1).permutation(len(examples))])
    return [examples[i] for i in order[offset : offset + size]]


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
    task = build_data(config)
    tokenizer = build_tokenizer(task)
    tokenizer.save(os.path.join(workdir, "tokenizer.json"))
    rm_len = config.shapes.context_rm_len if method == "in_context" else config.shapes.rm_len
    shapes = loop.Shapes(config.shapes.prompt_len, config.shapes.completion_len, rm_len)
    codec = loop.Codec(tokenizer, shapes)
    check_lengths(codec, task, method)

    vocab = tokenizer.get_vocab_size()
    max_len = max(shapes.seq_len, shapes.rm_len)
    actor_cfg = model_config(config.model, vocab, max_len, codec.pad_id, codec.end_id)
    rm_cfg = model_config(config.rm_model, vocab, max_len, codec.pad_id, codec.end_id)
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
        return _run(config, workdir, method, log, task, codec, actor_cfg, rm_cfg, hyper, rules)


@dataclasses.dataclass
class Trained:
    """A finished run's state and the pieces needed to evaluate it again (transfer)."""

    state: dict
    task: Task
    common: dict
    eval_rng: jax.Array


def _run(config, workdir, method, log, task: Task, codec, actor_cfg, rm_cfg, hyper, rules):
    splits = task.splits
    txs, steps = compiled_steps(actor_cfg, rm_cfg, hyper, config.optim.to_json(), schedule_lengths(config), rules)
    uses_summarizer = loop.CONDITIONING[method] == "summarizer"
    common = dict(steps=steps, codec=codec, actor_cfg=actor_cfg, oracle=task.oracle, method=method, rules=rules,
                  controversial=task.controversial, summary_score=task.summary_score)
    eval_rng = jax.random.PRNGKey(config.seed + 12345)
    # Rollout batches 1..W are the RM warm-up (spec fallback "warm-start the RM on untrained-summarizer
    # outputs"): the RM pass alone; for `plus` on the frozen warmed-up summarizer's summaries (no PPO).
    # Batches W+1..W+R are co-adaptation. Every method runs all W+R RM passes, so all methods get the same
    # number of RM updates, (W + R) · rollout_batch / rm_batch.
    warmup, total = config.rm_warmup_steps, config.rm_warmup_steps + config.ppo.rollouts

    def init(rng):
        state = init_state(config, actor_cfg, rm_cfg, txs, rng, rules)
        if uses_summarizer and config.sft.steps:
            state = warm_up_summarizer(state, task, config, steps, codec, txs, log)
        return state

    def rollout_step(state, batch):
        """One rollout batch: a Python step calling PLUS's jitted pieces (the Trainer's `python_step`)."""
        it = batch["iteration"]
        state, metrics = loop.plus_iteration(state, batch["examples"], train_batch=config.ppo.train_batch,
                                             rm_batch=config.ppo.rm_batch, temperature=config.ppo.temperature,
                                             update_actor=it >= warmup, steps=steps, codec=codec, actor_cfg=actor_cfg,
                                             oracle=task.oracle, method=method, rules=rules)
        metrics["phase_rm_warmup"] = float(it < warmup)
        return state, metrics

    def batch_at(it):
        return {"iteration": it, "examples": _batch(splits["train"], it, config.ppo.rollout_batch, config.seed)}

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
    abstract = abstract_like(init_state(config, actor_cfg, rm_cfg, txs, jax.random.PRNGKey(config.seed), rules))
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
               "rm_warmup_steps": warmup, "sft_label_noise": config.sft.label_noise,
               "rm_updates": total * (config.ppo.rollout_batch // config.ppo.rm_batch), "complete": True}
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
    plot_curves(workdir)
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
    plot_table_curves(workdir, config)
    return out


def plot_table_curves(workdir: str, config) -> str:
    """curves.png of the table: per PPO/RM batch, the rollout reward, the RM's rollout accuracy and the
    summary quality (fraction of attributes stated correctly on validation users), for plus and untrained."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    keys = (("rollout_reward", "reward log σ(r_c - r_r)"), ("rollout_accuracy", "RM accuracy on rollout pairs"),
            ("eval_val_summary_score", "summary quality (attributes right, val)"))
    for method, color in (("plus", "C0"), ("untrained", "C1"), ("oracle", "C2"), ("btl", "C3")):
        for seed in config.table_seeds:
            path = os.path.join(workdir, f"{method}_s{seed}")
            if not os.path.exists(os.path.join(path, "metrics.jsonl")):
                continue
            rows = [r for r in experiment.read_metrics(path) if r["step"] > 0]
            for ax, (key, title) in zip(axes, keys):
                points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
                if points:
                    ax.plot(*zip(*points), color=color, alpha=0.7, label=method if seed == config.table_seeds[0] else None)
                ax.set_title(title)
    for ax in axes:
        ax.axvline(config.rm_warmup_steps + 0.5, color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel("rollout batch (dashed: end of RM warm-up, PPO starts)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    path = os.path.join(workdir, "curves.png")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_curves(workdir: str) -> str:
    """curves.png over rollout batches: (a) rollout reward log σ(r_c - r_r) and RM loss, (b) rollout, RM
    train and held-out accuracies, (c) per-token KL to the reference and the KL coefficient β. A dashed
    line marks the end of the RM warm-up (batches before it train the RM only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in experiment.read_metrics(workdir) if r["step"] > 0]
    fig, (ax_r, ax_a, ax_k) = plt.subplots(1, 3, figsize=(15, 4))
    for key, ax in (("rollout_reward", ax_r), ("rm_loss", ax_r), ("rollout_accuracy", ax_a), ("rm_accuracy", ax_a),
                    ("eval_test_seen_accuracy", ax_a), ("eval_test_ood_accuracy", ax_a),
                    ("eval_test_seen_accuracy_controversial", ax_a), ("eval_val_accuracy", ax_a),
                    ("eval_val_summary_score", ax_a), ("kl", ax_k), ("kl_coef", ax_k)):
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if points:
            ax.plot(*zip(*points), label=key, marker="." if key.startswith("eval") else None)
    warmup = [r["step"] for r in rows if r.get("phase_rm_warmup")]
    for ax in (ax_r, ax_a, ax_k):
        if warmup:
            ax.axvline(max(warmup) + 0.5, color="gray", linestyle="--", linewidth=1, label="end of RM warm-up")
        ax.set_xlabel("rollout batch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    ax_r.set_title("reward (log σ) / RM loss")
    ax_a.set_title("pairwise accuracy")
    ax_k.set_title("KL to reference (per token) / β")
    ax_k.set_yscale("symlog", linthresh=1e-6)  # k1 KL can be slightly negative
    path = os.path.join(workdir, "curves.png")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
