"""The PLUS co-adaptation loop (spec §3, §4) and its baselines, as jitted pure steps over one state pytree.

State (one pytree, checkpointed whole):
  {"step": [], "actor": {"params", "opt_state"}, "critic": {...}, "rm": {...}, "ref": params, "rng": key,
   "kl": {"kl_coef": []}}   (the KL controller's state, `humanai_jax.rl.kl_control`)

Per rollout batch of contexts (`plus_iteration`):
  1. sample summaries z ~ π_θ(·|c) with the decoding engine, reading the actor's own params;
  2. experience: log π_θ, log π_ref, critic values, per-token KL (k1 by default);
  3. score with the RM (no grad): R = log σ(r_c - r_r) on the rollout pair; batch accuracy;
  4. shape per-token rewards (-β·kl + clip(R) on the last token), GAE, whiten over the buffer;
  5. one PPO epoch over the buffer (shuffled minibatches) updating actor and critic;
  6. one Bradley–Terry pass of the RM on the same summaries (sampled before step 5), train pair;
  7. KL controller update from the batch's observed KL (fixed: β unchanged; adaptive: OpenRLHF's rule).

Sequence layout (fixed shapes, so nothing recompiles between iterations): the prompt is left-padded
to `prompt_len`, the completion right-padded to `completion_len`; per-token arrays have length
`prompt_len + completion_len - 1` and position t predicts token t + 1.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tokenizers import Tokenizer

from humanai_jax import backbone, decoding
from humanai_jax.backbone import ModelConfig
from humanai_jax.methods.plus import data as D
from humanai_jax.methods.plus import models as M
from humanai_jax.methods.plus import text as T
from humanai_jax.rl import kl_control as KL
from humanai_jax.rl import losses as L
from humanai_jax.train.losses import cross_entropy

# How the reward model is conditioned, per method (spec §5).
CONDITIONING = {
    "plus": "summarizer",  # PPO-trained summarizer co-adapting with the RM
    "untrained": "summarizer",  # frozen (SFT-warmed) summarizer, RM trained on its summaries
    "btl": "none",  # one shared Bradley–Terry RM, no user information
    "in_context": "context",  # the raw context placed where the summary goes
    "oracle": "oracle",  # the generator's true user-type summary
}


@dataclasses.dataclass(frozen=True)
class Shapes:
    prompt_len: int
    completion_len: int
    rm_len: int

    @property
    def seq_len(self) -> int:
        return self.prompt_len + self.completion_len


@dataclasses.dataclass(frozen=True)
class PPOHyper:
    kl_coef: float = 0.01  # initial β (the fixed controller keeps it)
    kl_estimator: str = "k1"
    kl_controller: str = "fixed"  # fixed | adaptive (OpenRLHF AdaptiveKLController)
    kl_target: float = 0.0  # adaptive only: target per-token KL (> 0)
    kl_horizon: float = 10000.0  # adaptive only: samples over which β moves by at most ±20%
    gamma: float = 1.0
    lam: float = 0.95
    clip_eps: float = 0.2
    value_clip_eps: float = 0.2
    reward_clip: tuple[float, float] = (-10.0, 10.0)
    policy_reduction: str = "sequence"
    value_reduction: str = "sequence"
    whiten_advantages: bool = True


# ----------------------------------------------------------------------------- text -> arrays


class Codec:
    """Tokenizer-side helpers with the special ids resolved once."""

    def __init__(self, tokenizer: Tokenizer, shapes: Shapes):
        self.tokenizer = tokenizer
        self.shapes = shapes
        self.pad_id = T.token_id(tokenizer, T.PAD)
        self.end_id = T.token_id(tokenizer, T.END)

    def prompt_ids(self, example: D.PlusExample) -> list[int]:
        text = T.render_chat(example.context_messages, add_generation_prompt=True)
        return T.encode(self.tokenizer, text)[-self.shapes.prompt_len :]

    def completion_ids(self, summary: str) -> list[int]:
        return T.encode(self.tokenizer, f"{T.SUMMARY_TOKEN} {summary} {T.END}")[: self.shapes.completion_len]

    def sequences(self, prompts: Sequence[list[int]], completions: Sequence[list[int]]) -> dict[str, np.ndarray]:
        """tokens, attention [B, S]; action_mask [B, S-1] (1 where the next token is a completion token)."""
        p_tok, p_mask = T.pad_batch(prompts, self.shapes.prompt_len, self.pad_id, side="left")
        c_tok, c_mask = T.pad_batch(completions, self.shapes.completion_len, self.pad_id, side="right")
        tokens = np.concatenate([p_tok, c_tok], axis=1)
        attention = np.concatenate([p_mask, c_mask], axis=1)
        action = np.concatenate([np.zeros_like(p_mask[:, 1:]), c_mask], axis=1).astype(np.float32)
        return {"tokens": tokens, "attention": attention, "action_mask": action}

    def summaries(self, prompts: Sequence[list[int]], completions: Sequence[list[int]]) -> list[str]:
        """Spec §2.2: decode prompt + completion with special tokens skipped, text after the last ##Summary."""
        return [D.extract_summary(T.decode(self.tokenizer, p + c)) for p, c in zip(prompts, completions)]

    def rm_inputs(self, conditions: Sequence[str | None], pairs: Sequence[D.Pair]) -> dict[str, np.ndarray]:
        """Chosen rows then rejected rows: tokens, attention [2B, rm_len] (right-padded)."""
        rows = []
        for which in ("chosen", "rejected"):
            for condition, pair in zip(conditions, pairs):
                chat = D.reward_chat(condition, pair.prompt, getattr(pair, which))
                rows.append(T.encode(self.tokenizer, T.render_chat(chat, add_generation_prompt=False)))
        # Keep the end of an over-long input: the response (where the reward is read) must survive.
        tokens, attention = T.pad_batch([r[-self.shapes.rm_len :] for r in rows], self.shapes.rm_len, self.pad_id)
        return {"tokens": tokens, "attention": attention}


