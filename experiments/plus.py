"""PLUS on Pets / Pets-OOD: data -> tokenizer -> models -> (SFT warm-up) -> co-adaptation -> evaluation.

Reads top to bottom. `run(config, workdir)` writes metrics.jsonl (per rollout batch, eval curves),
checkpoints/ (Orbax: actor, critic, RM, their optimizer states, the frozen reference, the RNG),
tokenizer.json, curves.png, and returns the headline metrics for results.json.
"""

from __future__ import annotations

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from humanai_jax import experiment, sharding as shd
from humanai_jax.backbone import ModelConfig, init_params, param_logical_axes
from humanai_jax.checkpoint import Checkpointer, abstract_like
from humanai_jax.methods.plus import data as D, loaders, loop, pets, text as T
from humanai_jax.rl import kl_control, ppo, reward_model as RM
from humanai_jax.train import runtime as train_loop
from humanai_jax.train.optim import make_optimizer

METHODS = tuple(loop.CONDITIONING)
# Reported numbers (spec §8, unverified third-party summaries): RM accuracy % on Pets / Pets-OOD.
PAPER = {
    "pets": {"btl": 44.15, "in_context": 100.0, "untrained": 96.20, "plus": 99.80, "oracle": 100.0},
    "pets_ood": {"btl": 49.5, "in_context": 72.50, "untrained": 85.83, "plus": 93.67},
}


# ----------------------------------------------------------------------------- data and tokenizer


def build_data(config):
    if config.data.name != "pets":
        raise ValueError(f"Unsupported data.name {config.data.name!r}: the embedded experiment runs 'pets' "
                         "(UF-P-2/4 and PRISM load via humanai_jax.methods.plus.loaders)")
    path = config.data.sentences_path
    sentences = pets.load_vpl_sentences(path) if path else pets.builtin_sentences()
    kw = dict(seed=config.seed, context_length=config.data.context_length)
    return {
        "train": pets.pets_examples(sentences, "train", num_rows=config.data.train_rows, **kw),
        "test_seen": pets.pets_examples(sentences, "test", num_rows=config.data.test_rows, **kw),
        "test_ood": pets.pets_examples(sentences, "test", num_rows=config.data.test_rows, ood=True, **kw),
    }


def build_tokenizer(splits):
    """Word-level vocabulary over every string the models will read or write."""
    texts = [D.SUMMARY_INSTRUCTION, D.RM_PREFIX, *pets.ORACLE_SUMMARIES.values()]
    for examples in splits.values():
        for ex in examples:
            texts.append(ex.context_messages[-1]["content"])
            texts += [ex.reward.prompt, ex.reward.chosen, ex.reward.rejected]
    return T.train_tokenizer(texts)


