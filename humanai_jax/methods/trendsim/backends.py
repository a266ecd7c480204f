"""A `ChatBackend` for TrendSim from a config block:

  kind = "rules"    the transparent rule policy (`rules.RulePolicyBackend`; `flag_threshold`, `invalid_rate`,
                    `recovery`)
         "project"  `checkpoint`: a run dir of our trainer (config.json, tokenizer/, checkpoints/<step>/state),
                    newest step, in-process `JaxChatBackend` (labelled plumbing: the tiny LM is no chat model)
         "hf"       `checkpoint`: any HF checkpoint dir (config.json + safetensors), in-process
         "openai"   `base_url`, `model`, `api_key_env`: any OpenAI-compatible endpoint (our server or a vendor)
         "replay"   `replay`: answer from a cassette written with `record` (exact re-runs, no model)
  `record`: a cassette path; wraps the backend in RecordingBackend.
  `chat_template`: "" (the tokenizer's own) or "plain" (`role: content` lines, for models trained without one).

(MotiveBench has the same factory in its method folder; methods may not import each other, so this is a
second copy: it belongs in the core, `humanai_jax/agents/`.)
"""

from __future__ import annotations

import json
import os

from humanai_jax.agents import OpenAICompatBackend, RecordingBackend, ReplayBackend
from humanai_jax.methods.trendsim.rules import RulePolicyBackend

PLAIN_CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                       "{% if add_generation_prompt %}assistant:{% endif %}")
KINDS = ("rules", "project", "hf", "openai", "replay")


def _get(block, key, default=None):
    return block.get(key, default) if hasattr(block, "get") else getattr(block, key, default)


def _tokenizer(path: str, chat_template: str):
    from humanai_jax.data.tokenizer import load_tokenizer

    tok = load_tokenizer(path)
    if chat_template == "plain" or not getattr(tok, "chat_template", None):
        tok.chat_template = PLAIN_CHAT_TEMPLATE
    return tok


def _project_params(run_dir: str, tokenizer):
    """(ModelConfig, params, step) of the newest checkpoint of a trainer run dir."""
    import jax
    import ml_collections
    import orbax.checkpoint as ocp

    from humanai_jax.backbone.params import init_params
    from humanai_jax.train.model_block import model_config

    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        cfg = ml_collections.ConfigDict(json.load(f))
    model_cfg = model_config(cfg, tokenizer)
    ckpt_dir = (cfg.get("ckpt", {}) or {}).get("dir") or os.path.join(run_dir, "checkpoints")
    steps = [int(d) for d in os.listdir(ckpt_dir) if d.isdigit()]
    if not steps:
        raise FileNotFoundError(f"no checkpoints in {ckpt_dir}")
    step = max(steps)
    state = ocp.StandardCheckpointer().restore(os.path.abspath(os.path.join(ckpt_dir, str(step), "state")))
    expected = jax.eval_shape(lambda r: init_params(model_cfg, r), jax.random.PRNGKey(0))
    params = jax.tree.map(lambda x, e: jax.numpy.asarray(x, e.dtype), state["params"], expected)
    return model_cfg, params, step


def _in_process(block, kind: str):
    from humanai_jax.agents.jax_backend import JaxChatBackend
    from humanai_jax.backbone.hf import load_pretrained

    path = _get(block, "checkpoint", "")
    if not path or not os.path.isdir(path):
        raise FileNotFoundError(f"backend.checkpoint {path!r} is not a directory (kind {kind!r})")
    chat_template = _get(block, "chat_template", "")
    if kind == "project":
        tok = _tokenizer(_get(block, "tokenizer", "") or os.path.join(path, "tokenizer"), chat_template)
        model_cfg, params, step = _project_params(path, tok)
        name, ckpt = f"project:{os.path.basename(os.path.normpath(path))}@{step}", None
    else:
        tok = _tokenizer(_get(block, "tokenizer", "") or path, chat_template)
        model_cfg, params = load_pretrained(path)
        name, ckpt = f"hf:{os.path.basename(os.path.normpath(path))}", path
    return JaxChatBackend(params, model_cfg, tok, name=name, max_batch=int(_get(block, "max_batch", 64)),
                          default_seed=int(_get(block, "seed", 0)), checkpoint_dir=ckpt)


def build_backend(block, *, seed: int = 0, lang: str = "zh"):
    """(backend, info) from a config block (see the module docstring)."""
    kind = _get(block, "kind", "")
    if kind == "rules":
        backend = RulePolicyBackend(lang=lang, seed=seed, flag_threshold=int(_get(block, "flag_threshold", 2)),
                                    invalid_rate=float(_get(block, "invalid_rate", 0.0)),
                                    recovery=float(_get(block, "recovery", 0.0)))
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
    else:
        raise ValueError(f"unknown backend.kind {kind!r}; valid: {', '.join(KINDS)}")
    info = {"kind": kind, "name": backend.name}
    record = _get(block, "record", "")
    if record:
        backend = RecordingBackend(backend, record)
    return backend, info