def conditions_for(method: str, examples: Sequence[D.PlusExample], summaries: Sequence[str] | None, oracle: Callable[[str], str]):
    """What the RM sees in place of the summary for each example (None = no summary at all)."""
    kind = CONDITIONING[method]
    if kind == "summarizer":
        return list(summaries)
    if kind == "none":
        return [None] * len(examples)
    if kind == "context":
        return [D.render_context(ex.context_pairs) for ex in examples]
    return [oracle(ex.user_type) for ex in examples]


# ----------------------------------------------------------------------------- jitted steps


def _apply(tx, slot, grads):
    updates, opt_state = tx.update(grads, slot["opt_state"], slot["params"])
    return {"params": optax.apply_updates(slot["params"], updates), "opt_state": opt_state}


def make_steps(actor_cfg: ModelConfig, rm_cfg: ModelConfig, txs: dict, hyper: PPOHyper, rules=None) -> dict[str, Callable]:
    """The jitted pure functions of the loop. `txs`: optax transforms for "actor", "critic", "rm", "sft"."""

    def rm_scores(rm_params, batch):
        scores = M.reward_scores(rm_params, batch["tokens"], batch["attention"], rm_cfg, rules)
        half = scores.shape[0] // 2
        return scores[:half], scores[half:]

    @jax.jit
    def score(rm_params, batch):
        r_c, r_r = rm_scores(rm_params, batch)
        return {"r_chosen": r_c, "r_rejected": r_r, "reward": jax.nn.log_sigmoid(r_c - r_r)}

    @jax.jit
    def experience(actor_params, ref_params, critic_params, seq, terminal_reward, kl_coef):
        """kl_coef `[]`: the controller's current β (traced, so an adaptive β does not recompile)."""
        logp = M.token_logprobs(actor_params, seq["tokens"], seq["attention"], actor_cfg, rules)
        ref_logp = M.token_logprobs(ref_params, seq["tokens"], seq["attention"], actor_cfg, rules)
        values = M.critic_values(critic_params, seq["tokens"], seq["attention"], rm_cfg, rules)
        mask = seq["action_mask"]
        kl = L.kl_estimate(logp, ref_logp, hyper.kl_estimator) * mask
        rewards = L.shaped_rewards(terminal_reward, kl, mask, kl_coef=kl_coef, clip_range=hyper.reward_clip)
        advantages, returns = L.gae_advantages(rewards, values, mask, gamma=hyper.gamma, lam=hyper.lam)
        if hyper.whiten_advantages:
            advantages = L.masked_whiten(advantages, mask)
        return {"old_logp": logp, "old_values": values, "advantages": advantages, "returns": returns,
                "kl": L.masked_mean(kl, mask, axis=-1)}

    @jax.jit
    def ppo_update(actor, critic, mb):
        def actor_loss(params):
            logp = M.token_logprobs(params, mb["tokens"], mb["attention"], actor_cfg, rules)
            return L.ppo_policy_loss(logp, mb["old_logp"], mb["advantages"], mb["action_mask"],
                                     clip_eps=hyper.clip_eps, reduction=hyper.policy_reduction)

        def critic_loss(params):
            values = M.critic_values(params, mb["tokens"], mb["attention"], rm_cfg, rules)
            return L.ppo_value_loss(values, mb["old_values"], mb["returns"], mb["action_mask"],
                                    clip_eps=hyper.value_clip_eps, reduction=hyper.value_reduction)

        (policy_loss, stats), actor_grads = jax.value_and_grad(actor_loss, has_aux=True)(actor["params"])
        value_loss, critic_grads = jax.value_and_grad(critic_loss)(critic["params"])
        metrics = {"policy_loss": policy_loss, "value_loss": value_loss, **stats,
                   "actor_grad_norm": optax.tree.norm(actor_grads)}
        return _apply(txs["actor"], actor, actor_grads), _apply(txs["critic"], critic, critic_grads), metrics

    @jax.jit
    def rm_update(rm, batch):
        def loss_fn(params):
            r_c, r_r = rm_scores(params, batch)
            return L.bradley_terry_loss(r_c, r_r), L.pairwise_accuracy(r_c, r_r)

        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(rm["params"])
        return _apply(txs["rm"], rm, grads), {"rm_loss": loss, "rm_accuracy": acc}

    @jax.jit
    def sft_update(actor, seq):
        def loss_fn(params):
            logits = backbone.forward(params, seq["tokens"], actor_cfg, attention_mask=seq["attention"], rules=rules)
            total, count = cross_entropy(logits[:, :-1], seq["tokens"][:, 1:], seq["action_mask"])
            return total / jnp.maximum(count, 1.0)

        loss, grads = jax.value_and_grad(loss_fn)(actor["params"])
        return _apply(txs["sft"], actor, grads), {"sft_loss": loss}

    if hyper.kl_controller not in KL.KL_CONTROLLERS:
        raise ValueError(f"Unknown kl_controller {hyper.kl_controller!r}; expected one of {KL.KL_CONTROLLERS}")
    if hyper.kl_controller == "adaptive" and not (hyper.kl_target > 0 and hyper.kl_horizon > 0):
        raise ValueError(f"kl_controller='adaptive' needs kl_target > 0 and kl_horizon > 0, got "
                         f"{hyper.kl_target}, {hyper.kl_horizon}")

    def kl_update(kl_state, observed_kl, n_steps: int):
        """Step 7: the KL controller's new state from the batch's mean per-sequence KL and its size."""
        return KL.kl_update(kl_state, observed_kl, n_steps, kind=hyper.kl_controller,
                            target=hyper.kl_target or None, horizon=hyper.kl_horizon)

    return {"score": score, "experience": experience, "ppo_update": ppo_update, "rm_update": rm_update,
            "sft_update": sft_update, "kl_update": kl_update}


