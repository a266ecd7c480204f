r"""Generic causal-LM trainer: `run(config, workdir) -> results`.

  python -m experiments.run --config configs/lm.py:tiny --workdir /tmp/lm_tiny

Reads top to bottom: multi-host start-up, mesh and rules, data and tokenizer, model, optimizer,
train state (restored from the newest readable checkpoint, else born sharded or loaded from a HF
checkpoint), the step compiled ahead of time with its memory plan, the loop (metrics, eval,
checkpoints, SIGTERM), and the wrap-up (loss plot, results).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from humanai_jax import checkpoint as ckpt_lib
from humanai_jax import experiment, flops
from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.params import init_params, param_logical_axes
from humanai_jax.data import TokenWindows, generate_corpus, load_tokenizer, read_text_corpus, tokenize_documents, train_tokenizer
from humanai_jax.train import runtime as loop, optim, state as state_lib, step as step_lib


def _print(*args):
    if jax.process_index() == 0:
        print(*args, flush=True)


def _git_hash() -> str:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:  # not a git checkout (installed package)
        return ""


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


# ============================================================================ model
def model_config(config, tokenizer) -> ModelConfig:
    """ModelConfig from `config.model`: a HF `config.json` when `hf_path` is set, else a fresh one."""
    m = config.model
    own = dict(dtype=m.dtype, param_dtype=m.param_dtype, scan_layers=m.scan_layers, remat=m.remat)
    if m.hf_path:
        with open(os.path.join(m.hf_path, "config.json")) as f:
            return ModelConfig.from_hf_dict(json.load(f), **own)
    vocab = m.vocab_size or -(-len(tokenizer) // 128) * 128  # pad to a multiple of 128 (shards evenly)
    if vocab < len(tokenizer):
        raise ValueError(f"model.vocab_size={vocab} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    return ModelConfig.small(
        vocab_size=vocab, d_model=m.d_model, n_layers=m.n_layers, n_heads=m.n_heads, n_kv_heads=m.n_kv_heads,
        head_dim=m.head_dim or None, mlp_dim=m.mlp_dim, model_type=m.family, tie_embeddings=m.tie_embeddings,
        eos_token_id=tokenizer.eos_token_id, **own,
    )


def initial_params(config, model_cfg: ModelConfig, rules, params_shardings, rng):
    """Fresh parameters born sharded (`jit(init, out_shardings)`), or a HF checkpoint loaded onto the mesh."""
    if config.model.hf_path:
        from humanai_jax.backbone import load_pretrained

        loaded_cfg, params = load_pretrained(config.model.hf_path, dtype=model_cfg.params_dtype, mesh=rules.mesh, rules=rules)
        if (loaded_cfg.vocab_size, loaded_cfg.d_model, loaded_cfg.n_layers) != (
            model_cfg.vocab_size, model_cfg.d_model, model_cfg.n_layers
        ):
            raise ValueError(f"{config.model.hf_path}: loaded config {loaded_cfg} does not match {model_cfg}")
        return jax.device_put(params, params_shardings)
    return jax.jit(functools.partial(init_params, model_cfg), out_shardings=params_shardings)(rng)


# ============================================================================ run
def run(config, workdir: str) -> dict:
    # --- 1. start-up: several hosts? -----------------------------------------------------------
    loop.maybe_initialize_distributed(config.train.distributed)
    loop.quiet_library_info_logs()
    main = loop.is_main_process()
    metrics_log = experiment.MetricsLog(workdir, enabled=main)
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

        # --- 4. train state: abstract shapes + shardings, then restore or create ------------------
        abstract_state, state_sh = state_lib.train_state_shardings(
            lambda r: init_params(model_cfg, r), param_logical_axes(model_cfg), tx, rules
        )
        ckpt_dir = config.ckpt.dir or os.path.join(workdir, "checkpoints")
        checkpointer = ckpt_lib.Checkpointer(
            ckpt_dir, max_to_keep=config.ckpt.keep, save_interval_steps=config.ckpt.every,
            async_save=config.ckpt.async_save,
        )
        start_step, state, meta = (None, None, None)
        if config.ckpt.resume:
            start_step, state, meta = checkpointer.restore_latest(abstract_state)
        if state is None:
            start_step = 0
            params_rng, state_rng = jax.random.split(jax.random.PRNGKey(config.seed))
            params = initial_params(config, model_cfg, rules, state_sh["params"], params_rng)
            state = jax.jit(
                lambda p, r: state_lib.new_train_state(p, tx, r), out_shardings=state_sh, donate_argnums=0
            )(params, state_rng)
            _print(f"Initialised {'from ' + config.model.hf_path if config.model.hf_path else 'from scratch'}: "
                   f"{sum(x.size for x in jax.tree.leaves(state['params'])):,} parameters")
        else:
            if meta.get("data_position") != start_step or meta.get("data_seed") != config.data.seed:
                raise ValueError(f"checkpoint {start_step} was written for data position/seed {meta}; "
                                 f"this run expects position {start_step}, seed {config.data.seed}")
            _print(f"Resumed from checkpoint {start_step} in {ckpt_dir}")

        # --- 5. compile the step ahead of time; print its memory plan ---------------------------
        b_sh = loop.batch_sharding(rules)
        abstract_batch = {"tokens": jax.ShapeDtypeStruct((batch_size, seq_len + 1), jnp.int32, sharding=b_sh)}
        train_step = jax.jit(
            functools.partial(step_lib.train_step, cfg=step_cfg, tx=tx, schedule=schedule),
            in_shardings=(state_sh, {"tokens": b_sh}), out_shardings=(state_sh, None), donate_argnums=0,
        )
        compiled = train_step.lower(abstract_state, abstract_batch).compile()
        plan = loop.memory_plan(abstract_state, compiled)
        _print(loop.format_memory_plan(plan))
        eval_step = jax.jit(functools.partial(step_lib.eval_step, cfg=step_cfg), in_shardings=(state_sh["params"], {"tokens": b_sh}))

        step_flops = flops.train_step_flops(model_cfg, batch_size, seq_len)
        peak = t.peak_flops * jax.device_count() if t.peak_flops else _default_peak()
        _print(f"Model FLOPs per step {step_flops:.3e} (6N + attention), compiled step FLOPs "
               f"{plan.get('compiled_flops_per_step_per_device', float('nan')):.3e} per device; peak {peak or float('nan'):.3e} FLOP/s")

        def batch_at(step: int):
            local = train_windows.batch(step, batch_size, process_index=jax.process_index(), process_count=jax.process_count())
            return loop.global_batch({"tokens": local}, b_sh)

        def evaluate() -> dict:
            if eval_windows is None:
                return {}
            total = count = 0.0
            per_host = batch_size // jax.process_count()
            for rows in eval_windows.sequential_batches(batch_size, t.eval_batches):
                local = rows[jax.process_index() * per_host : (jax.process_index() + 1) * per_host]
                s, c = eval_step(state["params"], loop.global_batch({"tokens": local}, b_sh))
                total, count = total + float(s), count + float(c)
            loss = total / max(count, 1.0)
            return {"eval_loss": loss, "eval_ppl": float(np.exp(min(loss, 50.0)))}

        def save(step: int, force: bool = False):
            meta = {"data_position": step, "data_seed": config.data.seed, "git": _git_hash(),
                    "config": json.loads(config.to_json_best_effort())}
            return checkpointer.save(step, state, meta, force=force)

        # --- 6. the loop --------------------------------------------------------------------------
        step, pending, preempted, last_eval = start_step, [], False, {}
        throughput = loop.Throughput(step_flops, batch_size * seq_len, peak)
        bar = _progress(t, start_step, main)

        def flush():
            """One host sync per log interval: write every pending step's metrics."""
            speed = throughput.read()
            values = jax.device_get([m for _, m in pending])
            record = {}
            for i, ((s, _), m) in enumerate(zip(pending, values)):
                record = {k: float(v) for k, v in m.items()}
                if i == len(pending) - 1:
                    record.update(speed)
                metrics_log.write(s, **record)
            if bar is not None and record:
                bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{speed['tokens_per_s']:.0f}")
            pending.clear()
            return record

        last = {}
        with loop.PreemptionGuard() as guard:
            while step < t.steps:
                batch = batch_at(step)
                state, metrics = compiled(state, batch)  # donates the old state
                step += 1
                pending.append((step, metrics))
                throughput.tick()
                if bar is not None:
                    bar.update(1)
                if t.slow_step_s:  # simulates a slow step (preemption tests)
                    time.sleep(t.slow_step_s)
                if step % t.log_every == 0 or step == t.steps:
                    last = flush()
                if t.eval_every and (step % t.eval_every == 0 or step == t.steps):
                    last_eval = evaluate()
                    if last_eval:
                        metrics_log.write(step, **last_eval)
                        _print(f"step {step}: eval loss {last_eval['eval_loss']:.4f}")
                if config.ckpt.every and step % config.ckpt.every == 0:
                    save(step, force=True)
                if guard.should_stop(step, checkpointer):
                    if pending:
                        last = flush()
                    save(step, force=True)
                    checkpointer.wait()
                    _print(f"Preempted: saved checkpoint {step}, exiting")
                    preempted = True
                    break
            checkpointer.wait()  # an async save of this very step may still be finalising
            if step not in checkpointer.all_steps() and not preempted:
                save(step, force=True)
            checkpointer.close()
        if bar is not None:
            bar.close()

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


def _progress(t, start_step: int, enabled: bool):
    if not enabled or not t.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=t.steps, initial=start_step, desc="train", dynamic_ncols=True)


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
