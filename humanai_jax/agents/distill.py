"""Distil a teacher `ChatBackend` into a small LM trained from scratch here, then serve it in process.

Used for the *plumbing* runs of multi-agent methods (NAMeGEn, GenMentor): the teacher (e.g. a method's scripted
plumbing model) answers the method's own agent prompts; `CapturingBackend` records every (messages, reply) pair;
`train_student` trains a byte-level BPE and a tiny Qwen2-style LM from scratch on those pairs (loss on the reply
only) with the shared `Trainer`, cached in `out_dir` (a resumed run restores the final checkpoint and does not
retrain); `StudentBackend` serves it with `JaxChatBackend`. The student shows that a pipeline runs end to end on
our own model; it is not a quality claim.

Context: every prompt (train and serve alike, same function) is rendered as one user turn holding the call's agent
tag and the tail of the `role: content` lines, cut to `max_prompt_tokens` tokens from the left (`fit_messages`).
The cut is counted (`StudentBackend.n_truncated`; `train_student` summary `n_prompt_truncated`,
`n_reply_truncated` for replies cut to `max_reply_tokens`), never silent.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Sequence

import numpy as np

from humanai_jax.agents.backend import ChatResult, GenConfig

__all__ = ["CapturingBackend", "StudentBackend", "DistillConfig", "fit_messages", "train_student", "CHATML_TEMPLATE"]

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
    " + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


class CapturingBackend:
    """Wraps a backend; `pairs` gets `{"tag", "messages", "reply"}` for every choice of every call (in call order).

    `compact_json=True`: a reply to a call with a `response_format` that parses as JSON is stored in the form our
    JSON-constrained decoder writes (`json_constraint.canonical_document`: compact; under a schema, keys in declared
    order and absent optional properties filled), so a student that will decode under those constraints is trained
    on byte sequences the constraint allows. A reply with no such form is kept as written."""

    def __init__(self, inner, *, compact_json: bool = False):
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.compact_json = compact_json
        self.pairs: list[dict] = []

    def _stored(self, text: str, cfg: GenConfig) -> str:
        if not self.compact_json or cfg.response_format is None:
            return text
        try:
            doc = json.loads(text)
        except ValueError:  # not a bare JSON document: kept as written
            return text
        if cfg.response_format == "json":
            return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        from humanai_jax.decoding.json_constraint import canonical_document

        # under a schema the decoder writes keys in declared order and every declared property: the same here
        return canonical_document(doc, cfg.response_format) or text

    def chat(self, messages, cfg: GenConfig, *, tag: str = "") -> ChatResult:
        return self.chat_batch([messages], cfg, tags=[tag])[0]

    def chat_batch(self, batch, cfg: GenConfig, *, tags=None) -> list[ChatResult]:
        results = self.inner.chat_batch(batch, cfg, tags=tags)
        for i, (messages, res) in enumerate(zip(batch, results)):
            for text in res.texts:
                self.pairs.append({"tag": (tags or [""] * len(batch))[i], "messages": [dict(m) for m in messages],
                                   "reply": self._stored(text, cfg)})
        return results


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """The student: a tiny model from scratch, BPE of `vocab_size`, rows of `max_prompt_tokens + max_reply_tokens`."""
    vocab_size: int = 2048
    max_prompt_tokens: int = 192
    max_reply_tokens: int = 320
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    mlp_dim: int = 384
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    seed: int = 0


def fit_messages(tokenizer, messages: Sequence[dict], max_prompt_tokens: int, tag: str = "") -> tuple[list[dict], bool]:
    """(one user message: `[tag]` line + the last `max_prompt_tokens` tokens of the `role: content` lines, cut?).
    The agent tag (part of every backend call) names the agent even when the cut drops its instructions."""
    text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    head = f"[{tag}]\n" if tag else ""
    if len(ids) <= max_prompt_tokens:
        return [{"role": "user", "content": head + text}], False
    return [{"role": "user", "content": head + tokenizer.decode(ids[-max_prompt_tokens:])}], True


def _tokenizer(pairs: Sequence[dict], cfg: DistillConfig, out_dir: str):
    from humanai_jax.data.tokenizer import given_or_trained, train_tokenizer

    def train(path: str):
        texts = [m["content"] for p in pairs for m in p["messages"]] + [p["reply"] for p in pairs] + \
            [p.get("tag", "") for p in pairs]
        tok = train_tokenizer(texts, cfg.vocab_size, path)
        tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        tok.chat_template = CHATML_TEMPLATE
        tok.save_pretrained(path)
        return tok

    return given_or_trained("", os.path.join(out_dir, "tokenizer"), train, chat=True)


def encode_pair(tokenizer, pair: dict, cfg: DistillConfig) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """(tokens int32 [L], mask float32 [L] = 1 on the reply and its end-of-turn, prompt cut?, reply cut?)."""
    msgs, cut = fit_messages(tokenizer, pair["messages"], cfg.max_prompt_tokens, pair.get("tag", ""))
    prompt = tokenizer(tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    reply = tokenizer(pair["reply"], add_special_tokens=False)["input_ids"]
    reply_cut = len(reply) + 1 > cfg.max_reply_tokens
    reply = reply[:cfg.max_reply_tokens - 1] + [end]
    tokens = np.asarray(prompt + reply, np.int32)
    mask = np.zeros(len(tokens), np.float32)
    mask[len(prompt):] = 1.0
    return tokens, mask, cut, reply_cut


def _model_config(cfg: DistillConfig, steps: int):
    import ml_collections

    from humanai_jax import configs

    c = ml_collections.ConfigDict()
    c.seed = cfg.seed
    c.model = configs.model_block(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                  n_kv_heads=cfg.n_kv_heads, mlp_dim=cfg.mlp_dim)
    c.mesh = configs.mesh_block(fsdp=1)
    c.rules = configs.rules_block()
    c.optim = configs.optim_block(lr=cfg.lr, warmup_steps=min(30, max(steps // 10, 1)), weight_decay=0.0,
                                  end_lr_frac=0.05)
    return c


def train_student(pairs: Sequence[dict], out_dir: str, cfg: DistillConfig, *, name: str = "student"):
    """`(StudentBackend, summary)`: a model trained from scratch on `pairs` for `cfg.steps` steps. `out_dir` holds
    the tokenizer, the trainer's checkpoint and `distill_data.jsonl` (the pairs); a second call with the same
    out_dir restores the final checkpoint (no training step runs) and returns `summary["resumed"] = True`."""
    import jax
    import jax.numpy as jnp

    from humanai_jax.agents.jax_backend import JaxChatBackend
    from humanai_jax.backbone.params import init_params, param_logical_axes
    from humanai_jax.train import optim, runtime as loop, state as state_lib, step as step_lib
    from humanai_jax.train.model_block import initial_params, model_config
    from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig, TrainTask

    if not pairs:
        raise ValueError("train_student: no (messages, reply) pairs to train on")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "distill_data.jsonl"), "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    config = _model_config(cfg, cfg.steps)
    mesh, rules = loop.mesh_and_rules(config)
    with jax.set_mesh(mesh):
        tokenizer = _tokenizer(pairs, cfg, out_dir)
        encoded = [encode_pair(tokenizer, p, cfg) for p in pairs]
        # a cut prompt may re-tokenise a few tokens longer, plus the template's turn tokens: rows fit the longest
        row_len = max(len(e[0]) for e in encoded)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        tokens = np.full((len(encoded), row_len), pad, np.int32)
        mask = np.zeros((len(encoded), row_len), np.float32)
        for i, (t, m, _, _) in enumerate(encoded):
            tokens[i, :len(t)], mask[i, :len(m)] = t, m
        model_cfg = model_config(config, tokenizer)
        tx, schedule = optim.make_optimizer(config.optim, cfg.steps)
        step_cfg = step_lib.StepConfig(model=model_cfg, rules=rules)
        abstract_state, state_sh = state_lib.train_state_shardings(
            lambda r: init_params(model_cfg, r), param_logical_axes(model_cfg), tx, rules)

        def init(rng):
            params_rng, state_rng = jax.random.split(rng)
            params = initial_params(config, model_cfg, rules, state_sh["params"], params_rng)
            return jax.jit(lambda p, r: state_lib.new_train_state(p, tx, r), out_shardings=state_sh,
                           donate_argnums=0)(params, state_rng)

        n = len(encoded)

        def batch_at(step: int) -> dict[str, np.ndarray]:
            idx = np.random.default_rng([cfg.seed, step]).integers(0, n, cfg.batch_size)
            return {"tokens": tokens[idx], "mask": mask[idx]}

        b_sh = loop.batch_sharding(rules)
        shape = (cfg.batch_size, row_len)
        task = TrainTask(
            init=init, abstract_state=abstract_state, state_shardings=state_sh,
            step=functools.partial(step_lib.train_step, cfg=step_cfg, tx=tx, schedule=schedule), batch_at=batch_at,
            abstract_batch={"tokens": jax.ShapeDtypeStruct(shape, jnp.int32, sharding=b_sh),
                            "mask": jax.ShapeDtypeStruct(shape, jnp.float32, sharding=b_sh)},
            fingerprint={"distill": dataclasses.asdict(cfg), "model": model_cfg.identity(), "n_pairs": n},
            tokens_per_step=cfg.batch_size * row_len)
        steps_run = []
        trainer = Trainer(out_dir, TrainerConfig(steps=cfg.steps, seed=cfg.seed, log_every=max(cfg.steps // 5, 1),
                                                 progress=False, tensorboard=False),
                          CheckpointConfig(dir=os.path.join(out_dir, "checkpoints"), every=0, keep=1,
                                           async_save=False, resume=True))
        trainer.add_hook(lambda step, state: steps_run.append(step) or {}, every=1)
        state, summary = trainer.fit(task)
        params = state["params"]
    backend = StudentBackend(JaxChatBackend(params, model_cfg, tokenizer, name=name, max_batch=16,
                                            default_seed=cfg.seed), cfg)
    info = {"n_pairs": n, "n_prompt_truncated": sum(e[2] for e in encoded),
            "n_reply_truncated": sum(e[3] for e in encoded), "steps": cfg.steps,
            "row_len": row_len, "final_step": summary["final_step"], "final_train_loss": summary["last_metrics"].get("loss"),
            "resumed": not steps_run, "n_params": int(sum(x.size for x in jax.tree.leaves(params))),
            "config": dataclasses.asdict(cfg)}
    return backend, info


class StudentBackend:
    """Serves a `JaxChatBackend` with the prompts cut as in training (`fit_messages`) and `max_tokens` capped at
    `max_reply_tokens`; `n_calls` / `n_truncated` count the calls and the prompts that were cut."""

    def __init__(self, inner, cfg: DistillConfig):
        self.inner, self.cfg = inner, cfg
        self.name = f"{inner.name}(in-process JAX)"
        self.n_calls = self.n_truncated = 0

    def chat(self, messages, cfg: GenConfig, *, tag: str = "") -> ChatResult:
        return self.chat_batch([messages], cfg, tags=[tag])[0]

    def chat_batch(self, batch, cfg: GenConfig, *, tags=None) -> list[ChatResult]:
        tags = list(tags or [""] * len(batch))
        fitted = [fit_messages(self.inner.tokenizer, m, self.cfg.max_prompt_tokens, t) for m, t in zip(batch, tags)]
        self.n_calls += len(batch)
        self.n_truncated += sum(cut for _, cut in fitted)
        gen = cfg.replace(max_tokens=min(cfg.max_tokens, self.cfg.max_reply_tokens))
        return self.inner.chat_batch([m for m, _ in fitted], gen, tags=tags)


def call_outcomes(trace_path: str, max_attempts: int) -> dict:
    """Agent calls of a traces.jsonl by outcome: parsed at the first attempt, parsed after repair, or given up
    (a parse error at attempt `max_attempts`); `other` counts calls traced without a repair loop (text-only
    calls, judge calls parsed downstream); `backends`: model calls per backend name."""
    import json

    out = {"first_time": 0, "after_repair": 0, "gave_up": 0, "other": 0, "backends": {}}
    with open(trace_path, encoding="utf-8") as f:
        for rec in map(json.loads, f):
            if rec.get("type") != "llm_call":
                continue
            out["backends"][rec["backend"]] = out["backends"].get(rec["backend"], 0) + 1
            ok, attempt = rec.get("parse_error") is None, rec.get("attempt")
            if attempt is None or (ok and rec.get("parsed") is None):
                out["other"] += 1
            elif ok:
                out["first_time" if attempt == 1 else "after_repair"] += 1
            elif attempt >= max_attempts:
                out["gave_up"] += 1
    return out
