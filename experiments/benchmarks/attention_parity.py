"""Attention kernels on one device: our masked XLA attention vs jax.nn.dot_product_attention (cuDNN on
NVIDIA GPUs), same bf16 model and tokens. Prints max |logit difference| and forward time of each.

    python -m experiments.benchmarks.attention_parity [--impl cudnn]   # on a GPU
    python -m experiments.benchmarks.attention_parity --impl jax       # anywhere (XLA fallback)
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax.backbone import ModelConfig, forward, init_params


def timed(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default="cudnn", choices=["cudnn", "jax"])
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    base = ModelConfig.small(vocab_size=4096, d_model=512, n_layers=4, n_heads=8, n_kv_heads=2, mlp_dim=1408,
                             model_type="qwen2", max_position_embeddings=4096, dtype="bfloat16")
    params = init_params(base, jax.random.key(0))
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 4096, (args.batch, args.seq)), jnp.int32)
    outs, times = {}, {}
    for impl in ("xla", args.impl):
        cfg = dataclasses.replace(base, attention_impl=impl)
        fn = jax.jit(lambda p, t, cfg=cfg: forward(p, t, cfg))
        outs[impl] = np.asarray(fn(params, tokens), np.float32)
        times[impl] = timed(fn, params, tokens)
    diff = np.abs(outs["xla"] - outs[args.impl])
    print(f"{jax.devices()[0].device_kind}: bf16 logits [{args.batch}, {args.seq}, 4096], 4 layers: max |xla - "
          f"{args.impl}| = {diff.max():.4f}, mean {diff.mean():.5f}, logit std {outs['xla'].std():.3f}; forward "
          f"xla {1e3 * times['xla']:.2f} ms, {args.impl} {1e3 * times[args.impl]:.2f} ms")
    agree = (outs["xla"].argmax(-1) == outs[args.impl].argmax(-1)).mean()
    print(f"argmax agreement {agree:.4f}")


if __name__ == "__main__":
    main()
