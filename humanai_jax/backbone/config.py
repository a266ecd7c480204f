"""`ModelConfig`: the static description of a decoder, read from / written to HF `config.json`.

One frozen, hashable dataclass covers every supported family (Llama, Qwen2/2.5, Qwen3, Mistral,
Phi-3); the family only decides which HF keys are read and how tensors are named on disk
(`hf.py`). Every numerics-changing HF key is either mapped to a field here or rejected with an
error that names it, so a checkpoint is never silently run with the wrong maths.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral", "phi3")
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
REMAT_POLICIES = ("none", "full", "dots")
ATTENTION_IMPLS = ("xla", "cudnn", "jax")

_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "mistral": "MistralForCausalLM",
    "phi3": "Phi3ForCausalLM",
}

# HF class defaults used when a key is absent from config.json (transformers 5.24 config classes).
_FAMILY_DEFAULTS = {
    "llama": dict(rms_norm_eps=1e-6, max_position_embeddings=2048, sliding_window=None),
    "qwen2": dict(rms_norm_eps=1e-6, max_position_embeddings=32768, sliding_window=None),
    "qwen3": dict(rms_norm_eps=1e-6, max_position_embeddings=32768, sliding_window=None),
    "mistral": dict(rms_norm_eps=1e-6, max_position_embeddings=131072, sliding_window=4096),
    "phi3": dict(rms_norm_eps=1e-5, max_position_embeddings=4096, sliding_window=None),
}

# Keys from other HF decoder families that change the maths; seeing one means the file is not
# a plain member of a family we support, so we refuse rather than ignore it.
_FOREIGN_NUMERICS_KEYS = (
    "attn_logit_softcapping",
    "final_logit_softcapping",
    "query_pre_attn_scalar",
    "embedding_multiplier",
    "logits_scaling",
    "residual_multiplier",
    "attention_multiplier",
    "no_rope_layers",
    "use_qk_norm",
    "qk_layernorm",
)


def _dtype_name(dtype: Any) -> str:
    return jnp.dtype(dtype).name


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static decoder description. Hashable: pass it as a static jit argument or close over it.

    Shapes it implies: embed [V, D]; per layer wq [D, H, Dh], wk/wv [D, K, Dh], wo [H, Dh, D],
    w_gate/w_up [D, F], w_down [F, D]; with V=vocab_size, D=d_model, H=n_heads, K=n_kv_heads,
    Dh=head_dim, F=mlp_dim, L=n_layers.
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    mlp_dim: int
    rms_eps: float = 1e-6
    # RoPE: inv[j] = theta ** (-2j / rotary_dim), then the scaling of `rope_type`.
    rope_theta: float = 10000.0
    rope_type: str = "default"  # "default" | "linear" | "llama3"
    rope_factor: float = 1.0  # linear and llama3
    rope_low_freq_factor: float = 1.0  # llama3
    rope_high_freq_factor: float = 4.0  # llama3
    rope_original_max_position_embeddings: int | None = None  # llama3
    partial_rotary_factor: float = 1.0  # rotary_dim = int(head_dim * partial_rotary_factor)
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False  # Qwen3: RMSNorm over head_dim on q and k before RoPE
    tie_embeddings: bool = False
    sliding_window: int | None = None  # key k visible to query q iff 0 <= q - k < W
    # Per-layer attention kinds ("full_attention" | "sliding_attention"), as HF `layer_types`;
    # None = every layer uses `sliding_window` (Mistral, Phi-3) or full attention when it is None.
    layer_types: tuple[str, ...] | None = None
    max_position_embeddings: int = 2048
    act: str = "silu"
    dtype: str = "float32"  # compute dtype of activations and matmuls
    param_dtype: str = "float32"  # storage dtype of parameters
    scan_layers: bool = True
    remat: str = "none"  # "none" | "full" | "dots"
    # Full-sequence attention runs queries in causal blocks of this many rows (0 = one block);
    # see layers.attend. An execution knob: it never changes the numbers beyond float rounding.
    attention_block: int = 128
    # Kernel of the full-sequence causal attention when nothing but causality masks it (no packing,
    # padding or sliding window; other cases always use "xla"): "xla" = layers.attend (ours),
    # "cudnn" = jax.nn.dot_product_attention's fused cuDNN flash attention (NVIDIA GPU, bf16/fp16),
    # "jax" = the same call on its XLA implementation (any device; tests compare the paths).
    attention_impl: str = "xla"
    model_type: str = "llama"
    initializer_range: float = 0.02
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None

    # How the numbers are computed, not which numbers: a run may resume with other values (remat on a
    # smaller device, cuDNN attention on a GPU), so resume fingerprints leave them out.
    EXECUTION_KNOBS = ("remat", "attention_block", "attention_impl")

    def identity(self) -> dict[str, Any]:
        """The fields that define the model's function and parameter layout (everything but
        EXECUTION_KNOBS), as a JSON-able dict: what a checkpoint's resume fingerprint records."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in self.EXECUTION_KNOBS}

    def __post_init__(self):
        # Normalise dtypes to names (hashable, JSON-friendly) and lists to tuples (hashable).
        object.__setattr__(self, "dtype", _dtype_name(self.dtype))
        object.__setattr__(self, "param_dtype", _dtype_name(self.param_dtype))
        if isinstance(self.eos_token_id, list):
            object.__setattr__(self, "eos_token_id", tuple(self.eos_token_id))
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"Unsupported model_type {self.model_type!r}; supported: {SUPPORTED_MODEL_TYPES}")
        if self.rope_type not in SUPPORTED_ROPE_TYPES:
            raise ValueError(f"Unsupported rope_type {self.rope_type!r}; supported: {SUPPORTED_ROPE_TYPES}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"Unknown remat {self.remat!r}; choose one of {REMAT_POLICIES}")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"Unknown attention_impl {self.attention_impl!r}; choose one of {ATTENTION_IMPLS}")
        if self.attention_impl == "cudnn" and self.dtype not in ("bfloat16", "float16"):
            raise ValueError(f"attention_impl='cudnn' needs dtype bfloat16 or float16 (cuDNN flash attention), "
                             f"got dtype={self.dtype!r}; use attention_impl='xla' for float32")
        if self.act != "silu":
            raise ValueError(f"Unsupported activation (hidden_act) {self.act!r}; only 'silu' is implemented")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if self.rotary_dim % 2 or self.rotary_dim <= 0:
            raise ValueError(
                f"rotary_dim = int(head_dim {self.head_dim} * partial_rotary_factor "
                f"{self.partial_rotary_factor}) = {self.rotary_dim} must be positive and even"
            )
        if self.sliding_window is not None and self.sliding_window <= 0:
            raise ValueError(f"sliding_window must be positive or None, got {self.sliding_window}")
        if self.layer_types is not None:
            object.__setattr__(self, "layer_types", tuple(self.layer_types))
            bad = sorted(set(self.layer_types) - {"full_attention", "sliding_attention"})
            if bad or len(self.layer_types) != self.n_layers:
                raise ValueError(
                    f"layer_types must list 'full_attention'/'sliding_attention' for each of the "
                    f"{self.n_layers} layers; got {self.layer_types}"
                )
            if "sliding_attention" in self.layer_types and self.sliding_window is None:
                raise ValueError("layer_types has sliding_attention layers but sliding_window is None")

    # ----------------------------------------------------------------------------- derived
    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    def sliding_layers(self) -> np.ndarray | None:
        """bool [L]: which layers use the sliding window; None when no layer does."""
        if self.sliding_window is None:
            return None
        if self.layer_types is None:
            return np.ones(self.n_layers, bool)
        flags = np.array([t == "sliding_attention" for t in self.layer_types])
        return flags if flags.any() else None

    @property
    def group_size(self) -> int:
        """G = H / K query heads per kv head (contiguous groups, as HF `repeat_kv`)."""
        return self.n_heads // self.n_kv_heads

    @property
    def compute_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.dtype)

    @property
    def params_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.param_dtype)

    def rope_inv_freq(self) -> np.ndarray:
        """Inverse frequencies [rotary_dim / 2] in float32, computed as transformers does."""
        dim = self.rotary_dim
        exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
        inv = (np.float32(1.0) / (np.float32(self.rope_theta) ** exponents)).astype(np.float32)
        if self.rope_type == "linear":
            inv = (inv / np.float32(self.rope_factor)).astype(np.float32)
        elif self.rope_type == "llama3":
            inv = _llama3_scale(
                inv,
                factor=self.rope_factor,
                low_freq_factor=self.rope_low_freq_factor,
                high_freq_factor=self.rope_high_freq_factor,
                original_max=self.rope_original_max_position_embeddings or self.max_position_embeddings,
            )
        return inv

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def small(
        cls,
        *,
        vocab_size: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        n_kv_heads: int | None = None,
        head_dim: int | None = None,
        mlp_dim: int | None = None,
        model_type: str = "qwen2",
        tie_embeddings: bool = True,
        **overrides,
    ) -> ModelConfig:
        """A from-scratch model of a family ("qwen2": qkv bias; "llama": none; also qwen3/mistral/phi3)."""
        n_kv_heads = n_kv_heads or n_heads
        fields = dict(
            vocab_size=vocab_size,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            head_dim=head_dim or d_model // n_heads,
            mlp_dim=mlp_dim or 4 * d_model,
            model_type=model_type,
            tie_embeddings=tie_embeddings,
            qkv_bias=model_type == "qwen2",
            qk_norm=model_type == "qwen3",
            rms_eps=_FAMILY_DEFAULTS[model_type]["rms_norm_eps"] if model_type in _FAMILY_DEFAULTS else 1e-6,
        )
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def from_hf_dict(cls, d: Mapping[str, Any], **overrides) -> ModelConfig:
        """Reads a HF `config.json` dict (transformers v4 or v5 layout). `overrides` set our own fields
        (e.g. dtype="bfloat16", scan_layers=False)."""
        return cls(**{**_fields_from_hf(dict(d)), **overrides})

    def to_hf_dict(self) -> dict[str, Any]:
        """The v5 `config.json` dict `transformers.AutoConfig` reads back to the same model."""
        return _fields_to_hf(self)


