"""LoRA (Hu et al., arXiv 2106.09685, §4.1) on the backbone's stacked linear weights, as pure functions.

A targeted weight `W` of the layer stack, viewed as `[L, in, out]` (its input dims flattened, then its
output dims), gets a low-rank update `W + (alpha / rank) · A @ B` with `A [L, in, rank]` and
`B [L, rank, out]`. `B` starts at zero, so the adapted model starts as the base model; `A` starts as
PEFT does (uniform in ±1/sqrt(in), the kaiming-uniform bound of its `Linear`).

    cfg = LoraConfig(rank=8, alpha=16.0, targets=("q", "v"))
    adapters = init_adapters(params, cfg, rng)      # {"wq": {"a", "b"}, "wv": {"a", "b"}}
    merged = apply_adapters(params, adapters, cfg)  # same tree and dtypes as `params`
    labels = trainable_labels(params)               # for optax.multi_transform: base layers frozen

The forward runs on `apply_adapters(stop_gradient(base), adapters)`, i.e. on merged weights rebuilt
each step: any backbone family and code path (scan, remat, KV cache, export) works unchanged, and
`save_pretrained(path, config, merged)` writes a plain HF checkpoint (LoRA merged back). Gradients
reach only the adapters and whatever `trainable_labels` leaves trainable (the embeddings by default:
a method that adds tokens, like RecLM's <SOI>/<EOI>, must train their rows).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

# target name -> (backbone leaf under params["layers"], number of input dims after the layer axis)
TARGETS = {"q": ("wq", 1), "k": ("wk", 1), "v": ("wv", 1), "o": ("wo", 2),
           "gate": ("w_gate", 1), "up": ("w_up", 1), "down": ("w_down", 1)}


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    rank: int
    alpha: float = 16.0
    targets: tuple[str, ...] = tuple(TARGETS)

    def __post_init__(self):
        if self.rank <= 0:
            raise ValueError(f"LoRA rank must be > 0, got {self.rank}")
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown or not self.targets:
            raise ValueError(f"Unknown LoRA targets {unknown or '(none given)'}; valid: {sorted(TARGETS)}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @classmethod
    def from_config(cls, block) -> LoraConfig | None:
        """From a config's `lora` block {rank, alpha, targets: "q,k,v,..."}; None when rank is 0 (off)."""
        if not block.rank:
            return None
        targets = tuple(t.strip() for t in str(block.targets).split(",") if t.strip())
        return cls(rank=int(block.rank), alpha=float(block.alpha), targets=targets)


def _split(shape: tuple[int, ...], n_in: int) -> tuple[int, int, int]:
    """[L, *in, *out] -> (L, prod(in), prod(out))."""
    return shape[0], math.prod(shape[1:1 + n_in]), math.prod(shape[1 + n_in:])


def init_adapters(params: dict, cfg: LoraConfig, rng: jax.Array) -> dict:
    """{leaf name: {"a": [L, in, r], "b": [L, r, out]}} in float32 for every targeted weight."""
    adapters = {}
    for key, target in zip(jax.random.split(rng, len(cfg.targets)), cfg.targets):
        name, n_in = TARGETS[target]
        layers, d_in, d_out = _split(params["layers"][name].shape, n_in)
        bound = 1.0 / math.sqrt(d_in)
        adapters[name] = {"a": jax.random.uniform(key, (layers, d_in, cfg.rank), jnp.float32, -bound, bound),
                          "b": jnp.zeros((layers, cfg.rank, d_out), jnp.float32)}
    return adapters


def delta(adapter: dict, shape: tuple[int, ...], scale: float) -> jax.Array:
    """scale · A @ B, shaped like the weight it adapts ([L, *in, *out]), float32."""
    return (scale * jnp.einsum("lir,lro->lio", adapter["a"], adapter["b"])).reshape(shape)


def apply_adapters(params: dict, adapters: dict, cfg: LoraConfig) -> dict:
    """The base params with every adapted weight replaced by W + scale · A @ B (in W's dtype). Pure; the
    merge for `save_pretrained` is this same function."""
    layers = dict(params["layers"])
    for name, adapter in adapters.items():
        w = layers[name]
        layers[name] = (w.astype(jnp.float32) + delta(adapter, w.shape, cfg.scale)).astype(w.dtype)
    return {**params, "layers": layers}


def trainable_labels(params: dict, *, train_embeddings: bool = True) -> dict:
    """"train" / "frozen" per leaf of a backbone param tree, for `optax.multi_transform`: the layer
    stack and the final norm are frozen; the embeddings (and an untied `lm_head`) train unless
    `train_embeddings=False`."""
    def label(path, _):
        top = path[0].key
        return "train" if train_embeddings and top in ("embed", "lm_head") else "frozen"

    return jax.tree_util.tree_map_with_path(label, params)


def freeze(params: dict, labels: dict) -> dict:
    """`stop_gradient` on the frozen leaves: their weight gradients are never computed (XLA drops the
    unused backward matmuls) and are exactly zero."""
    return jax.tree.map(lambda x, lab: jax.lax.stop_gradient(x) if lab == "frozen" else x, params, labels)


def count(tree: Any) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(tree))