# ----------------------------------------------------------------------------- rollouts


def sample_summaries(actor_params, actor_cfg: ModelConfig, codec: Codec, examples, rng, *, temperature: float, rules=None):
    """Samples one summary per example with the decoding engine on the actor's own (live) params.
    Returns (prompt ids, completion ids, summaries)."""
    prompts = [codec.prompt_ids(ex) for ex in examples]
    if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):  # raw uint32 keys (checkpointable) -> typed
        rng = jax.random.wrap_key_data(rng)
    tokens, lengths = decoding.generate(
        actor_params, actor_cfg, prompts, max_new_tokens=codec.shapes.completion_len, temperature=temperature,
        stop_token_ids=(codec.end_id,), rng=rng, pad_id=codec.pad_id, rules=rules,
    )
    completions = [list(map(int, row[:n])) for row, n in zip(tokens, lengths)]
    return prompts, completions, codec.summaries(prompts, completions)


def _minibatches(num: int, size: int, rng: jax.Array) -> list[np.ndarray]:
    order = np.asarray(jax.random.permutation(rng, num))
    return [order[i : i + size] for i in range(0, num - size + 1, size)]


def _take(tree: dict, index: np.ndarray) -> dict:
    return {k: v[index] for k, v in tree.items()}


def plus_iteration(state, examples, *, steps, codec: Codec, actor_cfg, oracle, method: str, train_batch: int,
                   rm_batch: int, temperature: float, update_actor: bool = True, rules=None):
    """One rollout batch of the co-adaptation schedule (spec §4). Returns (new state, metrics)."""
    rng, sample_rng, ppo_rng, rm_rng = jax.random.split(state["rng"], 4)
    metrics: dict[str, float] = {}
    summaries = None
    if CONDITIONING[method] == "summarizer":
        prompts, completions, summaries = sample_summaries(
            state["actor"]["params"], actor_cfg, codec, examples, sample_rng, temperature=temperature, rules=rules
        )
        metrics["summary_tokens"] = float(np.mean([len(c) for c in completions]))
    conditions = conditions_for(method, examples, summaries, oracle)
    new_state = dict(state, rng=rng, step=state["step"] + 1)
    # 3. Score the rollout pair with the RM before it trains on this batch (every method, for the curves).
    scored = steps["score"](state["rm"]["params"], codec.rm_inputs(conditions, [ex.reward for ex in examples]))
    metrics.update(rollout_reward=float(jnp.mean(scored["reward"])),
                   rollout_accuracy=float(jnp.mean(scored["r_chosen"] > scored["r_rejected"])))
    if method == "plus" and update_actor:
        seq = {k: jnp.asarray(v) for k, v in codec.sequences(prompts, completions).items()}
        kl_coef = state["kl"]["kl_coef"]
        exp = steps["experience"](state["actor"]["params"], state["ref"], state["critic"]["params"], seq,
                                  scored["reward"], kl_coef)
        buffer = {**seq, **exp}
        actor, critic, ppo_logs = state["actor"], state["critic"], []
        for index in _minibatches(len(examples), train_batch, ppo_rng):
            actor, critic, logs = steps["ppo_update"](actor, critic, _take(buffer, index))
            ppo_logs.append(logs)
        new_state.update(actor=actor, critic=critic)
        metrics.update({k: float(np.mean([float(x[k]) for x in ppo_logs])) for k in ppo_logs[0]})
        metrics.update(kl=float(jnp.mean(exp["kl"])), kl_coef=float(kl_coef))
        # 7. KL controller, from this batch's KL and sample count (used from the next batch on).
        new_state["kl"] = steps["kl_update"](state["kl"], jnp.mean(exp["kl"]), len(examples))
    # RM pass on the same summaries (sampled before the PPO update), on the train pair.
    rm, rm_logs = state["rm"], []
    for index in _minibatches(len(examples), rm_batch, rm_rng):
        batch = codec.rm_inputs([conditions[i] for i in index], [examples[i].train for i in index])
        rm, logs = steps["rm_update"](rm, {k: jnp.asarray(v) for k, v in batch.items()})
        rm_logs.append(logs)
    new_state["rm"] = rm
    metrics.update({k: float(np.mean([float(x[k]) for x in rm_logs])) for k in rm_logs[0]})
    return new_state, metrics


