"""The PLUS co-adaptation schedule (docs/plus.md §4) and its baselines, on the core RL layer.

PLUS keeps here only what is PLUS: how the reward model is conditioned (`CONDITIONING`,
`conditions_for`), the text side (`Codec`: prompts, summaries, RM inputs) and the schedule
(`plus_iteration`). The PPO machinery is `humanai_jax.rl.ppo` (experience, GAE, clipped updates, KL
control) and the reward model is `humanai_jax.rl.reward_model` (backbone + scalar head, Bradley–Terry).

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
Steps 2, 4, 5 and 7 are `rl.ppo.ppo_iteration`; step 6 is `rl.reward_model.bradley_terry_update`.

Sequence layout (fixed shapes, so nothing recompiles between iterations): the prompt is left-padded
to `prompt_len`, the completion right-padded to `completion_len`; per-token arrays have length
`prompt_len + completion_len - 1` and position t predicts token t + 1 (`rl.ppo.sequence_layout`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tokenizers import Tokenizer

from humanai_jax import backbone
from humanai_jax.backbone import ModelConfig
from humanai_jax.methods.plus import data as D, text as T
from humanai_jax.rl import ppo, reward_model as RM
from humanai_jax.train.losses import cross_entropy

# How the reward model is conditioned, per method (docs/plus.md §5).
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


# ----------------------------------------------------------------------------- text -> arrays


class Codec:
    """Text -> fixed-shape arrays for one text side (`text.WordChat` or `text.CheckpointChat`)."""

    def __init__(self, chat: T.ChatText, shapes: Shapes):
        if isinstance(chat, Tokenizer):  # a bare word-level tokenizer: the from-scratch text side
            chat = T.WordChat(chat)
        self.chat = chat
        self.shapes = shapes
        self.pad_id, self.end_id, self.stop_ids = chat.pad_id, chat.end_id, chat.stop_ids

    def prompt_ids(self, example: D.PlusExample) -> list[int]:
        return self.chat.encode(self.chat.render(example.context_messages, add_generation_prompt=True))[
            -self.shapes.prompt_len :]

    def completion_ids(self, summary: str) -> list[int]:
        return self.chat.completion_ids(summary)[: self.shapes.completion_len]

    def sequences(self, prompts: Sequence[list[int]], completions: Sequence[list[int]]) -> dict[str, np.ndarray]:
        """tokens, attention [B, S]; action_mask [B, S-1] (1 where the next token is a completion token)."""
        p_tok, p_mask = ppo.pad_rows(prompts, self.shapes.prompt_len, self.pad_id, side="left")
        c_tok, c_mask = ppo.pad_rows(completions, self.shapes.completion_len, self.pad_id, side="right")
        return ppo.sequence_layout(p_tok, p_mask, c_tok, c_mask)

    def summaries(self, prompts: Sequence[list[int]], completions: Sequence[list[int]]) -> list[str]:
        """Spec §2.2: decode prompt + completion with special tokens skipped, text after the last ##Summary."""
        return [D.extract_summary(self.chat.decode(p + c)) for p, c in zip(prompts, completions)]

    def rm_ids(self, condition: str | None, pair: D.Pair, which: str) -> list[int]:
        """The RM's untruncated input for one response (`which`: "chosen" | "rejected")."""
        chat = D.reward_chat(condition, pair.prompt, getattr(pair, which))
        return self.chat.encode(self.chat.render(chat, add_generation_prompt=False))

    def rm_inputs(self, conditions: Sequence[str | None], pairs: Sequence[D.Pair]) -> dict[str, np.ndarray]:
        """Chosen rows then rejected rows: tokens, attention [2B, rm_len] (right-padded)."""
        rows = [self.rm_ids(condition, pair, which) for which in ("chosen", "rejected")
                for condition, pair in zip(conditions, pairs)]
        # Keep the end of an over-long input: the response (where the reward is read) must survive.
        tokens, attention = ppo.pad_rows([r[-self.shapes.rm_len :] for r in rows], self.shapes.rm_len, self.pad_id)
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


