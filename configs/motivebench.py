r"""MotiveBench: human-like motivational reasoning, 600 six-option items (docs/motivebench.md).

  # reference protocol against any OpenAI-compatible endpoint (our server or a vendor), direct answers:
  python -m experiments.run --config configs/motivebench.py:direct,base_url=http://127.0.0.1:8000,model=M \
      --workdir runs/motivebench_direct
  python -m experiments.run --config configs/motivebench.py:cot,base_url=...,model=M --workdir runs/mb_cot
  # any HF checkpoint dir, in process (JAX):
  python -m experiments.run --config configs/motivebench.py:direct,kind=hf,checkpoint=/path/Qwen2.5-0.5B-Instruct ...
  # the project's own tiny model (a run dir of `configs/lm.py:tiny`), a few CPU minutes:
  python -m experiments.run --config configs/motivebench.py:tiny,checkpoint=runs/lm_tiny --workdir runs/mb_tiny
  # LLM-free baselines only (scripted fixed-letter model), seconds:
  python -m experiments.run --config configs/motivebench.py:baselines --workdir runs/mb_baselines

Variant-string options: kind=scripted|project|hf|openai|replay, checkpoint=, base_url=, model=, limit=N
(first N scenarios per source), permutations=base6|all18, record=PATH, replay=PATH.
Every field can be overridden: --config.limit=5 --config.gen.max_tokens=16 --config.backend.kind=openai.
`gen` holds the reference decoding (temperature 0, top_p 1, repetition penalty 1.05, 4096 tokens);
`gen.repetition_penalty=0` sends none (the in-process JAX backend implements none: it is then dropped
and the deviation is written to results.json).
"""

import ml_collections

from humanai_jax.configs import choose_variant, parse_arg

_VARIANTS = {"direct": {}, "cot": {}, "parse": {}, "tiny": {}, "baselines": {}}


def backend_block(**overrides) -> ml_collections.ConfigDict:
    """The backend fields understood by humanai_jax.methods.motivebench.backends.build_backend."""
    b = dict(kind="openai", script="letter:A", checkpoint="", tokenizer="", chat_template="", base_url="",
             model="", api_key_env="OPENAI_API_KEY", timeout_s=120.0, max_concurrency=8, max_batch=16, seed=0,
             record="", replay="")
    b.update(overrides)
    return ml_collections.ConfigDict(b)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, rest = choose_variant(arg, _VARIANTS, default="direct")
    args = parse_arg(rest, kind="", checkpoint="", base_url="", model="", limit=-1, permutations="",
                     record="", replay="")

    c = ml_collections.ConfigDict()
    c.experiment = "motivebench"
    c.seed = 0
    c.data_dir = ""  # "" = ../shared/data/motivebench next to the repository
    c.sources = "Persona,Blog,Amazon"
    c.limit = 0  # > 0: the first N scenarios of each source (quick runs)
    c.mode = "direct"  # direct | cot
    c.permutations = "base6"  # base6 | all18
    c.system = ""  # "" = the reference system prompt (with its typo); "none" = no system message
    c.gen = ml_collections.ConfigDict(dict(temperature=0.0, top_p=1.0, max_tokens=4096, repetition_penalty=1.05,
                                           seed=0))
    c.chunk = 64  # requests per chat_batch call
    c.max_errors = 0  # more failed calls than this abort the run (after the trace is written)
    c.baselines = True
    c.backend = backend_block()
    c.parse_backend = backend_block(kind="")  # "" = no parse mode; else the extractor model's backend
    c.parse_max_tokens = 256

    if variant == "cot":
        c.mode = "cot"
    elif variant == "parse":  # reference parse mode: replies read by a second model (Qwen2.5-7B-Instruct there)
        c.parse_backend.kind = "openai"
    elif variant == "tiny":  # the project's tiny model in process: a plumbing/floor check, not a quality claim
        c.backend.update(kind="project", chat_template="plain", max_batch=4)
        c.gen.update(max_tokens=4, repetition_penalty=0.0)
        c.limit = 10
        c.chunk = 192
    elif variant == "baselines":
        c.backend.update(kind="scripted", script="letter:A")
    for key in ("kind", "checkpoint", "base_url", "model", "record", "replay"):
        if args[key]:
            c.backend[key] = args[key]
    if args.limit >= 0:
        c.limit = args.limit
    if args.permutations:
        c.permutations = args.permutations
    return c