def sft_iteration(state, examples, summaries: Sequence[str], *, steps, codec: Codec):
    """One supervised step of the summarizer on given target summaries (warm-up)."""
    prompts = [codec.prompt_ids(ex) for ex in examples]
    seq = codec.sequences(prompts, [codec.completion_ids(s) for s in summaries])
    actor, logs = steps["sft_update"](state["actor"], {k: jnp.asarray(v) for k, v in seq.items()})
    return dict(state, actor=actor), {k: float(v) for k, v in logs.items()}


def evaluate(state, examples, *, steps, codec: Codec, actor_cfg, oracle, method: str, rng, num_samples: int,
             batch_size: int, temperature: float = 1.0, controversial: Callable | None = None, rules=None) -> dict[str, float]:
    """Held-out RM accuracy `mean 1[r_c > r_r]` (ties are errors) and mean log σ(r_c - r_r) on the eval
    pairs, averaged over `num_samples` summary samples (spec §7). Also on the controversial subset."""
    correct = np.zeros((num_samples, len(examples)))
    logsig = np.zeros((num_samples, len(examples)))
    matches = np.zeros((num_samples, len(examples)))  # sampled summary == the user type's oracle summary
    for s in range(num_samples):
        sample_rng = jax.random.fold_in(rng, s)
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            summaries = None
            if CONDITIONING[method] == "summarizer":
                _, _, summaries = sample_summaries(state["actor"]["params"], actor_cfg, codec, chunk,
                                                   jax.random.fold_in(sample_rng, start), temperature=temperature,
                                                   rules=rules)
            conditions = conditions_for(method, chunk, summaries, oracle)
            if summaries is not None and all(ex.user_type for ex in chunk):  # spaces ignored (word tokenizer)
                matches[s, start : start + len(chunk)] = [
                    "".join(z.split()) == "".join(oracle(ex.user_type).split()) for z, ex in zip(summaries, chunk)]
            pairs = [ex.eval if ex.eval is not None else ex.reward for ex in chunk]
            scored = steps["score"](state["rm"]["params"], {k: jnp.asarray(v) for k, v in codec.rm_inputs(conditions, pairs).items()})
            correct[s, start : start + len(chunk)] = np.asarray(scored["r_chosen"] > scored["r_rejected"])
            logsig[s, start : start + len(chunk)] = np.asarray(scored["reward"])
    out = {"accuracy": float(correct.mean()), "accuracy_std_over_samples": float(correct.mean(axis=1).std()),
           "mean_log_sigmoid": float(logsig.mean()), "num_pairs": len(examples)}
    if CONDITIONING[method] == "summarizer" and all(ex.user_type for ex in examples):
        out["summary_exact_match"] = float(matches.mean())
    if controversial is not None:
        keep = np.array([controversial(ex) for ex in examples])
        if keep.any():
            out["accuracy_controversial"] = float(correct[:, keep].mean())
    return out