def make_steps(actor_cfg: ModelConfig, rm_cfg: ModelConfig, txs: dict, hyper: ppo.PPOConfig, rules=None) -> dict[str, Callable]:
    """The jitted pure functions of the loop. `txs`: optax transforms for "actor", "critic", "rm", "sft".

    `score`/`rm_update` are the core reward model's (`rl.reward_model`), `ppo` the core PPO steps
    (`rl.ppo.make_ppo_steps`: actor = reference = the backbone LM, critic = backbone + scalar head);
    `sft_update` is the summarizer's format warm-up."""
    rm_steps = RM.make_reward_model_steps(rm_cfg, txs["rm"], rules)
    ppo_steps = ppo.make_ppo_steps(hyper, logprob_fn=ppo.lm_logprob_fn(actor_cfg, rules),
                                   value_fn=ppo.critic_value_fn(rm_cfg, rules), actor_tx=txs["actor"],
                                   critic_tx=txs["critic"])

    @jax.jit
    def sft_update(actor, seq):
        def loss_fn(params):
            logits = backbone.forward(params, seq["tokens"], actor_cfg, attention_mask=seq["attention"], rules=rules)
            total, count = cross_entropy(logits[:, :-1], seq["tokens"][:, 1:], seq["action_mask"])
            return total / jnp.maximum(count, 1.0)

        loss, grads = jax.value_and_grad(loss_fn)(actor["params"])
        return RM.apply_gradients(txs["sft"], actor, grads), {"sft_loss": loss}

    return {"score": rm_steps["score"], "rm_update": rm_steps["update"], "ppo": ppo_steps, "ppo_config": hyper,
            "sft_update": sft_update}


# ----------------------------------------------------------------------------- rollouts


def sample_summaries(actor_params, actor_cfg: ModelConfig, codec: Codec, examples, rng, *, temperature: float, rules=None):
    """Samples one summary per example with the decoding engine on the actor's own (live) params.
    Returns (prompt ids, completion ids, summaries)."""
    prompts = [codec.prompt_ids(ex) for ex in examples]
    completions = ppo.sample_completions(actor_params, actor_cfg, prompts, rng,
                                         max_new_tokens=codec.shapes.completion_len, temperature=temperature,
                                         stop_token_ids=codec.stop_ids, pad_id=codec.pad_id, rules=rules)
    return prompts, completions, codec.summaries(prompts, completions)


