"""A `ChatBackend` from a config block, so one benchmark config runs against any model:

  kind = "scripted"  `script`: "letter:X" (always answers X) or "random" (seeded uniform A-F)
         "project"   `checkpoint`: a run dir of our trainer (`config.json`, `tokenizer/`, `checkpoints/<step>/`;
                     the newest step's params are restored) or a HF export of it; in-process JaxChatBackend
         "hf"        `checkpoint`: any HF checkpoint dir (`config.json` + safetensors); in-process
         "openai"    `base_url`, `model`, `api_key_env`: any OpenAI-compatible endpoint (our server or a vendor)
         "replay"    `replay`: answer from a cassette written with `record` (exact re-runs, no model)
  `record`: a cassette path; wraps the backend in RecordingBackend.
  `tokenizer`: a tokenizer dir when it is not next to the checkpoint.
  `chat_template`: "" (the tokenizer's own), "plain" (a built-in `role: content` template, for models
  trained without one, e.g. `configs/lm.py:tiny`) or a path to a `.jinja` file.

Returns `(backend, info)`; `info["repetition_penalty"]` says whether the backend implements it (the
in-process JAX backend does not: the runner then drops it and records the deviation).
"""

from __future__ import annotations

import json
import os

import numpy as np

from humanai_jax.agents import OpenAICompatBackend, RecordingBackend, ReplayBackend, ScriptedBackend

__all__ = ["build_backend", "PLAIN_CHAT_TEMPLATE", "load_project_params"]

PLAIN_CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                       "{% if add_generation_prompt %}assistant:{% endif %}")


def _get(block, key, default=None):
    return block.get(key, default) if hasattr(block, "get") else getattr(block, key, default)


def _scripted(script: str, seed: int) -> ScriptedBackend:
    if script.startswith("letter:") and len(script) == 8 and script[-1] in "ABCDEF":
        return ScriptedBackend([(".*", None, lambda m, x=script[-1]: x)])
    if script == "random":
        rng = np.random.default_rng(seed)
        return ScriptedBackend([(".*", None, lambda m: "ABCDEF"[int(rng.integers(6))])])
    raise ValueError(f"backend.script must be 'letter:<A-F>' or 'random', got {script!r}")


def _tokenizer(path: str, chat_template: str):
    from humanai_jax.data.tokenizer import load_tokenizer

    tok = load_tokenizer(path)
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
    steps = [int(d) for d in os.listdir(ckpt_dir) if d.isdigit() and os.path.isdir(os.path.join(ckpt_dir, d, "state"))]
    if not steps:
        raise FileNotFoundError(f"no checkpoints (<step>/state) in {ckpt_dir}")
    return max(steps)


def load_project_params(run_dir: str, tokenizer):
    """`(ModelConfig, params, step)` of a run dir written by our trainer (`experiments.run`): the model
    block of its `config.json` and the params of its newest checkpoint, checked against the shapes that
    model block implies."""
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


def _in_process(block, kind: str):
    from humanai_jax.agents.jax_backend import JaxChatBackend
    from humanai_jax.backbone.hf import load_pretrained

    path = _get(block, "checkpoint", "")
    if not path or not os.path.isdir(path):
        raise FileNotFoundError(f"backend.checkpoint {path!r} is not a directory (kind {kind!r})")
    is_run_dir = os.path.isdir(os.path.join(path, "checkpoints")) or os.path.isdir(os.path.join(path, "tokenizer"))
    tok_dir = _get(block, "tokenizer", "") or (os.path.join(path, "tokenizer") if is_run_dir else path)
    tok = _tokenizer(tok_dir, _get(block, "chat_template", ""))
    if kind == "project" and is_run_dir:
        model_cfg, params, step = load_project_params(path, tok)
        name = f"project:{os.path.basename(os.path.normpath(path))}@{step}"
    else:
        model_cfg, params = load_pretrained(path)
        name = f"hf:{os.path.basename(os.path.normpath(path))}"
    backend = JaxChatBackend(params, model_cfg, tok, name=name, max_batch=int(_get(block, "max_batch", 16)),
                             default_seed=int(_get(block, "seed", 0)), checkpoint_dir=None if is_run_dir else path)
    return backend


def _first_cfg(path: str) -> dict:
    """The decoding config of a cassette's first record (a replay must send the same config)."""
    from humanai_jax.data.jsonl import iter_jsonl

    for _, rec in iter_jsonl(path):
        return rec.get("cfg") or {}
    return {}


def build_backend(block, *, seed: int = 0):
    """`(backend, info)` from a config block (see the module docstring)."""
    kind = _get(block, "kind", "")
    if kind == "scripted":
        backend = _scripted(_get(block, "script", "letter:A"), seed)
    elif kind in ("project", "hf"):
        backend = _in_process(block, kind)
    elif kind == "openai":
        if not _get(block, "base_url") or not _get(block, "model"):
            raise ValueError("backend kind 'openai' needs backend.base_url and backend.model")
        backend = OpenAICompatBackend(_get(block, "base_url"), _get(block, "model"),
                                      api_key_env=_get(block, "api_key_env", "OPENAI_API_KEY"),
                                      timeout_s=float(_get(block, "timeout_s", 120.0)),
                                      max_concurrency=int(_get(block, "max_concurrency", 8)), seed=seed)
    elif kind == "replay":
        path = _get(block, "replay", "")
        if not path or not os.path.exists(path):
            raise FileNotFoundError(f"backend.replay cassette {path!r} does not exist")
        backend = ReplayBackend(path)
        first = next(iter(backend.cassette), None)
        recorded_rp = first is not None and _first_cfg(path).get("repetition_penalty") is not None
    else:
        raise ValueError(f"unknown backend.kind {kind!r}; valid: scripted, project, hf, openai, replay")
    info = {"kind": kind, "name": backend.name,
            "repetition_penalty": kind in ("openai", "scripted") or (kind == "replay" and recorded_rp)}
    record = _get(block, "record", "")
    if record:
        backend = RecordingBackend(backend, record)
    return backend, info
