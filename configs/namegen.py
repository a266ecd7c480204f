r"""NAMeGEn: multi-agent Chinese baby naming on CBNames with the CBNames metric suite (docs/namegen.md).

  # plumbing run (default, variant `plumbing`): our own LM, trained from scratch inside the run on the scripted
  # teacher's replies (cached in WORKDIR/distill), answers every agent in process; 2 CBNames queries, sample
  # poems + sample Hanzi table; ~1.5-2 min on CPU (docs/namegen.md, "Plumbing run on our own model")
  python -m experiments.run --config configs/namegen.py --workdir runs/namegen_plumbing
  # the scripted mock model (the teacher) on 3 queries: configs/namegen.py:full
  # any OpenAI-compatible endpoint (our server or a vendor), generator and judge:
  python -m experiments.run --config configs/namegen.py:full,kind=openai,base_url=http://127.0.0.1:8000,model=M \
      --workdir runs/namegen_M
  # the project's own tiny LM in process (a configs/lm.py:tiny run), 1 query, plumbing only (~30 s on CPU):
  python -m experiments.run --config configs/namegen.py:tiny,checkpoint=runs/head/lm_tiny_s0 --workdir runs/namegen_tiny
  # any HF checkpoint dir, in process (JAX):
  python -m experiments.run --config configs/namegen.py:full,kind=hf,checkpoint=/path/Qwen2.5-0.5B-Instruct ...
  # an ablation or a baseline; or everything in one run:
  python -m experiments.run --config configs/namegen.py:wo_R ...   configs/namegen.py:baseline_cot ...
  python -m experiments.run --config configs/namegen.py:compare,kind=openai,... --workdir runs/namegen_all

Variants: full, wo_R, wo_evalR, wo_Imp, wo_Exp, wo_evalGen, wo_ImpExp, baseline_{base,fewshot,cot,tdb,
llm_discussion,rag}, compare (all of them), tiny (the project's own LM in process, `full` + `baseline_base` on
1 query: a plumbing run of the real-model path; checkpoint=RUN_DIR of `configs/lm.py:tiny`, default
runs/head/lm_tiny_s0), plumbing (the default: `full` on 2 queries with kind=distilled, greedy).
Variant-string options: kind=mock|distilled|project|hf|openai|replay, checkpoint=, base_url=,
model=, limit=N, record=PATH, replay=PATH, poems=PATH|sample|gold (PATH: a file or a directory), hanzi=PATH,
names=PATH (ChineseNames givenname.csv: enables Nov), surnames=PATH (its familyname.csv).
The judge uses `judge_backend` (kind "" = the generator's backend) at temperature 0.2, as the reference's Kimi judge.
"""

import ml_collections

from humanai_jax.configs import choose_variant, parse_arg

_ABLATIONS = ("full", "wo_R", "wo_evalR", "wo_Imp", "wo_Exp", "wo_evalGen", "wo_ImpExp")
_BASELINES = ("base", "fewshot", "cot", "tdb", "llm_discussion", "rag")
_VARIANTS = {**{v: {} for v in _ABLATIONS}, **{f"baseline_{b}": {} for b in _BASELINES}, "compare": {}, "tiny": {},
             "plumbing": {}}


