"""Model FLOPs and MFU (PaLM, arXiv 2204.02311 App. B; the MaxText convention).

Training FLOPs per token = 6·N + 12·L·H·Dh·S·(1/2 if causal), where
  N  = matmul parameters: attention q/k/v/o, MLP gate/up/down and the output head (lm_head, or the
       tied embedding used as the head); the input embedding *lookup* is not a matmul and is excluded;
  S  = sequence length; attention counts the query heads H (not the KV heads).
Rematerialisation FLOPs are not counted (that would be HFU). MFU = model FLOPs / (time · peak).

Functions take any object with the `ModelConfig` fields `vocab_size, d_model, n_layers, n_heads,
n_kv_heads, head_dim, mlp_dim`.
"""

from __future__ import annotations

import time


def matmul_params(cfg) -> int:
    """N: parameters that take part in a matmul per token (weights only; biases and norms excluded)."""
    d, h, k, dh, f = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.mlp_dim
    per_layer = d * h * dh + 2 * d * k * dh + h * dh * d + 3 * d * f
    return cfg.n_layers * per_layer + d * cfg.vocab_size


def attention_flops_per_token(cfg, seq_len: int, *, causal: bool = True) -> float:
    """Forward+backward FLOPs of the QK^T and AV matmuls per token: 12·L·H·Dh·S, halved when causal."""
    flops = 12.0 * cfg.n_layers * cfg.n_heads * cfg.head_dim * seq_len
    return flops / 2 if causal else flops


def train_flops_per_token(cfg, seq_len: int, *, causal: bool = True) -> float:
    """6·N + attention FLOPs: model FLOPs for one token of a training step (forward + backward)."""
    return 6.0 * matmul_params(cfg) + attention_flops_per_token(cfg, seq_len, causal=causal)


def forward_flops_per_token(cfg, seq_len: int, *, causal: bool = True) -> float:
    """A third of the training FLOPs: 2·N + the forward attention matmuls."""
    return train_flops_per_token(cfg, seq_len, causal=causal) / 3.0


def train_step_flops(cfg, batch_size: int, seq_len: int, *, causal: bool = True) -> float:
    """Model FLOPs of one optimizer step over `batch_size` sequences of `seq_len` tokens."""
    return batch_size * seq_len * train_flops_per_token(cfg, seq_len, causal=causal)


def mfu(step_flops: float, step_time_s: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the (total, all-chip) peak FLOP/s."""
    return step_flops / (step_time_s * peak_flops_per_s)


# Vendor dense bf16 peaks per chip (the vendors' data sheets). CPU peaks are measured, see `measure_matmul_peak`.
PEAK_BF16_FLOPS = {
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,  # v5e
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
    "TPU v6 lite": 918e12,  # v6e
    "TPU v6e": 918e12,
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100": 312e12,
}


def device_peak_flops(device=None) -> float | None:
    """Vendor peak bf16 FLOP/s of one device, or None when unknown (CPU: measure it instead)."""
    import jax

    device = device or jax.devices()[0]
    kind = getattr(device, "device_kind", "")
    for name, peak in sorted(PEAK_BF16_FLOPS.items(), key=lambda kv: -len(kv[0])):
        if kind.startswith(name) or name in kind:
            return peak
    return None


def measure_matmul_peak(n: int = 2048, dtype: str = "float32", repeats: int = 10) -> float:
    """Measured FLOP/s of a large square `jnp` matmul on the default device (best of `repeats`).

    A dense `n×n @ n×n` matmul costs 2·n³ FLOPs; on CPU this is the practical fp32 peak that the
    train-step MFU is measured against.
    """
    import jax

    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    matmul = jax.jit(lambda x, y: x @ y)
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best