def _llama3_scale(inv, *, factor, low_freq_factor, high_freq_factor, original_max) -> np.ndarray:
    """Llama-3.1 frequency scaling (transformers `_compute_llama3_parameters`), all in float32."""
    f32 = np.float32
    low_wl = f32(original_max / low_freq_factor)
    high_wl = f32(original_max / high_freq_factor)
    wavelen = (f32(2 * math.pi) / inv).astype(f32)
    scaled = np.where(wavelen > low_wl, inv / f32(factor), inv).astype(f32)
    smooth = ((f32(original_max) / wavelen - f32(low_freq_factor)) / f32(high_freq_factor - low_freq_factor)).astype(f32)
    smoothed = ((f32(1) - smooth) * scaled / f32(factor) + smooth * scaled).astype(f32)
    is_medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
    return np.where(is_medium, smoothed, scaled).astype(f32)


# --------------------------------------------------------------------------------- HF <-> ours
def _require(d: dict, key: str):
    if key not in d or d[key] is None:
        raise ValueError(f"config.json is missing required key {key!r}")
    return d[key]


def _rope_fields(d: dict, model_type: str, max_pos: int) -> dict[str, Any]:
    rp = d.get("rope_parameters") or d.get("rope_scaling") or {}
    if not isinstance(rp, dict):
        raise ValueError(f"rope_parameters/rope_scaling must be a dict, got {rp!r}")
    if any(isinstance(v, dict) for v in rp.values()):
        raise ValueError(f"Nested per-layer-type rope_parameters are not supported: {rp!r}")
    rope_type = rp.get("rope_type", rp.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise ValueError(
            f"Unsupported rope_type {rope_type!r} (from rope_parameters/rope_scaling); "
            f"supported: {SUPPORTED_ROPE_TYPES}"
        )
    if model_type == "phi3" and rope_type != "default":
        raise ValueError(f"Unsupported rope_type {rope_type!r} for phi3 (transformers allows default/longrope)")
    fields: dict[str, Any] = dict(
        rope_theta=float(rp.get("rope_theta", d.get("rope_theta", 10000.0))),
        rope_type=rope_type,
        partial_rotary_factor=float(rp.get("partial_rotary_factor", d.get("partial_rotary_factor", 1.0)) or 1.0),
    )
    if rope_type in ("linear", "llama3"):
        fields["rope_factor"] = float(_require(rp, "factor"))
    if rope_type == "llama3":
        fields["rope_low_freq_factor"] = float(_require(rp, "low_freq_factor"))
        fields["rope_high_freq_factor"] = float(_require(rp, "high_freq_factor"))
        # transformers gives a top-level original_max_position_embeddings priority (Phi-3 style).
        omax = d.get("original_max_position_embeddings") or rp.get("original_max_position_embeddings") or max_pos
        fields["rope_original_max_position_embeddings"] = int(omax)
    return fields


def _attention_kinds(d: dict, model_type: str, n_layers: int) -> dict[str, Any]:
    """sliding_window / layer_types fields, following each family's HF config class."""
    if model_type in ("mistral", "phi3"):
        return dict(sliding_window=d.get("sliding_window", _FAMILY_DEFAULTS[model_type]["sliding_window"]))
    if model_type in ("qwen2", "qwen3"):
        window = d.get("sliding_window") if d.get("use_sliding_window", False) else None
        layer_types = d.get("layer_types")
        if layer_types is None:
            max_window_layers = d.get("max_window_layers", 28)
            layer_types = [
                "sliding_attention" if window is not None and i >= max_window_layers else "full_attention"
                for i in range(n_layers)
            ]
        bad = sorted(set(layer_types) - {"full_attention", "sliding_attention"})
        if bad:
            raise ValueError(f"Unsupported layer_types {bad} for {model_type}")
        if "sliding_attention" not in layer_types:
            return dict(sliding_window=None, layer_types=None)
        if window is None:
            # transformers then passes sliding_window=None: those layers attend fully.
            return dict(sliding_window=None, layer_types=None)
        return dict(sliding_window=int(window), layer_types=tuple(layer_types))
    return dict(sliding_window=None)


def _fields_from_hf(d: dict) -> dict[str, Any]:
    model_type = d.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"Unsupported model_type {model_type!r}; supported: {SUPPORTED_MODEL_TYPES}")
    for key in _FOREIGN_NUMERICS_KEYS:
        if d.get(key) not in (None, False):
            raise ValueError(f"Unsupported config key {key}={d[key]!r} for {model_type}: it changes numerics")
    if d.get("mlp_bias"):
        raise ValueError(f"Unsupported config key mlp_bias={d['mlp_bias']!r}: MLP biases are not implemented")
    act = d.get("hidden_act", "silu")
    defaults = _FAMILY_DEFAULTS[model_type]
    d_model = int(_require(d, "hidden_size"))
    n_heads = int(_require(d, "num_attention_heads"))
    n_layers = int(_require(d, "num_hidden_layers"))
    max_pos = int(d.get("max_position_embeddings") or defaults["max_position_embeddings"])
    attention_bias = bool(d.get("attention_bias") or False)
    bias = {
        "llama": (attention_bias, attention_bias),
        "qwen3": (attention_bias, attention_bias),
        "qwen2": (True, False),  # hard-coded in Qwen2Attention; attention_bias is ignored
        "mistral": (False, False),
        "phi3": (False, False),
    }[model_type]
    return dict(
        vocab_size=int(_require(d, "vocab_size")),
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=int(d.get("num_key_value_heads") or n_heads),
        head_dim=int(d.get("head_dim") or d_model // n_heads),
        mlp_dim=int(_require(d, "intermediate_size")),
        rms_eps=float(d.get("rms_norm_eps", defaults["rms_norm_eps"])),
        **_rope_fields(d, model_type, max_pos),
        qkv_bias=bias[0],
        o_bias=bias[1],
        qk_norm=model_type == "qwen3",
        tie_embeddings=bool(d.get("tie_word_embeddings", False)),
        **_attention_kinds(d, model_type, n_layers),
        max_position_embeddings=max_pos,
        act=act,
        model_type=model_type,
        initializer_range=float(d.get("initializer_range", 0.02)),
        bos_token_id=d.get("bos_token_id"),
        eos_token_id=d.get("eos_token_id"),
        pad_token_id=d.get("pad_token_id"),
    )


def _fields_to_hf(c: ModelConfig) -> dict[str, Any]:
    if c.model_type == "qwen2" and (not c.qkv_bias or c.o_bias):
        raise ValueError("qwen2 checkpoints always have q/k/v biases and no o_proj bias")
    if c.model_type in ("mistral", "phi3") and (c.qkv_bias or c.o_bias):
        raise ValueError(f"{c.model_type} checkpoints have no attention biases")
    if c.model_type in ("llama", "qwen3") and c.qkv_bias != c.o_bias:
        raise ValueError(f"{c.model_type} has one attention_bias flag for q/k/v and o; got {c.qkv_bias}/{c.o_bias}")
    if c.qk_norm != (c.model_type == "qwen3"):
        raise ValueError(f"qk_norm={c.qk_norm} cannot be expressed for model_type {c.model_type!r}")
    if c.sliding_window is not None and c.model_type not in ("mistral", "phi3", "qwen2", "qwen3"):
        raise ValueError(f"sliding_window cannot be exported for model_type {c.model_type!r}")
    if c.model_type in ("mistral", "phi3") and c.layer_types is not None and len(set(c.layer_types)) > 1:
        raise ValueError(f"{c.model_type} has one sliding_window for all layers; layer_types={c.layer_types}")
    rope: dict[str, Any] = {"rope_type": c.rope_type, "rope_theta": c.rope_theta}
    if c.partial_rotary_factor != 1.0 or c.model_type == "phi3":
        rope["partial_rotary_factor"] = c.partial_rotary_factor
    if c.rope_type in ("linear", "llama3"):
        rope["factor"] = c.rope_factor
    if c.rope_type == "llama3":
        rope["low_freq_factor"] = c.rope_low_freq_factor
        rope["high_freq_factor"] = c.rope_high_freq_factor
        rope["original_max_position_embeddings"] = (
            c.rope_original_max_position_embeddings or c.max_position_embeddings
        )
    d: dict[str, Any] = {
        "architectures": [_ARCHITECTURES[c.model_type]],
        "model_type": c.model_type,
        "vocab_size": c.vocab_size,
        "hidden_size": c.d_model,
        "intermediate_size": c.mlp_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "hidden_act": c.act,
        "max_position_embeddings": c.max_position_embeddings,
        "rms_norm_eps": c.rms_eps,
        "rope_parameters": rope,
        "tie_word_embeddings": c.tie_embeddings,
        "attention_dropout": 0.0,
        "initializer_range": c.initializer_range,
        "use_cache": True,
        "dtype": c.param_dtype,
        "bos_token_id": c.bos_token_id,
        "eos_token_id": list(c.eos_token_id) if isinstance(c.eos_token_id, tuple) else c.eos_token_id,
        "pad_token_id": c.pad_token_id,
    }
    if c.model_type in ("llama", "qwen3", "mistral") or c.head_dim != c.d_model // c.n_heads:
        d["head_dim"] = c.head_dim
    if c.model_type in ("llama", "qwen3"):
        d["attention_bias"] = c.qkv_bias
    if c.model_type == "llama":
        d["mlp_bias"] = False
    if c.model_type in ("qwen2", "qwen3"):
        flags = c.sliding_layers()
        if flags is None:
            d.update(use_sliding_window=False, sliding_window=None, max_window_layers=c.n_layers,
                     layer_types=["full_attention"] * c.n_layers)
        else:
            d.update(use_sliding_window=True, sliding_window=c.sliding_window,
                     max_window_layers=int(np.argmax(flags)),
                     layer_types=["sliding_attention" if f else "full_attention" for f in flags])
    if c.model_type in ("mistral", "phi3"):
        d["sliding_window"] = c.sliding_window
    if c.model_type == "phi3":
        d.update(resid_pdrop=0.0, embd_pdrop=0.0, original_max_position_embeddings=c.max_position_embeddings)
    return d
