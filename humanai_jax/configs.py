"""Helpers for ml-collections experiment configs (big_vision style).

Every `configs/<name>.py` defines `get_config(arg=None) -> ml_collections.ConfigDict` and
parses its variant string with `parse_arg`, e.g. `configs/sad.py:ml1m_m1` or
`configs/lm.py:tiny,steps=100`.
"""

from __future__ import annotations

import json

import ml_collections


def parse_arg(arg: str | None, *, lazy: bool = False, **defaults) -> ml_collections.ConfigDict:
    """Parses a variant string `"a,b=3,c=x"` into a ConfigDict of typed values.

    A bare word `a` sets a boolean field `a=True`. `key=value` entries take the type of
    `defaults[key]`. Unknown keys raise (listing the valid ones) unless `lazy=True`, in
    which case they are kept as strings.
    """
    out = ml_collections.ConfigDict(dict(defaults))
    if not arg:
        return out
    for token in arg.split(","):
        token = token.strip()
        if not token:
            continue
        key, sep, raw = token.partition("=")
        if key not in defaults and not lazy:
            raise ValueError(
                f"Unknown config argument {key!r} in {arg!r}; valid arguments: {sorted(defaults)}"
            )
        if not sep:
            out[key] = True
            continue
        default = defaults.get(key)
        try:
            out[key] = _convert(raw, default)
        except ValueError as e:
            raise ValueError(f"Config argument {key!r} in {arg!r}: {e}") from None
    return out


def _convert(raw: str, like):
    if isinstance(like, bool):
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean (true/false, yes/no, 1/0), got {raw!r}")
    for kind in (int, float):
        if isinstance(like, kind):
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"expected {'an' if kind is int else 'a'} {kind.__name__} "
                                 f"(the type of its default {like!r}), got {raw!r}") from None
    return raw


def set_dotted(config: ml_collections.ConfigDict, assignment: str) -> None:
    """Applies one `a.b.c=value` override (benchmark scripts' `--set`), converting `value` to the type of
    the key's current value (lists and tuples as JSON); an unknown key or a bad value is named."""
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise ValueError(f"override {assignment!r}: expected key=value")
    node, (*path, leaf) = config, key.split(".")
    for name in path:
        node = node.get(name) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise KeyError(f"override {assignment!r}: unknown config key {key!r}")
    like = node[leaf]
    try:
        node[leaf] = type(like)(json.loads(raw)) if isinstance(like, (list, tuple)) else _convert(raw, like)
    except ValueError as e:
        raise ValueError(f"override {key}: {e}") from None


def choose_variant(arg: str | None, variants: dict[str, dict], default: str) -> tuple[str, dict]:
    """Splits `"variant,key=val"` into the named variant's overrides and the rest.

    Returns `(variant_name, rest_string)`. Raises on an unknown variant, listing the valid ones.
    """
    first, _, rest = (arg or default).partition(",")
    if "=" in first:  # only overrides were given: use the default variant
        first, rest = default, arg or ""
    if first not in variants:
        raise ValueError(f"Unknown variant {first!r}; valid variants: {sorted(variants)}")
    return first, rest


# ------------------------------------------------------------------------------ shared config blocks
# The same keys mean the same thing in every config: an experiment that trains the backbone builds its
# `model`, `mesh`, `rules`, `optim`, `train` and `ckpt` blocks here and then adds only what is its own
# (e.g. `c.train.mix_temperature = 1.0` for HumanLLM). The readers are train/model_block.py (model),
# train/runtime.py (mesh, rules), train/optim.py (optim), train/trainer.py (train, ckpt).
# tests/test_configs_blocks.py checks every config under configs/ against these key sets.

