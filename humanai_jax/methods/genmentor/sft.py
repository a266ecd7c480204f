"""SFT of the goal-to-skill model on the shared Trainer (from scratch, or from a HF checkpoint dir).

`train_and_select(config, workdir, data)` trains for `train.steps`, decodes the validation goals every
`train.eval_every` steps (greedy, `JaxChatBackend`), and keeps the parameters of the step with the best
validation F1 (strict, name + level; ties: the earlier step): the number of steps is chosen on validation.
Test goals are decoded once, by the caller, with the selected parameters.

The selected parameters, their step and the validation curve are saved in WORKDIR/best (Orbax + best.json) each
time the selection changes, so a run resumed after training ended (only the last step's checkpoint is kept)
selects the same step and reports the same test numbers as the run that trained.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax.agents import GenConfig
from humanai_jax.checkpoint import abstract_like
from humanai_jax.experiment import write_json
from humanai_jax.methods.genmentor import goal2skill as G

__all__ = ["TrainedModel", "build_tokenizer", "train_and_select", "predict"]


@dataclasses.dataclass
class TrainedModel:
    params: object
    model_cfg: object
    tokenizer: object
    selected_step: int
    val_curve: dict  # {step: {"f1", "f1_strict", "valid_rate"}}
    summary: dict


def build_tokenizer(config, workdir: str, train: list[dict]):
    """The HF checkpoint's tokenizer (`model.hf_path`, must have a chat template), else a BPE trained on the
    training conversations only (saved in WORKDIR/tokenizer and reloaded on resume)."""
    from humanai_jax.data.tokenizer import given_or_trained

    return given_or_trained(config.model.hf_path, os.path.join(workdir, "tokenizer"),
                            lambda out: G.chat_tokenizer([m["content"] for s in train
                                                          for m in G.sft_messages(s, config.data.tracks)],
                                                         config.data.vocab_size, out),
                            chat=True)


def predict(backend, goals: list[str], max_new_tokens: int, seed: int) -> tuple[list[list[dict]], list[str], int]:
    """Greedy replies to the mapper prompt for each goal: (parsed skills, raw texts, number of invalid replies)."""
    results = backend.chat_batch([G.prompt_messages(g) for g in goals],
                                 GenConfig(temperature=0.0, max_tokens=max_new_tokens, seed=seed),
                                 tags=["goal2skill"] * len(goals))
    texts = [r.text for r in results]
    parsed = [G.parse_prediction(t) for t in texts]
    return [p for p, _ in parsed], texts, sum(not ok for _, ok in parsed)


def train_and_select(config, workdir: str, train: list[dict], val: list[dict]) -> TrainedModel:
    from humanai_jax.agents.jax_backend import JaxChatBackend
    from humanai_jax.backbone.params import init_params, param_logical_axes
    from humanai_jax.train import optim, runtime as loop, state as state_lib, step as step_lib
    from humanai_jax.train.model_block import initial_params, model_config
    from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig, TrainTask

    d, t = config.data, config.train
    mesh, rules = loop.mesh_and_rules(config)
    with jax.set_mesh(mesh):
        tokenizer = build_tokenizer(config, workdir, train)
        encoded = [G.encode_sft(tokenizer, G.sft_messages(s, d.tracks)) for s in train]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        rows = G.pad_rows(encoded, d.seq_len + 1, pad)
        model_cfg = model_config(config, tokenizer)
        tx, schedule = optim.make_optimizer(config.optim, t.steps)
        step_cfg = step_lib.StepConfig(model=model_cfg, rules=rules)
        abstract_state, state_sh = state_lib.train_state_shardings(
            lambda r: init_params(model_cfg, r), param_logical_axes(model_cfg), tx, rules)

        def init(rng):
            params_rng, state_rng = jax.random.split(rng)
            params = initial_params(config, model_cfg, rules, state_sh["params"], params_rng)
            return jax.jit(lambda p, r: state_lib.new_train_state(p, tx, r), out_shardings=state_sh,
                           donate_argnums=0)(params, state_rng)

        b_sh = loop.batch_sharding(rules)
        n = len(encoded)

        def batch_at(step: int) -> dict[str, np.ndarray]:
            idx = G.batch_indices(n, t.batch_size, step, d.seed)
            return {k: v[idx] for k, v in rows.items()}

        task = TrainTask(
            init=init, abstract_state=abstract_state, state_shardings=state_sh,
            step=functools.partial(step_lib.train_step, cfg=step_cfg, tx=tx, schedule=schedule), batch_at=batch_at,
            abstract_batch={"tokens": jax.ShapeDtypeStruct((t.batch_size, d.seq_len + 1), jnp.int32, sharding=b_sh),
                            "mask": jax.ShapeDtypeStruct((t.batch_size, d.seq_len + 1), jnp.float32, sharding=b_sh)},
            fingerprint={"seed": config.seed, "data": d.to_dict(), "model": model_cfg.identity(),
                         "n_train": n}, tokens_per_step=t.batch_size * (d.seq_len + 1))
        trainer = Trainer(workdir, TrainerConfig(steps=t.steps, seed=config.seed, log_every=t.log_every,
                                                 progress=False, tensorboard=False),
                          CheckpointConfig(dir=config.ckpt.dir, every=config.ckpt.every, keep=config.ckpt.keep,
                                           async_save=False, resume=config.ckpt.resume))
        best = {"step": -1, "key": (-1.0, -1.0), "params": None}
        curve: dict = {}
        val_goals = [s["goal"] for s in val]

        best_dir = os.path.join(workdir, "best")

        def save_best(params_changed: bool) -> None:
            os.makedirs(best_dir, exist_ok=True)
            if params_changed:
                import orbax.checkpoint as ocp

                with ocp.StandardCheckpointer() as ckptr:
                    ckptr.save(os.path.abspath(os.path.join(best_dir, "params")), best["params"], force=True)
                    ckptr.wait_until_finished()
            write_json(os.path.join(best_dir, "best.json"), {"step": best["step"], "key": list(best["key"]),
                                                              "curve": {str(k): v for k, v in curve.items()}})

        def evaluate(step: int, state) -> dict:
            backend = JaxChatBackend(state["params"], model_cfg, tokenizer, max_batch=config.eval.batch)
            preds, _, invalid = predict(backend, val_goals, config.eval.max_new_tokens, config.seed)
            agg = G.score(preds, val, n_resamples=0)[0]
            curve[step] = {"f1": agg["f1"], "f1_strict": agg["f1_strict"], "valid_rate": 1 - invalid / len(val)}
            key = (agg["f1_strict"], agg["f1"])
            improved = key > best["key"]  # strictly better only: ties keep the earlier (shorter) run
            if improved:
                best.update(step=step, key=key, params=jax.device_get(state["params"]))
            save_best(improved)
            print(f"step {step}: val F1 {agg['f1']:.3f} strict {agg['f1_strict']:.3f} "
                  f"valid {curve[step]['valid_rate']:.2f}", flush=True)
            return {"val_f1": agg["f1"], "val_f1_strict": agg["f1_strict"]}

        trainer.add_hook(evaluate, every=t.eval_every)
        state, summary = trainer.fit(task)
        if best["params"] is None:  # resumed at the last step: no hook ran; the selection is on disk
            if os.path.exists(os.path.join(best_dir, "best.json")):
                _restore_best(best_dir, best, curve, state["params"])
            else:  # a workdir from before WORKDIR/best existed: only the last step can be evaluated
                evaluate(summary["final_step"], state)
        params = jax.device_put(best["params"], state_sh["params"])
    return TrainedModel(params, model_cfg, tokenizer, best["step"], curve,
                        {"final_step": summary["final_step"], "final_train_loss": summary["last_metrics"].get("loss"),
                         "n_params": int(sum(x.size for x in jax.tree.leaves(params))),
                         "max_tokens": int(max(len(e[0]) for e in encoded))})


def _restore_best(best_dir: str, best: dict, curve: dict, like) -> None:
    """Fills `best` and `curve` from WORKDIR/best (the parameters restored with `like`'s shapes and shardings)."""
    import json

    import orbax.checkpoint as ocp

    with open(os.path.join(best_dir, "best.json")) as f:
        saved = json.load(f)
    with ocp.StandardCheckpointer() as ckptr:
        params = ckptr.restore(os.path.abspath(os.path.join(best_dir, "params")), abstract_like(like))
    best.update(step=saved["step"], key=tuple(saved["key"]), params=jax.device_get(params))
    curve.update({int(k): v for k, v in saved["curve"].items()})
    print(f"resumed: the validation-selected step {saved['step']} restored from {best_dir}", flush=True)
