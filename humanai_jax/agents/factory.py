"""A `ChatBackend` from a config block, so one experiment config runs against any model:

  kind = "project"  `checkpoint`: a run dir of our trainer (`config.json`, `tokenizer/`, `checkpoints/<step>/state`;
                    the newest step is restored and checked against the run's model block), or a HF export of
                    one; in-process `JaxChatBackend`
         "hf"       `checkpoint`: any HF checkpoint dir (`config.json` + safetensors + tokenizer); in-process
         "openai"   `base_url`, `model`, `api_key_env`, `timeout_s`, `max_concurrency`: any OpenAI-compatible
                    endpoint (`python -m humanai_jax.serving` or a vendor)
         "replay"   `replay`: answer from a cassette written with `record` (exact re-runs, no model)
         <method>   a method's own backends (a scripted plumbing model, a rule policy), passed as `custom`
  `record`: a cassette path; wraps the backend in `RecordingBackend`.
  `tokenizer`: a tokenizer dir when it is not next to the checkpoint.
  `chat_template`: "" (the tokenizer's own; an error when it has none), "plain" (a built-in `role: content`
  template, for models trained without one, e.g. `configs/lm.py:tiny`), "auto" (the tokenizer's own, else
  "plain") or a path to a `.jinja` file.
  `max_batch`, `seed`: the in-process backend's batch size and default sampling seed.

Every method and benchmark (MotiveBench, LearnArena, NAMeGEn, TrendSim, GenMentor, oversight) builds its backends
here; what differs between them is only their `custom` kinds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from humanai_jax.agents.backend import ChatBackend, OpenAICompatBackend, RecordingBackend, ReplayBackend

__all__ = ["PLAIN_CHAT_TEMPLATE", "build_backend", "chat_tokenizer", "load_run_params", "STANDARD_KINDS"]

PLAIN_CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                       "{% if add_generation_prompt %}assistant:{% endif %}")
STANDARD_KINDS = ("project", "hf", "openai", "replay")


def option(block, key: str, default: Any = None) -> Any:
    """`block[key]` for a dict, a ConfigDict or an attribute object; `default` when absent."""
    return block.get(key, default) if hasattr(block, "get") else getattr(block, key, default)


def chat_tokenizer(path: str, chat_template: str = ""):
    """The tokenizer in `path` with the chat template `chat_template` names (see the module docstring)."""
    from humanai_jax.data.tokenizer import load_tokenizer

    tok = load_tokenizer(path)
    if chat_template == "auto":
        chat_template = "" if getattr(tok, "chat_template", None) else "plain"
    if chat_template == "plain":
        tok.chat_template = PLAIN_CHAT_TEMPLATE
    elif chat_template:
        with open(chat_template, encoding="utf-8") as f:
            tok.chat_template = f.read()
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"tokenizer {path} has no chat template: set backend.chat_template='plain' "
                         "(or a .jinja path) for a model trained without one")
    return tok


def _latest_step(ckpt_dir: str) -> int:
    if not os.path.isdir(ckpt_dir):
        raise FileNotFoundError(f"checkpoint dir {ckpt_dir} does not exist")
    steps = [int(d) for d in os.listdir(ckpt_dir) if d.isdigit() and os.path.isdir(os.path.join(ckpt_dir, d, "state"))]
    if not steps:
        raise FileNotFoundError(f"no checkpoints (<step>/state) in {ckpt_dir}")
    return max(steps)


def load_run_params(run_dir: str, tokenizer):
    """`(ModelConfig, params, step)` of a run dir written by our trainer (`experiments.run`): the model block of
    its `config.json` and the params of its newest checkpoint, checked against the shapes that block implies."""
    import jax
    import ml_collections
    import orbax.checkpoint as ocp

    from humanai_jax.backbone.params import init_params
    from humanai_jax.train.model_block import model_config

    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        cfg = ml_collections.ConfigDict(json.load(f))
    if "model" not in cfg:
        raise ValueError(f"{run_dir}/config.json has no 'model' block: not a run dir of our trainer")
    model_cfg = model_config(cfg, tokenizer)
    ckpt_dir = (cfg.get("ckpt", {}) or {}).get("dir") or os.path.join(run_dir, "checkpoints")
    step = _latest_step(ckpt_dir)
    state = ocp.StandardCheckpointer().restore(os.path.abspath(os.path.join(ckpt_dir, str(step), "state")))
    expected = jax.eval_shape(lambda r: init_params(model_cfg, r), jax.random.PRNGKey(0))
    got = jax.tree.map(lambda x: tuple(x.shape), state["params"])
    want = jax.tree.map(lambda x: tuple(x.shape), expected)
    if got != want:
        raise ValueError(f"{ckpt_dir}/{step}: checkpoint params do not match the model block of config.json")
    params = jax.tree.map(lambda x, e: jax.numpy.asarray(x, e.dtype), state["params"], expected)
    return model_cfg, params, step


def _in_process(block, kind: str, default_max_batch: int):
    from humanai_jax.agents.jax_backend import JaxChatBackend
    from humanai_jax.backbone.hf import load_pretrained

    path = option(block, "checkpoint", "")
    if not path or not os.path.isdir(path):
        raise FileNotFoundError(f"backend.checkpoint {path!r} is not a directory (kind {kind!r})")
    is_run_dir = os.path.isdir(os.path.join(path, "checkpoints")) or os.path.isdir(os.path.join(path, "tokenizer"))
    tok_dir = option(block, "tokenizer", "") or (os.path.join(path, "tokenizer") if is_run_dir else path)
    tok = chat_tokenizer(tok_dir, option(block, "chat_template", ""))
    if kind == "project" and is_run_dir:
        model_cfg, params, step = load_run_params(path, tok)
        name = f"project:{os.path.basename(os.path.normpath(path))}@{step}"
    else:
        model_cfg, params = load_pretrained(path)
        name = f"hf:{os.path.basename(os.path.normpath(path))}"
    return JaxChatBackend(params, model_cfg, tok, name=name,
                          max_batch=int(option(block, "max_batch", default_max_batch)),
                          default_seed=int(option(block, "seed", 0)), checkpoint_dir=None if is_run_dir else path)


def build_backend(block, *, seed: int = 0, custom: Mapping[str, Callable[[Any, int], ChatBackend]] | None = None,
                  default_max_batch: int = 16) -> ChatBackend:
    """A ChatBackend from a config block (see the module docstring). `custom` maps a method's own kinds to
    `fn(block, seed) -> ChatBackend`; `seed` is the OpenAI client's request seed and the custom kinds' seed."""
    custom = dict(custom or {})
    kind = option(block, "kind", "")
    if kind in custom:
        backend = custom[kind](block, seed)
    elif kind in ("project", "hf"):
        backend = _in_process(block, kind, default_max_batch)
    elif kind == "openai":
        if not option(block, "base_url") or not option(block, "model"):
            raise ValueError("backend kind 'openai' needs backend.base_url and backend.model")
        backend = OpenAICompatBackend(option(block, "base_url"), option(block, "model"),
                                      api_key_env=option(block, "api_key_env", "OPENAI_API_KEY"),
                                      timeout_s=float(option(block, "timeout_s", 120.0)),
                                      max_concurrency=int(option(block, "max_concurrency", 8)), seed=seed)
    elif kind == "replay":
        path = option(block, "replay", "")
        if not path or not os.path.exists(path):
            raise FileNotFoundError(f"backend.replay cassette {path!r} does not exist")
        backend = ReplayBackend(path)
    else:
        raise ValueError(f"unknown backend.kind {kind!r}; valid: {', '.join([*custom, *STANDARD_KINDS])}")
    record = option(block, "record", "")
    if record:
        backend = RecordingBackend(backend, record)
    return backend