_MODEL = dict(
    hf_path="",  # a HF checkpoint dir; then shapes come from its config.json (only dtype..remat below apply)
    family="qwen2",  # qwen2 | llama | qwen3 | mistral | phi3 (from-scratch models)
    vocab_size=0,  # 0 = the tokenizer's size rounded up to a multiple of 128
    d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, head_dim=0, mlp_dim=384,  # head_dim 0 = d_model / n_heads
    tie_embeddings=True,
    dtype="float32",  # compute dtype ("bfloat16" = mixed precision; params stay in param_dtype)
    param_dtype="float32",
    scan_layers=True,
    remat="none",  # none | full | dots
)
_MESH = dict(data=1, fsdp=-1, tensor=1, axis_type="auto")  # one size may be -1 = all remaining devices
_OPTIM = dict(
    name="adamw", lr=3e-3, schedule="warmup_cosine", warmup_steps=20, decay_steps=0, end_lr_frac=0.1,
    b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1, clip_norm=1.0,
)
_TRAIN = dict(
    steps=200,
    batch_size=16,  # global batch (sequences per optimizer step)
    grad_accum=1,  # micro-batches per step (lax.scan), one update per step
    loss_chunk=0,  # > 0: chunked cross-entropy over this many positions at a time
    log_every=10,
    eval_every=50,  # 0 = no periodic evaluation
    eval_batches=8,
    peak_flops=0.0,  # per-device peak FLOP/s for MFU; 0 = vendor table (TPU/GPU) or measured (CPU)
    distributed="auto",  # auto | on | off: jax.distributed.initialize()
    progress=True,
    slow_step_s=0.0,  # sleep after each step (only to test preemption)
)
_CKPT = dict(
    dir="",  # "" = WORKDIR/checkpoints
    every=50, keep=3, async_save=True,
    resume=True,  # restore the newest readable checkpoint in dir
    export_hf=False,  # at the end, write WORKDIR/hf_export (save_pretrained + tokenizer)
)
BLOCK_KEYS = {"model": frozenset(_MODEL), "mesh": frozenset(_MESH), "optim": frozenset(_OPTIM),
              "train": frozenset(_TRAIN), "ckpt": frozenset(_CKPT)}


def _block(name: str, defaults: dict, overrides: dict) -> ml_collections.ConfigDict:
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"{name} block: unknown key(s) {unknown}; valid keys: {sorted(defaults)}. "
                         f"Add an experiment's own key after building the block (c.{name}.my_key = ...).")
    return ml_collections.ConfigDict({**defaults, **overrides})


def model_block(**overrides) -> ml_collections.ConfigDict:
    """The backbone's `model` block (read by `train.model_block.model_config`)."""
    return _block("model", _MODEL, overrides)


def mesh_block(**overrides) -> ml_collections.ConfigDict:
    """Mesh axis sizes (data, fsdp, tensor) and axis_type (auto | explicit)."""
    return _block("mesh", _MESH, overrides)


def rules_block() -> ml_collections.ConfigDict:
    """Logical axis -> mesh axes (`sharding.DEFAULT_RULES`): DP / FSDP / TP is a change here and in `mesh`."""
    from humanai_jax.sharding import DEFAULT_RULES

    return ml_collections.ConfigDict({k: tuple(v) for k, v in DEFAULT_RULES.items()})


def optim_block(**overrides) -> ml_collections.ConfigDict:
    """Optimizer and schedule (read by `train.optim`)."""
    return _block("optim", _OPTIM, overrides)


def train_block(**overrides) -> ml_collections.ConfigDict:
    """Loop settings (read by `train.trainer.TrainerConfig` and the experiment's batches)."""
    return _block("train", _TRAIN, overrides)


def ckpt_block(**overrides) -> ml_collections.ConfigDict:
    """Checkpointing (read by `train.trainer.CheckpointConfig.from_config`)."""
    return _block("ckpt", _CKPT, overrides)


def refuse_unsupported(name: str, block, supported, experiment: str) -> None:
    """Raises when a shared key this experiment does not implement is set to other than its default, so a
    shared key is never silently ignored (e.g. `train.grad_accum=4` on an experiment without accumulation)."""
    defaults = {"model": _MODEL, "mesh": _MESH, "optim": _OPTIM, "train": _TRAIN, "ckpt": _CKPT}[name]
    changed = sorted(k for k, v in defaults.items() if k not in supported and k in block and block[k] != v)
    if changed:
        keys = ", ".join(f"{name}.{k}" for k in changed)
        raise ValueError(f"{experiment} does not implement {keys}; leave "
                         f"{'it' if len(changed) == 1 else 'them'} at the default "
                         f"({', '.join(f'{k}={defaults[k]!r}' for k in changed)})")
