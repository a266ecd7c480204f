r"""Per-device memory plan of a training config, computed with `jax.eval_shape` (nothing allocated).

  python -m experiments.memory_plan --config configs/lm.py:qwen2.5_7b_fsdp8
  python -m experiments.memory_plan --config configs/lm.py:tiny --config.mesh.fsdp=4 --devices 4

Parameters and optimizer state are exact: the abstract train state is sharded by the config's mesh
and rules on an `AbstractMesh` (no devices needed), and each leaf counts its per-device shard.
Activations are an analytic estimate (documented in `activation_bytes_estimate`); a real run prints
XLA's own numbers from the compiled step (`compiled.memory_analysis()`) before training starts.
"""

from __future__ import annotations

import json
import math
import os
import sys

import jax
import jax.numpy as jnp
from absl import app, flags
from jax.sharding import AbstractMesh, AxisType
from ml_collections import config_flags

from humanai_jax import flops
from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.params import init_params, param_logical_axes
from humanai_jax.sharding import DEFAULT_RULES, MESH_AXES, ShardingRules
from humanai_jax.train import optim
from humanai_jax.train.state import per_device_bytes, train_state_shardings


def model_config_for_plan(config) -> ModelConfig:
    """The ModelConfig a run of `config` would build, without data or a tokenizer."""
    m = config.model
    own = dict(dtype=m.dtype, param_dtype=m.param_dtype, scan_layers=m.scan_layers, remat=m.remat)
    if m.hf_path:
        with open(os.path.join(m.hf_path, "config.json")) as f:
            return ModelConfig.from_hf_dict(json.load(f), **own)
    vocab = m.vocab_size or -(-config.data.vocab_size // 128) * 128
    return ModelConfig.small(
        vocab_size=vocab, d_model=m.d_model, n_layers=m.n_layers, n_heads=m.n_heads, n_kv_heads=m.n_kv_heads,
        head_dim=m.head_dim or None, mlp_dim=m.mlp_dim, model_type=m.family, tie_embeddings=m.tie_embeddings, **own,
    )


def abstract_mesh(mesh_cfg, n_devices: int) -> AbstractMesh:
    """An AbstractMesh of the config's (data, fsdp, tensor) sizes, -1 filled from `n_devices`."""
    sizes = [int(mesh_cfg.get(a, 1)) for a in MESH_AXES]
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        sizes[sizes.index(-1)] = max(n_devices // known, 1)
    kind = {"auto": AxisType.Auto, "explicit": AxisType.Explicit}[mesh_cfg.get("axis_type", "auto")]
    return AbstractMesh(tuple(sizes), MESH_AXES, axis_types=(kind,) * len(sizes))


def activation_bytes_estimate(cfg: ModelConfig, batch_per_device: int, seq: int, loss_chunk: int) -> int:
    """Analytic peak activation memory of one train step on one device (an estimate, not XLA's).

    Per layer, the tensors the backward pass needs: matmul inputs/outputs of width D (×4), the
    q/k/v/attention outputs (2·H·Dh + 2·K·Dh), the MLP's gate/up/activation (3·F), in the compute
    dtype, plus the attention scores and probabilities [H, T, T] in float32. With `remat="full"`
    only each layer's input [B, T, D] is kept and one layer is recomputed at a time. The loss adds
    logits and their gradient in float32: [B, T, V] each, or [B, chunk, V] with the chunked loss.
    """
    b, t = batch_per_device, seq
    size = jnp.dtype(cfg.dtype).itemsize
    width = 4 * cfg.d_model + 2 * cfg.n_heads * cfg.head_dim + 2 * cfg.n_kv_heads * cfg.head_dim + 3 * cfg.mlp_dim
    per_layer = b * t * width * size + 2 * b * cfg.n_heads * t * t * 4
    if cfg.remat == "full":
        layers = cfg.n_layers * b * t * cfg.d_model * size + per_layer
    elif cfg.remat == "dots":
        layers = cfg.n_layers * b * t * (width - 3 * cfg.d_model) * size + per_layer
    else:
        layers = cfg.n_layers * per_layer
    logits = 2 * b * (min(loss_chunk, t) if loss_chunk else t) * cfg.vocab_size * 4
    return int(layers + logits)


def memory_plan(config, n_devices: int | None = None) -> dict:
    """{model, mesh, per-device bytes of params / optimizer state / gradients / activations, ...}."""
    mesh_sizes = [int(config.mesh.get(a, 1)) for a in MESH_AXES]
    n_devices = n_devices or (math.prod(mesh_sizes) if -1 not in mesh_sizes else jax.device_count())
    mesh = abstract_mesh(config.mesh, n_devices)
    table = dict(DEFAULT_RULES)
    for k, v in (config.get("rules") or {}).items():
        table[k] = (v,) if isinstance(v, str) else tuple(v or ())
    rules = ShardingRules.create(mesh, table)
    cfg = model_config_for_plan(config)
    tx, _ = optim.make_optimizer(config.optim, config.train.steps)
    abstract, _ = train_state_shardings(lambda r: init_params(cfg, r), param_logical_axes(cfg), tx, rules)
    t = config.train
    data_ways = math.prod(mesh.shape[a] for a in rules.mesh_axes("batch"))
    batch_per_device = max(t.batch_size // data_ways // max(t.grad_accum, 1), 1)
    params = per_device_bytes(abstract["params"])
    plan = {
        "model": {k: getattr(cfg, k) for k in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads",
                                                 "head_dim", "mlp_dim", "dtype", "param_dtype", "remat")},
        "mesh": dict(mesh.shape),
        "n_params": int(sum(x.size for x in jax.tree.leaves(abstract["params"]))),
        "params_bytes_per_device": params,
        "opt_state_bytes_per_device": per_device_bytes(abstract["opt_state"]),
        "grads_bytes_per_device": params,  # gradients have the params' shapes and shardings
        "activations_bytes_per_device_estimate": activation_bytes_estimate(
            cfg, batch_per_device, config.data.seq_len, t.loss_chunk),
        "batch_per_device": batch_per_device,
        "seq_len": config.data.seq_len,
        "train_flops_per_token": flops.train_flops_per_token(cfg, config.data.seq_len),
    }
    plan["total_bytes_per_device_estimate"] = sum(
        plan[k] for k in ("params_bytes_per_device", "opt_state_bytes_per_device", "grads_bytes_per_device",
                          "activations_bytes_per_device_estimate")
    )
    return plan


def format_plan(plan: dict) -> str:
    lines = [f"model {plan['model']}", f"mesh {plan['mesh']}  params {plan['n_params']:,}",
             f"batch per device {plan['batch_per_device']} x seq {plan['seq_len']}"]
    for key, value in plan.items():
        if "bytes" in key:
            lines.append(f"  {key:<42s} {value / 2**30:9.3f} GiB")
    return "\n".join(lines)


def main(argv):
    del argv
    plan = memory_plan(flags.FLAGS.config, flags.FLAGS.devices)
    print(format_plan(plan))
    print(json.dumps(plan))


if __name__ == "__main__":
    # Flags are defined only when run as a script, so importing `memory_plan` next to
    # `experiments.run` (which owns --config there) does not clash.
    config_flags.DEFINE_config_file("config", None, "Training config file[:variant].", lock_config=True)
    flags.DEFINE_integer("devices", None, "Devices to fill a -1 mesh axis (default: the mesh's product).")
    flags.mark_flag_as_required("config")
    sys.exit(app.run(main))
