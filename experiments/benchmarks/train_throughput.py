r"""Training throughput: our backbone + train step (JAX) vs transformers + torch, same model, same batch.

  python -m experiments.benchmarks.train_throughput            # the issue's config (CPU, float32)
  python -m experiments.benchmarks.train_throughput --layers 2 --seq 128 --steps 2   # quick smoke run

Model: Qwen2-style, 8 layers, hidden 512, 8 heads, 2 KV heads, intermediate 1408, vocab 8192 (untied
head, q/k/v biases); batch 8 x seq 512; float32; AdamW; one full optimizer step per iteration
(forward, backward, update). Both sides run in this process, interleaved in rounds (ours, torch,
ours, torch, ...) so machine load hits both alike; each side's time is its best round. Prints
tokens/s for each, the ratio, and our fraction of the machine's fp32 matmul peak (measured with a
big `jnp` matmul), counting model FLOPs as 6N + attention (causal halved; humanai_jax/flops.py) and also with
the full (unmasked) score matmuls that both implementations actually execute.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from humanai_jax import flops, host
from humanai_jax.backbone import ModelConfig, init_params
from humanai_jax.train import step as step_lib
from humanai_jax.train.state import new_train_state


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=1408)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=3, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--peak-n", type=int, default=2048, help="matmul size for the peak measurement")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="compute dtype; bfloat16 = mixed precision on both sides (f32 params, bf16 "
                        "matmuls: our config.dtype, torch autocast)")
    p.add_argument("--attention", default="xla", choices=["xla", "cudnn", "jax"],
                   help="our attention kernel (ModelConfig.attention_impl); torch uses its default (sdpa)")
    p.add_argument("--remat", default="none", choices=["none", "full", "dots"], help="our remat policy")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--profile", default="", metavar="DIR",
                   help="after the timed rounds, profile one more step of each side (jax.profiler joined with "
                        "the HLO's source locations; torch.profiler) and print where the time goes; traces "
                        "and profile.json go to DIR")
    return p.parse_args()


def ours(cfg: ModelConfig, tokens: np.ndarray):
    """Returns step() -> seconds for one jitted, donated train step (our backbone)."""
    tx = optax.adamw(learning_rate=1e-4, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.0)
    state = jax.jit(lambda r: new_train_state(init_params(cfg, r), tx, r))(jax.random.PRNGKey(0))
    step = jax.jit(functools.partial(step_lib.train_step, cfg=step_lib.StepConfig(model=cfg), tx=tx), donate_argnums=0)
    batch = {"tokens": jnp.asarray(tokens)}
    holder = {"state": state}

    def run() -> float:
        start = time.perf_counter()
        holder["state"], metrics = step(holder["state"], batch)
        jax.block_until_ready((holder["state"], metrics))
        return time.perf_counter() - start

    run.hlo_text = lambda: step.lower(holder["state"], batch).compile().as_text()
    return run


def theirs(cfg: ModelConfig, tokens: np.ndarray, dtype: str):
    """Returns step() -> seconds for one transformers Qwen2ForCausalLM + torch AdamW step, on CUDA
    when torch sees a GPU (the device JAX uses then too), else on the CPU."""
    import contextlib

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process may use
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    hf_cfg = Qwen2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.mlp_dim,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_kv_heads,
        tie_word_embeddings=False, max_position_embeddings=max(4096, tokens.shape[1]),
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(hf_cfg).float().train().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    inputs = torch.tensor(tokens[:, :-1], dtype=torch.long, device=device)
    labels = torch.tensor(tokens[:, 1:], dtype=torch.long, device=device)
    autocast = (torch.autocast(device, dtype=torch.bfloat16) if dtype == "bfloat16"
                else contextlib.nullcontext())

    def run() -> float:
        start = time.perf_counter()
        with autocast:
            logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - start

    return run, getattr(model.config, "_attn_implementation", "?")


# torch ops (self CPU time) grouped for the side-by-side breakdown; first matching prefix wins
TORCH_GROUPS = (
    ("attention kernel (sdpa fwd+bwd)", ("aten::_scaled_dot_product", "aten::scaled_dot_product",
                                         "aten::_flash_attention", "aten::_efficient_attention")),
    ("matmul (projections, LM head)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("cross-entropy / softmax", ("aten::_log_softmax", "aten::log_softmax", "aten::nll_loss", "aten::cross_entropy",
                                 "aten::_softmax", "aten::softmax")),
    ("optimizer (AdamW)", ("aten::_foreach", "aten::_fused_adam", "aten::lerp", "aten::addcdiv", "aten::addcmul")),
    ("copies / layout", ("aten::copy_", "aten::clone", "aten::contiguous", "aten::cat", "aten::index",
                         "aten::embedding", "aten::_to_copy", "aten::zero_", "aten::fill_", "aten::empty")),
    ("elementwise / reductions (norms, RoPE, SiLU, residuals)", ("aten::",)),
)


def _torch_group(name: str) -> str:
    for group, prefixes in TORCH_GROUPS:
        if name.startswith(prefixes):
            return group
    return "other (autograd, python)"


def profile_sides(sides: dict, outdir: str) -> dict:
    """One profiled step per side: {side: {"wall_s", "op_s", "rows": [(label, seconds)]}}, printed."""
    from humanai_jax import profiling

    os.makedirs(outdir, exist_ok=True)
    out = {}
    run = sides["ours (JAX)"]
    log_dir = os.path.join(outdir, "jax_trace")
    with jax.profiler.trace(log_dir, create_perfetto_trace=True):
        wall = run()
    table = profiling.breakdown(profiling.op_times(log_dir), profiling.op_sources(run.hlo_text()))
    rows = sorted(((f"{kind}: {label}", sec) for (kind, label), sec in table.items()), key=lambda r: -r[1])
    out["ours (JAX)"] = {"wall_s": wall, "op_s": sum(table.values()), "rows": rows}
    if "transformers+torch" in sides:
        import torch

        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            wall = sides["transformers+torch"]()
        prof.export_chrome_trace(os.path.join(outdir, "torch_trace.json"))
        groups: dict[str, float] = {}
        for e in prof.key_averages():
            groups[_torch_group(e.key)] = groups.get(_torch_group(e.key), 0.0) + e.self_cpu_time_total * 1e-6
        rows = sorted(groups.items(), key=lambda r: -r[1])
        out["transformers+torch"] = {"wall_s": wall, "op_s": sum(groups.values()), "rows": rows}
    for side, r in out.items():
        print(f"\n{side}: one profiled step {r['wall_s']:.3f} s wall; op time {r['op_s']:.3f} s "
              f"({'summed over the threads that ran ops' if side.startswith('ours') else 'self CPU time of each op'})")
        for label, sec in r["rows"][:18]:
            print(f"  {sec:8.3f} s  {sec / r['op_s']:6.1%}  {label}")
    with open(os.path.join(outdir, "profile.json"), "w") as f:
        json.dump(out, f, indent=1)
    return out


def main():
    args = parse_args()
    cfg = ModelConfig.small(
        vocab_size=args.vocab, d_model=args.hidden, n_layers=args.layers, n_heads=args.heads,
        n_kv_heads=args.kv_heads, mlp_dim=args.intermediate, model_type="qwen2", tie_embeddings=False,
        max_position_embeddings=max(4096, args.seq), dtype=args.dtype, param_dtype="float32",
        attention_impl=args.attention, remat=args.remat,
    )
    tokens = np.random.default_rng(0).integers(0, args.vocab, size=(args.batch, args.seq + 1)).astype(np.int32)
    tokens_per_step = args.batch * args.seq
    model_flops = flops.train_step_flops(cfg, args.batch, args.seq, causal=True)
    executed_flops = flops.train_step_flops(cfg, args.batch, args.seq, causal=False)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; jax {jax.__version__} on {jax.devices()[0].device_kind}")
    peak = flops.measure_matmul_peak(n=args.peak_n, dtype=args.dtype)
    print(f"measured {args.dtype} matmul peak ({args.peak_n}^3 jnp matmul): {peak / 1e9:.1f} GFLOP/s")

    sides = {"ours (JAX)": ours(cfg, tokens)}
    attn_impl = None
    if not args.skip_torch:
        sides["transformers+torch"], attn_impl = theirs(cfg, tokens, args.dtype)
    for name, run in sides.items():  # warm-up: compile (JAX) / allocator (torch)
        t = run()
        print(f"warm-up {name}: {t:.2f} s")
    best = {name: float("inf") for name in sides}
    for r in range(args.rounds):
        for name, run in sides.items():
            times = [run() for _ in range(args.steps)]
            best[name] = min(best[name], float(np.median(times)))
            print(f"round {r}: {name}: median {np.median(times):.3f} s/step over {args.steps} steps "
                  f"(load {os.getloadavg()[0]:.2f})")

    print(f"\nQwen2-style L={args.layers} D={args.hidden} H={args.heads} K={args.kv_heads} F={args.intermediate} "
          f"V={args.vocab}; batch {args.batch} x seq {args.seq}; {args.dtype}; AdamW; "
          f"matmul params N {flops.matmul_params(cfg) / 1e9:.3f} B; our attention {args.attention}, remat {args.remat}"
          + (f"; torch attention: {attn_impl}" if attn_impl else ""))
    print(f"model FLOPs/step (6N + causal attention): {model_flops / 1e9:.1f} G; "
          f"with full score matmuls: {executed_flops / 1e9:.1f} G")
    for name, t in best.items():
        print(f"{name:>20s}: {t:.3f} s/step, {tokens_per_step / t:,.0f} tokens/s, "
              f"{model_flops / t / 1e9:.1f} model GFLOP/s = {model_flops / t / peak:.1%} of peak "
              f"({executed_flops / t / peak:.1%} counting full score matmuls)")
    vendor_peak = flops.device_peak_flops() if args.dtype == "bfloat16" else None
    if vendor_peak:  # MaxText's convention: model FLOPs over the chip's dense bf16 datasheet peak
        for name, t in best.items():
            print(f"{name:>20s}: MFU {flops.mfu(model_flops, t, vendor_peak):.1%} of the "
                  f"{vendor_peak / 1e12:.0f} TFLOP/s bf16 datasheet peak")
    if len(best) == 2:
        ratio = best["transformers+torch"] / best["ours (JAX)"]
        print(f"ratio ours/torch (tokens/s): {ratio:.2f}x")
    if args.profile:
        profile_sides(sides, args.profile)


if __name__ == "__main__":
    host.reexec_with_malloc_tunables()  # before any work: see humanai_jax/host.py
    main()
