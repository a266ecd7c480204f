r"""Generic causal-LM trainer: `run(config, workdir) -> results`.

  python -m experiments.run --config configs/lm.py:tiny --workdir /tmp/lm_tiny

Reads top to bottom: multi-host start-up, mesh and rules, data and tokenizer, model, optimizer,
train state (restored from the newest readable checkpoint, else born sharded or loaded from a HF
checkpoint), the step compiled ahead of time with its memory plan, the loop (metrics, eval,
checkpoints, SIGTERM), and the wrap-up (loss plot, results).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax import experiment, flops
from humanai_jax.backbone.params import init_params, param_logical_axes
from humanai_jax.data import (
    TokenWindows,
    generate_corpus,
    load_tokenizer,
    read_text_corpus,
    tokenize_documents,
    train_tokenizer,
)
from humanai_jax.train import optim, runtime as loop, state as state_lib, step as step_lib
from humanai_jax.train.model_block import initial_params, model_config
from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig, TrainTask


def _print(*args):
    if jax.process_index() == 0:
        print(*args, flush=True)


# ============================================================================ data
def build_data(config, workdir: str):
    """(tokenizer, train windows, eval windows or None) from `config.data`."""
    d = config.data
    if d.source == "synthetic":
        docs = generate_corpus(d.num_docs, seed=d.seed)
    elif d.source == "file":
        docs = read_text_corpus(d.path, text_field=d.text_field)
    else:
        raise ValueError(f"data.source must be 'synthetic' or 'file', got {d.source!r}")
    tok_dir = d.tokenizer or config.model.hf_path
    if tok_dir:
        tokenizer = load_tokenizer(tok_dir)
    else:  # train our own BPE once (process 0); later runs and resumes reload the saved one
        tok_dir = os.path.join(workdir, "tokenizer")
        if jax.process_index() == 0 and not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
            train_tokenizer(docs, d.vocab_size, tok_dir)
        if jax.process_count() > 1:  # the other hosts wait for process 0's files (shared workdir)
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("tokenizer")
        tokenizer = load_tokenizer(tok_dir)
    windows = TokenWindows(tokenize_documents(tokenizer, docs), d.seq_len, seed=d.seed)
    train, evals = windows.split(d.eval_fraction)
    return tokenizer, train, evals


# ============================================================================ run
def run(config, workdir: str) -> dict:
    # --- 1. start-up: several hosts? -----------------------------------------------------------
    loop.maybe_initialize_distributed(config.train.distributed)
    loop.quiet_library_info_logs()
    main = loop.is_main_process()
    mesh, rules = loop.mesh_and_rules(config)
    _print(f"Mesh {dict(mesh.shape)} on {jax.device_count()} {jax.devices()[0].platform} devices, "
           f"{jax.process_count()} process(es)")

    with jax.set_mesh(mesh):
        # --- 2. data ------------------------------------------------------------------------------
        tokenizer, train_windows, eval_windows = build_data(config, workdir)
        t = config.train
        batch_size, seq_len = t.batch_size, config.data.seq_len
        _print(f"Data: {train_windows.num_windows} train windows of {seq_len} tokens, "
               f"{eval_windows.num_windows if eval_windows else 0} eval windows; tokenizer {len(tokenizer)} tokens")

        # --- 3. model and optimizer -------------------------------------------------------------
        model_cfg = model_config(config, tokenizer)
        tx, schedule = optim.make_optimizer(config.optim, t.steps)
        step_cfg = step_lib.StepConfig(model=model_cfg, accum_steps=t.grad_accum, loss_chunk=t.loss_chunk, rules=rules)

        # --- 4. the task: state born sharded (or loaded), the step, batches as a function of the step
        abstract_state, state_sh = state_lib.train_state_shardings(
            lambda r: init_params(model_cfg, r), param_logical_axes(model_cfg), tx, rules
        )

        def init(rng):
            params_rng, state_rng = jax.random.split(rng)
            params = initial_params(config, model_cfg, rules, state_sh["params"], params_rng)
            state = jax.jit(
                lambda p, r: state_lib.new_train_state(p, tx, r), out_shardings=state_sh, donate_argnums=0
            )(params, state_rng)
            _print(f"Initialised {'from ' + config.model.hf_path if config.model.hf_path else 'from scratch'}: "
                   f"{sum(x.size for x in jax.tree.leaves(state['params'])):,} parameters")
            return state

        b_sh = loop.batch_sharding(rules)
        step_flops = flops.train_step_flops(model_cfg, batch_size, seq_len)
        task = TrainTask(
            init=init, abstract_state=abstract_state, state_shardings=state_sh,
            step=functools.partial(step_lib.train_step, cfg=step_cfg, tx=tx, schedule=schedule),
            batch_at=lambda step: {"tokens": train_windows.batch(
                step, batch_size, process_index=jax.process_index(), process_count=jax.process_count())},
            abstract_batch={"tokens": jax.ShapeDtypeStruct((batch_size, seq_len + 1), jnp.int32, sharding=b_sh)},
            fingerprint={"seed": config.seed, "data": config.data.to_dict(), "model": model_cfg.identity()},
            tokens_per_step=batch_size * seq_len, flops_per_step=step_flops,
        )
        peak = t.peak_flops * jax.device_count() if t.peak_flops else _default_peak()
        _print(f"Model FLOPs per step {step_flops:.3e} (6N + attention); peak {peak or float('nan'):.3e} FLOP/s")
        trainer = Trainer(
            workdir,
            TrainerConfig(steps=t.steps, seed=config.seed, log_every=t.log_every, progress=t.progress,
                          peak_flops=peak, slow_step_s=t.slow_step_s),
            CheckpointConfig.from_config(config.ckpt),
        )

        # --- 5. evaluation as a hook --------------------------------------------------------------
        eval_step = jax.jit(functools.partial(step_lib.eval_step, cfg=step_cfg),
                            in_shardings=(state_sh["params"], {"tokens": b_sh}))
        if t.eval_every and eval_windows is not None and eval_windows.num_windows < batch_size:
            raise ValueError(f"the eval split has {eval_windows.num_windows} windows of {seq_len} tokens, fewer "
                             f"than one batch ({batch_size}): raise data.num_docs or data.eval_fraction, or set "
                             "train.eval_every=0")
        last_eval = {}

        def evaluate(step: int, state) -> dict:
            total = count = 0.0
            per_host = batch_size // jax.process_count()
            for rows in eval_windows.sequential_batches(batch_size, t.eval_batches):
                local = rows[jax.process_index() * per_host : (jax.process_index() + 1) * per_host]
                s, c = eval_step(state["params"], loop.global_batch({"tokens": local}, b_sh))
                total, count = total + float(s), count + float(c)
            loss = total / count
            last_eval.update(eval_loss=loss, eval_ppl=float(np.exp(min(loss, 50.0))))
            _print(f"step {step}: eval loss {loss:.4f}")
            return dict(last_eval)

        if t.eval_every and eval_windows is not None:
            trainer.add_hook(evaluate, every=t.eval_every)

        # --- 6. train -----------------------------------------------------------------------------
        state, summary = trainer.fit(task)
        step, preempted, last, plan = (summary["final_step"], summary["preempted"], summary["last_metrics"],
                                       summary["memory_plan"])
        ckpt_dir = summary["checkpoint_dir"]

        # --- 7. wrap-up ---------------------------------------------------------------------------
        export_dir = None
        if config.ckpt.export_hf and not preempted:  # a HF dir transformers can load
            from humanai_jax.backbone import save_pretrained

            export_dir = os.path.join(workdir, "hf_export")
            save_pretrained(export_dir, model_cfg, state["params"])  # every process: it gathers per tensor
            if main:
                tokenizer.save_pretrained(export_dir)
        records = experiment.read_metrics(workdir) if main else []
        plot = _plot_losses(records, workdir) if main else None
        train_losses = _last_per_step(records, "loss")
        return {
            "final_step": step,
            "preempted": preempted,
            "first_loss": train_losses[min(train_losses)] if train_losses else None,
            "final_loss": train_losses[max(train_losses)] if train_losses else None,
            **{f"final_{k}": v for k, v in last_eval.items()},
            "tokens_per_s": last.get("tokens_per_s"),
            "mfu": last.get("mfu"),
            "params": int(sum(x.size for x in jax.tree.leaves(abstract_state["params"]))),
            "memory_plan": plan,
            "checkpoint_dir": ckpt_dir,
            "loss_plot": plot,
            "hf_export": export_dir,
        }


def _default_peak() -> float | None:
    """Total peak FLOP/s of the job: vendor bf16 peak × devices, or on CPU the measured fp32 matmul
    peak of the machine (simulated CPU devices share the same cores, so it is not multiplied)."""
    per_device = flops.device_peak_flops()
    if per_device:
        return per_device * jax.device_count()
    if jax.devices()[0].platform == "cpu":
        return flops.measure_matmul_peak(n=1024, repeats=5)
    return None


def _last_per_step(records: list[dict], key: str) -> dict[int, float]:
    """{step: value} keeping the last record per step (a resumed run re-logs steps after its checkpoint)."""
    out = {}
    for r in records:
        if key in r:
            out[r["step"]] = r[key]
    return out


def _plot_losses(records: list[dict], workdir: str) -> str | None:
    train = _last_per_step(records, "loss")
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = sorted(train)
    ax.plot(steps, [train[s] for s in steps], label="train loss")
    evals = _last_per_step(records, "eval_loss")
    if evals:
        es = sorted(evals)
        ax.plot(es, [evals[s] for s in es], "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    path = os.path.join(workdir, "loss.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
