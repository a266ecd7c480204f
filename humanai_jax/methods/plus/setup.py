"""PLUS's experiment pieces below the entry point (`experiments/plus.py` reads top to bottom on them): the
task (splits, populations, oracle and random summaries, rule baselines), the text side (our word-level
tokenizer, or a checkpoint's tokenizer and chat template) and length checks, the model configs (from scratch,
or loaded from `model.hf_path` / `rm_model.hf_path`), the state of all four models, the label-free format warm-up,
the jitted steps and the batch order (a pure function of seed and iteration). docs/plus.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from humanai_jax import sharding as shd
from humanai_jax.backbone import ModelConfig, init_params, param_logical_axes
from humanai_jax.methods.plus import attributes as A, data as D, loop, pets, text as T
from humanai_jax.rl import kl_control, reward_model as RM
from humanai_jax.train.optim import make_optimizer

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


def checkpoint_paths(config) -> tuple[str, str]:
    """(summarizer, reward model) checkpoint directories; "" = that model trains from scratch."""
    return config.model.hf_path, config.rm_model.hf_path


def build_chat(config, task: Task) -> T.ChatText:
    """The text side: a checkpoint's tokenizer and chat template when either model loads one (both models
    then read that tokenizer, so two checkpoints must share it), else our word-level tokenizer over the task."""
    actor_path, rm_path = checkpoint_paths(config)
    if not (actor_path or rm_path):
        return T.WordChat(build_tokenizer(task))
    from humanai_jax.data.tokenizer import load_tokenizer

    path = actor_path or rm_path
    tokenizer = load_tokenizer(path)
    if actor_path and rm_path and actor_path != rm_path and load_tokenizer(rm_path).get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"model.hf_path {actor_path} and rm_model.hf_path {rm_path} have different tokenizers; "
                         "the summarizer's summaries are read by the RM, so both must share one")
    return T.CheckpointChat(tokenizer, path)


def check_lengths(codec: loop.Codec, task: Task, method: str) -> None:
    """Fixed shapes must hold the data: fail loudly instead of silently truncating a context."""
    chat = codec.chat
    longest_prompt = max(len(chat.encode(chat.render(ex.context_messages, add_generation_prompt=True)))
                         for exs in task.splits.values() for ex in exs)
    if longest_prompt > codec.shapes.prompt_len:
        raise ValueError(f"shapes.prompt_len={codec.shapes.prompt_len} but the longest summarizer prompt has "
                         f"{longest_prompt} tokens; raise shapes.prompt_len")
    sample = [ex for exs in task.splits.values() for ex in exs[:50]]
    condition = loop.conditions_for(method, sample, [task.oracle(ex.user_type) for ex in sample], task.oracle)
    longest_rm = max(len(codec.rm_ids(c, ex.reward, "chosen")) for c, ex in zip(condition, sample))
    if longest_rm > codec.shapes.rm_len:
        raise ValueError(f"shapes.rm_len={codec.shapes.rm_len} but reward-model inputs reach {longest_rm} tokens "
                         f"for method {method!r}; raise shapes.rm_len")


# ----------------------------------------------------------------------------- models and state


def model_config(block, vocab_size: int, max_len: int, pad_id: int, end_id: int) -> ModelConfig:
    """A from-scratch ModelConfig from a shared `model` block, sized to the text side's vocabulary."""
    if block.vocab_size:
        raise ValueError(f"PLUS sizes a from-scratch model to its tokenizer: model.vocab_size must be unset, got "
                         f"{block.vocab_size}")
    return ModelConfig.small(
        vocab_size=vocab_size, d_model=block.d_model, n_layers=block.n_layers, n_heads=block.n_heads,
        n_kv_heads=block.n_kv_heads, head_dim=block.head_dim or None, mlp_dim=block.mlp_dim,
        model_type=block.family, tie_embeddings=block.tie_embeddings, dtype=block.dtype,
        param_dtype=block.param_dtype, scan_layers=block.scan_layers, remat=block.remat,
        max_position_embeddings=max_len, pad_token_id=pad_id, eos_token_id=end_id,
    )


def build_model(block, chat: T.ChatText, max_len: int):
    """(ModelConfig, pretrained backbone params or None) for one role: the checkpoint at `block.hf_path`
    (its config and weights; the vocabulary must cover the tokenizer and the positions the shapes need),
    else a from-scratch config and None (initialised in `init_state`)."""
    if not block.hf_path:
        return model_config(block, chat.vocab_size, max_len, chat.pad_id, chat.end_id), None
    from humanai_jax.backbone import load_pretrained

    cfg, params = load_pretrained(block.hf_path, dtype=jnp.dtype(block.param_dtype or "float32"))
    if cfg.vocab_size < chat.vocab_size:
        raise ValueError(f"{block.hf_path}: vocab_size {cfg.vocab_size} < the tokenizer's {chat.vocab_size} tokens")
    if cfg.max_position_embeddings and cfg.max_position_embeddings < max_len:
        raise ValueError(f"{block.hf_path}: max_position_embeddings {cfg.max_position_embeddings} < {max_len}, "
                         "the longest sequence the shapes allow")
    return cfg, params


def init_state(config, actor_cfg, rm_cfg, txs, rng, rules, pretrained: dict | None = None):
    """Fresh state with every parameter placed by its logical axes on the mesh (`rules`); optimizer
    states inherit the parameters' shardings (Adam moments are `zeros_like` the parameters).
    `pretrained`: {"actor": backbone params | None, "rm": backbone params | None} loaded from checkpoints
    (the RM's scalar head is always new; the critic starts as a copy of the RM, as in PLUS)."""
    pretrained = pretrained or {}
    actor_rng, rm_rng, loop_rng = jax.random.split(rng, 3)
    actor = pretrained.get("actor")
    actor_params = place(actor if actor is not None else init_params(actor_cfg, actor_rng),
                         param_logical_axes(actor_cfg), rules)
    rm_params = place(RM.init_value_model(rm_cfg, rm_rng, pretrained.get("rm")), RM.value_model_logical_axes(rm_cfg),
                      rules)
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


def rm_updates(config) -> int:
    """RM optimizer steps over a run: (W + R) rollout batches x rm_epochs passes x minibatches per pass."""
    per_pass = config.ppo.rollout_batch // config.ppo.rm_batch
    return (config.ppo.rollouts + config.rm_warmup_steps) * config.ppo.rm_epochs * per_pass


def schedule_lengths(config) -> tuple[int, int, int]:
    """Optimizer steps of (actor and critic, RM, SFT) over the run, for the lr schedules."""
    ppo = config.ppo.rollouts * (config.ppo.rollout_batch // config.ppo.train_batch)
    rm = rm_updates(config)
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


def batch_examples(examples, iteration: int, size: int, seed: int):
    """Deterministic data order by iteration (so a resumed run reads exactly what it would have)."""
    start = iteration * size
    epoch, offset = divmod(start, len(examples))
    order = np.random.RandomState(seed + epoch).permutation(len(examples))
    order = np.concatenate([order, np.random.RandomState(seed + epoch + 1).permutation(len(examples))])
    return [examples[i] for i in order[offset : offset + size]]