def check_lengths(codec: loop.Codec, splits, method: str) -> None:
    """Fixed shapes must hold the data: fail loudly instead of silently truncating a context."""
    longest_prompt = max(len(T.encode(codec.tokenizer, T.render_chat(ex.context_messages, add_generation_prompt=True)))
                         for exs in splits.values() for ex in exs)
    if longest_prompt > codec.shapes.prompt_len:
        raise ValueError(f"shapes.prompt_len={codec.shapes.prompt_len} but the longest summarizer prompt has "
                         f"{longest_prompt} tokens; raise shapes.prompt_len")
    sample = [ex for exs in splits.values() for ex in exs[:50]]
    condition = loop.conditions_for(method, sample, [pets.ORACLE_SUMMARIES["helpful"]] * len(sample), pets.oracle_summary)
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
    return ModelConfig.small(
        vocab_size=vocab_size, d_model=block.d_model, n_layers=block.n_layers, n_heads=block.n_heads,
        model_type=block.model_type, max_position_embeddings=max_len, pad_token_id=pad_id, eos_token_id=end_id,
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


def warm_up_summarizer(state, train, config, steps, codec, txs, log):
    """SFT on the generator's own summaries, a `label_noise` fraction replaced by a random user type's."""
    sft_slot = {"params": state["actor"]["params"], "opt_state": txs["sft"].init(state["actor"]["params"])}
    work = dict(state, actor=sft_slot)
    rng = np.random.RandomState(config.seed + 100)
    for i in range(config.sft.steps):
        index = rng.randint(len(train), size=config.sft.batch)
        batch = [train[j] for j in index]
        noisy = rng.rand(len(batch)) < config.sft.label_noise
        targets = [pets.oracle_summary(pets.USER_TYPES[rng.randint(2)] if n else ex.user_type) for ex, n in zip(batch, noisy)]
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
    method = config.method
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; valid: {METHODS}")
    log = experiment.MetricsLog(workdir)
    splits = build_data(config)
    tokenizer = build_tokenizer(splits)
    tokenizer.save(os.path.join(workdir, "tokenizer.json"))
    shapes = loop.Shapes(config.shapes.prompt_len, config.shapes.completion_len, config.shapes.rm_len)
    codec = loop.Codec(tokenizer, shapes)
    check_lengths(codec, splits, method)

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
        return _run(config, workdir, method, log, splits, codec, actor_cfg, rm_cfg, hyper, rules)


def _run(config, workdir, method, log, splits, codec, actor_cfg, rm_cfg, hyper, rules):
    txs, steps = compiled_steps(actor_cfg, rm_cfg, hyper, config.optim.to_json(), schedule_lengths(config), rules)
    state = init_state(config, actor_cfg, rm_cfg, txs, jax.random.PRNGKey(config.seed), rules)

    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=2)
    start_step, restored, _ = ckpt.restore_latest(abstract_like(state))
    uses_summarizer = loop.CONDITIONING[method] == "summarizer"
    if restored is not None:
        state = restored
        logging.info("Resumed PLUS from checkpoint %d", start_step)
    else:
        if uses_summarizer and config.sft.steps:
            state = warm_up_summarizer(state, splits["train"], config, steps, codec, txs, log)
        ckpt.save(0, state, {"phase": "warmed_up"}, force=True)
        start_step = 0

    common = dict(steps=steps, codec=codec, actor_cfg=actor_cfg, oracle=pets.oracle_summary, method=method, rules=rules)
    eval_rng = jax.random.PRNGKey(config.seed + 12345)
    curve = {name: splits[name][: config.eval.curve_rows] for name in ("test_seen", "test_ood")}
    # Rollout batches 1..W are the RM warm-up (spec fallback "warm-start the RM on untrained-summarizer
    # outputs"): the RM pass alone; for `plus` on the frozen warmed-up summarizer's summaries (no PPO).
    # Batches W+1..W+R are co-adaptation. Every method runs all W+R RM passes, so all methods get the same
    # number of RM updates, (W + R) · rollout_batch / rm_batch.
    warmup, total = config.rm_warmup_steps, config.rm_warmup_steps + config.ppo.rollouts
    t0 = time.time()
    for it in range(int(start_step), total):
        batch = _batch(splits["train"], it, config.ppo.rollout_batch, config.seed)
        state, metrics = loop.plus_iteration(state, batch, train_batch=config.ppo.train_batch,
                                             rm_batch=config.ppo.rm_batch, temperature=config.ppo.temperature,
                                             update_actor=it >= warmup, **common)
        step = it + 1
        metrics["phase_rm_warmup"] = float(it < warmup)
        if step % config.eval.every == 0 or step == total:
            for name, exs in curve.items():
                ev = loop.evaluate(state, exs, rng=eval_rng, num_samples=1, batch_size=config.eval.batch,
                                   controversial=pets.controversial, **common)
                metrics[f"eval_{name}_accuracy"] = ev["accuracy"]
                metrics[f"eval_{name}_accuracy_controversial"] = ev.get("accuracy_controversial", float("nan"))
                if "summary_exact_match" in ev:
                    metrics[f"eval_{name}_summary_match"] = ev["summary_exact_match"]
        log.write(step, elapsed_s=time.time() - t0, **metrics)
        if step % config.checkpoint_every == 0 or step == total:
            ckpt.save(step, state, {"phase": "train"}, force=True)
        if config.stop_after and step >= config.stop_after and step < total:
            if step % config.checkpoint_every:
                ckpt.save(step, state, {"phase": "train"}, force=True)
            ckpt.close()
            return {"method": method, "stopped_at": step, "complete": False}
    ckpt.close()

    results = {"method": method, "seed": config.seed, "rollouts": config.ppo.rollouts, "rm_warmup_steps": warmup,
               "rm_updates": total * (config.ppo.rollout_batch // config.ppo.rm_batch), "complete": True}
    for name, population in (("test_seen", "seen"), ("test_ood", "unseen")):
        ev = loop.evaluate(state, splits[name], rng=eval_rng, num_samples=config.eval.samples,
                           batch_size=config.eval.batch, controversial=pets.controversial, **common)
        for key, value in ev.items():
            results[f"{population}_{key}"] = value
    groups = loaders.seen_unseen(splits["test_seen"] + splits["test_ood"])
    results["num_seen_pairs"], results["num_unseen_pairs"] = len(groups["seen"]), len(groups["unseen"])
    results["paper_pets_accuracy"] = PAPER["pets"].get(method)
    results["paper_pets_ood_accuracy"] = PAPER["pets_ood"].get(method)
    if uses_summarizer:
        _, _, sample = loop.sample_summaries(state["actor"]["params"], actor_cfg, codec, splits["test_seen"][:4],
                                             eval_rng, temperature=config.ppo.temperature, rules=rules)
        results["example_summaries"] = [{"user_type": ex.user_type, "summary": s}
                                        for ex, s in zip(splits["test_seen"][:4], sample)]
    plot_curves(workdir)
    return results


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
                    ("eval_test_seen_accuracy_controversial", ax_a), ("kl", ax_k), ("kl_coef", ax_k)):
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