def backend_block(**overrides) -> ml_collections.ConfigDict:
    """Fields read by humanai_jax.methods.namegen.backends.build_backend."""
    b = dict(kind="mock", checkpoint="", tokenizer="", chat_template="", base_url="", model="",
             api_key_env="OPENAI_API_KEY", timeout_s=120.0, max_concurrency=8, max_batch=16, seed=0, record="",
             replay="")
    b.update(overrides)
    return ml_collections.ConfigDict(b)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, rest = choose_variant(arg, _VARIANTS, default="plumbing")
    args = parse_arg(rest, kind="", checkpoint="", base_url="", model="", limit=-1, record="", replay="", poems="",
                     hanzi="", names="", surnames="")
    c = ml_collections.ConfigDict()
    c.experiment = "namegen"
    c.methods = ",".join([*_ABLATIONS, *(f"baseline_{b}" for b in _BASELINES)]) if variant == "compare" else variant
    if variant == "tiny":
        c.methods = "full,baseline_base"
    if variant == "plumbing":
        c.methods = "full"
    c.seeds = "0"  # comma list; every (method, seed, query) is one unit of outputs.jsonl
    c.data_dir = ""  # "" = ../shared/data/cbnames next to the repository
    c.offset = 0
    c.limit = 3  # number of CBNames queries (0 = all 500)
    # "sample" (10 shipped poems) | "gold" (CBNames r_poem: smoke only) | a path: a file or a directory of CPoetry
    # .jsonl/.csv/.tsv/.json files or chinese-poetry .json files (poems.load_poems)
    c.poems = "sample"
    c.hanzi = ""  # "" = the shipped self-written sample table; else a .csv/.tsv/.jsonl path (字, 汉字五行, ...)
    c.names = ""  # ChineseNames givenname.csv (not shipped): enables the optional Nov metric; "" = no Nov
    c.surnames = ""  # ChineseNames familyname.csv (optional): compound surnames for Nov's given-name split
    c.plumbing = True  # labels results.json: numbers from the mock model / sample tables mean nothing
    c.judge = True
    c.max_attempts = 3  # JSON parse + repair tries per call
    c.loop = ml_collections.ConfigDict(dict(max_round=10, warmup=2, lr=0.8, alpha=0.8, rk_limit=5, refine_repairs=3,
                                            show_weights=False, compat=False, birth_from="parser"))
    c.gen = ml_collections.ConfigDict(dict(temperature=0.7, top_p=1.0, max_tokens=1024))
    c.judge_gen = ml_collections.ConfigDict(dict(temperature=0.2, top_p=1.0, max_tokens=1024))
    c.backend = backend_block()
    c.judge_backend = backend_block(kind="")
    # kind "distilled" (the `plumbing` default): our own LM, trained from scratch inside the run on the scripted
    # teacher's replies to every agent prompt of `teacher_limit` CBNames queries after `teacher_offset` (disjoint
    # from the evaluated ones), cached in WORKDIR/distill (a resume does not retrain); generator and judge alike
    c.distill = ml_collections.ConfigDict(dict(teacher_offset=100, teacher_limit=40, steps=300, batch_size=16,
                                               vocab_size=2048, max_prompt_tokens=128, max_reply_tokens=320,
                                               d_model=128, n_layers=2, lr=3e-3, seed=0, scripted_reference=True))
    if variant == "plumbing":
        c.backend.kind = "distilled"
        c.limit = 2
        c.loop.max_round = 2
        # greedy: a 0.7M-parameter student sampled at 0.7 breaks its JSON (measured: 3 of 14 calls parsed)
        c.gen.temperature = 0.0
        c.judge_gen.temperature = 0.0
    if variant == "tiny":
        # The project's own LM in process (a `configs/lm.py:tiny` run): a plumbing check of the real model path
        # (tokenizer, chat template, jitted decoding, traces), not a quality claim; the labels stay `plumbing`.
        c.backend.update(kind="project", checkpoint="runs/head/lm_tiny_s0", chat_template="plain", max_batch=4)
        c.gen.update(max_tokens=16)
        c.judge_gen.update(max_tokens=16)
        c.loop.max_round = 1
        c.limit = 1
    for key in ("kind", "checkpoint", "base_url", "model", "record", "replay"):
        if args[key]:
            c.backend[key] = args[key]
    if args.kind and args.kind not in ("mock", "distilled") and variant not in ("tiny", "plumbing"):
        c.plumbing = False
    if args.limit >= 0:
        c.limit = args.limit
    if args.poems:
        c.poems = args.poems
    if args.hanzi:
        c.hanzi = args.hanzi
    if args.names:
        c.names = args.names
    if args.surnames:
        c.surnames = args.surnames
    return c