def plus_iteration(state, examples, *, steps, codec: Codec, actor_cfg, oracle, method: str, train_batch: int,
                   rm_batch: int, temperature: float, update_actor: bool = True, rm_epochs: int = 1,
                   diagnostic_reward: Callable[[str, str], float] | None = None, rules=None):
    """One rollout batch of the co-adaptation schedule (docs/plus.md §4). Returns (new state, metrics).

    `rm_epochs` passes of the RM over the batch's (summary, train pair) rows, each in freshly shuffled
    minibatches of `rm_batch` (the spec makes one; more is its fallback when the RM does not learn).

    `diagnostic_reward(summary, user_type)`, when given, replaces the RM's reward in PPO (the RM still
    trains and is scored as usual). It reads the user-type LABEL, so a run using it is a diagnosis of
    PPO (can it learn the summary content from an exact reward at this rollout count?), never PLUS."""
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
    reward = scored["reward"]
    if diagnostic_reward is not None and summaries is not None:
        reward = jnp.asarray([diagnostic_reward(z, ex.user_type) for z, ex in zip(summaries, examples)], jnp.float32)
        metrics["diagnostic_reward"] = float(jnp.mean(reward))
    if method == "plus" and update_actor:
        # 2, 4, 5, 7: experience, shaped rewards + GAE, one PPO epoch, KL controller (core PPO).
        new_state, ppo_metrics = ppo.ppo_iteration(new_state, codec.sequences(prompts, completions), reward,
                                                   ppo_rng, steps=steps["ppo"], minibatch_size=train_batch,
                                                   cfg=steps["ppo_config"])
        metrics.update(ppo_metrics)
    # 6. RM pass(es) on the same summaries (sampled before the PPO update), on the train pair.
    rm, rm_logs = state["rm"], []
    for epoch in range(rm_epochs):
        epoch_rng = rm_rng if epoch == 0 else jax.random.fold_in(rm_rng, epoch)  # epoch 0: the one-pass order
        for index in ppo.minibatch_indices(len(examples), rm_batch, epoch_rng):
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
             batch_size: int, temperature: float = 1.0, controversial: Callable | None = None,
             summary_score: Callable[[str, str], float] | None = None, rules=None) -> dict[str, float]:
    """Held-out RM accuracy `mean 1[r_c > r_r]` (ties are errors) and mean log σ(r_c - r_r) on the eval
    pairs, averaged over `num_samples` summary samples (docs/plus.md §7). Also on the controversial subset.
    For summarizer methods also `summary_exact_match` (sampled summary == the oracle's) and, given
    `summary_score(summary, user_type) -> [0, 1]`, its mean as `summary_score` (analysis only)."""
    correct = np.zeros((num_samples, len(examples)))
    logsig = np.zeros((num_samples, len(examples)))
    matches = np.zeros((num_samples, len(examples)))  # sampled summary == the user type's oracle summary
    scores = np.zeros((num_samples, len(examples)))
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
                if summary_score is not None:
                    scores[s, start : start + len(chunk)] = [summary_score(z, ex.user_type) for z, ex in zip(summaries, chunk)]
            pairs = [ex.eval if ex.eval is not None else ex.reward for ex in chunk]
            rm_inputs = {k: jnp.asarray(v) for k, v in codec.rm_inputs(conditions, pairs).items()}
            scored = steps["score"](state["rm"]["params"], rm_inputs)
            correct[s, start : start + len(chunk)] = np.asarray(scored["r_chosen"] > scored["r_rejected"])
            logsig[s, start : start + len(chunk)] = np.asarray(scored["reward"])
    out = {"accuracy": float(correct.mean()), "accuracy_std_over_samples": float(correct.mean(axis=1).std()),
           "mean_log_sigmoid": float(logsig.mean()), "num_pairs": len(examples)}
    if CONDITIONING[method] == "summarizer" and all(ex.user_type for ex in examples):
        out["summary_exact_match"] = float(matches.mean())
        if summary_score is not None:
            out["summary_score"] = float(scores.mean())
    if controversial is not None:
        keep = np.array([controversial(ex) for ex in examples])
        if keep.any():
            out["accuracy_controversial"] = float(correct[:, keep].mean())
    return out


def reward_gap(rm_params, examples, *, steps, codec: Codec, oracle, wrong: Callable[[str], str], batch_size: int) -> dict:
    """How much the RM's reward depends on summary content: mean log σ(r_c - r_r) on the eval pairs with
    the true summary `oracle(user_type)` minus with the wrong one `oracle(wrong(user_type))`, and the RM's
    accuracy with the true summary. This is the only signal PPO has about what a summary should say: at
    gap 0 every summary earns the same reward and the policy gradient on summary content is zero."""
    true_r, wrong_r, correct = [], [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        pairs = [ex.eval if ex.eval is not None else ex.reward for ex in chunk]
        for summaries, sink in (([oracle(ex.user_type) for ex in chunk], true_r),
                                ([oracle(wrong(ex.user_type)) for ex in chunk], wrong_r)):
            scored = steps["score"](rm_params, {k: jnp.asarray(v) for k, v in codec.rm_inputs(summaries, pairs).items()})
            sink += list(np.asarray(scored["reward"]))
            if sink is true_r:
                correct += list(np.asarray(scored["r_chosen"] > scored["r_rejected"]))
    return {"reward_gap": float(np.mean(true_r) - np.mean(wrong_r)), "true_summary_accuracy": float(np.mean(correct))}
