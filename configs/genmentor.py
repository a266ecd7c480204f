r"""GenMentor: goal-oriented multi-agent tutoring, with the goal-to-skill model trained here (docs/genmentor.md).

  # offline default: the goal-to-skill model trained on the shipped taxonomy sample (with reasoning tracks),
  # evaluated against BM25 on held-out goals, then one full tutoring run over simulated learners on our own
  # models only: the trained goal-to-skill model as the Skill Requirement Mapper and, for every other agent and
  # the judge, a small LM trained from scratch inside the run on the scripted teacher's replies (backend kind
  # "distilled", cached in WORKDIR/tutoring_distill) decoding under each agent's JSON schema
  # (tutoring.constrain_json): a plumbing run (tutoring.plumbing = true), not quality
  # (the scripted model alone: --config.backend.kind=mock; tutoring only on the student: pipeline,kind=distilled)
  python -m experiments.run --config configs/genmentor.py --workdir runs/genmentor
  # goal-to-skill only: sft (tracks), sft_no_tracks (JSON only); table = sft for 3 seeds
  python -m experiments.run --config configs/genmentor.py:sft --workdir runs/genmentor_sft
  # a user taxonomy (same JSON format as humanai_jax/methods/genmentor/assets/taxonomy_sample.json):
  python -m experiments.run --config configs/genmentor.py:sft,taxonomy=/path/taxonomy.json --workdir DIR
  # teacher-synthesised data (docs/genmentor.md §6) instead of the taxonomy builder, e.g. from an OpenAI-compatible teacher:
  python -m experiments.run --config configs/genmentor.py:sft --config.synth.goals=/path/goals.jsonl \
      --config.synth.teacher.kind=openai --config.synth.teacher.base_url=URL --config.synth.teacher.model=T --workdir DIR
  # from a HF checkpoint dir (its tokenizer and chat template):
  python -m experiments.run --config configs/genmentor.py:sft,hf_path=/path/Qwen2.5-0.5B-Instruct --workdir DIR
  # the tutoring pipeline over any OpenAI-compatible endpoint (our server or a vendor), or a HF checkpoint:
  python -m experiments.run --config configs/genmentor.py:pipeline,kind=openai,base_url=http://127.0.0.1:8000,model=M \
      --workdir runs/genmentor_M
  python -m experiments.run --config configs/genmentor.py:pipeline,kind=hf,checkpoint=/path/ckpt --workdir DIR
  # record a run, then replay it exactly:
  ... :pipeline,record=/tmp/cassette.jsonl ...   then   ... :pipeline,kind=replay,replay=/tmp/cassette.jsonl ...

Variants: default, sft, sft_no_tracks, table, pipeline, smoke (a few steps + 1 learner, tests).
Variant-string options: kind=mock|distilled|hf|openai|replay, checkpoint=, base_url=, model=, record=, replay=, taxonomy=,
hf_path=, steps=N, learners=N, mapper=trained|backend, matcher=exact|token_jaccard|llm (llm: the judge backend
says which predicted and gold skill names are the same skill; one call per distinct skill list).
"""

import ml_collections

from humanai_jax import configs
from humanai_jax.configs import choose_variant, parse_arg

_VARIANTS = {v: {} for v in ("default", "sft", "sft_no_tracks", "table", "pipeline", "smoke")}


def backend_block(**overrides) -> ml_collections.ConfigDict:
    """Fields read by humanai_jax.methods.genmentor.backends.build_backend."""
    b = dict(kind="mock", checkpoint="", tokenizer="", base_url="", model="", api_key_env="OPENAI_API_KEY",
             timeout_s=120.0, max_concurrency=8, max_batch=16, seed=0, record="", replay="")
    b.update(overrides)
    return ml_collections.ConfigDict(b)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, rest = choose_variant(arg, _VARIANTS, default="default")
    args = parse_arg(rest, kind="", checkpoint="", base_url="", model="", record="", replay="", taxonomy="",
                     hf_path="", steps=0, learners=0, mapper="", matcher="")
    c = ml_collections.ConfigDict()
    c.experiment = "genmentor"
    c.variant = variant
    c.seed = 0
    c.seeds = ()  # non-empty: the goal-to-skill model is trained once per seed (WORKDIR/goal2skill/seed_<s>)
    c.parts = {"sft": "goal2skill", "sft_no_tracks": "goal2skill", "table": "goal2skill",
               "pipeline": "tutoring"}.get(variant, "goal2skill,tutoring")

    # --- goal-to-skill data -----------------------------------------------------------------------------
    c.taxonomy = args.taxonomy  # "" = the shipped sample (assets/taxonomy_sample.json)
    c.dataset = ""  # a dataset JSONL ({goal, skill_requirements, split, track?}) instead of building one
    # teacher synthesis (docs/genmentor.md §6): goals file (JSONL {goal, id?, split?} or text, one per line) answered by the
    # teacher backend (track + skills, validated, capped repair); the result replaces the taxonomy dataset
    c.synth = ml_collections.ConfigDict(dict(goals="", teacher=backend_block(kind=""),  # kind required with goals
                                             gen=dict(temperature=0.0, top_p=1.0, max_tokens=1024)))
    c.data = ml_collections.ConfigDict(dict(
        tracks=variant != "sft_no_tracks",  # target = reasoning track + JSON (False: JSON only, "w/o tracks")
        fractions=(0.7, 0.15, 0.15),  # train / val / test by (role, focus, seniority) combination
        vocab_size=1024, seq_len=320, seed=0,  # longest sample: 300 tokens (vocab 1024)
    ))
    # --- the model (shared blocks): a tiny Qwen2-style model from scratch, or hf_path ---------------------
    c.model = configs.model_block(hf_path=args.hf_path, d_model=128, n_layers=2, n_heads=4, n_kv_heads=2,
                                  mlp_dim=384)
    c.mesh = configs.mesh_block(fsdp=1)
    c.rules = configs.rules_block()
    c.optim = configs.optim_block(lr=3e-3, warmup_steps=30, weight_decay=0.0, end_lr_frac=0.05)
    c.train = configs.train_block(steps=600, batch_size=16, log_every=50, eval_every=150, progress=False)
    c.ckpt = configs.ckpt_block(every=0, keep=1, async_save=False)
    c.eval = ml_collections.ConfigDict(dict(batch=64, max_new_tokens=256, bootstrap_resamples=2000,
                                            max_val=0, max_test=0))  # > 0: only the first N goals (smoke)

    # --- tutoring run ------------------------------------------------------------------------------------
    c.tutoring = ml_collections.ConfigDict(dict(
        learners=2,  # simulated learners (held-out goals of the goal-to-skill split)
        session_count=3, path_refine_iters=2, simulate_sessions=2, quiz=(3, 0, 0, 0), judge=True,
        content_methods="genmentor,wo_refinement,dirgen,rag,outline_rag", retrieval_dir="", retrieval_k=5,
        max_attempts=3, matcher="exact",  # skill P/R matcher in the tutoring run: exact | token_jaccard | llm
        mapper="trained",  # trained: the goal-to-skill model of this run in process; backend: the main backend
        # True: every JSON-only agent's schema is sent as response_format, so a backend that enforces it (ours, the
        # server, vendors' json_schema mode) decodes only documents of that shape (docs/genmentor.md)
        constrain_json=False,
    ))
    c.plumbing = True  # the mock backend's numbers mean nothing; set False for a real backend run
    c.gen = ml_collections.ConfigDict(dict(temperature=0.0, top_p=1.0, max_tokens=2048))
    c.judge_gen = ml_collections.ConfigDict(dict(temperature=0.0, top_p=1.0, max_tokens=512))
    c.backend = backend_block()
    c.judge_backend = backend_block(kind="")  # "" = the main backend
    # backend kind "distilled" (the `default` variant's tutoring run): our own LM, trained from scratch inside the
    # run on the scripted teacher's replies to every agent prompt (judge included) of `teacher_learners` simulated
    # learners drawn from the goal-to-skill *train* split (the evaluated learners are test goals), cached in
    # WORKDIR/tutoring_distill (a resume does not retrain); it answers every agent but the trained skill mapper
    c.distill = ml_collections.ConfigDict(dict(teacher_learners=24, steps=300, batch_size=16, vocab_size=2048,
                                               max_prompt_tokens=128, max_reply_tokens=384, d_model=128, n_layers=2,
                                               lr=3e-3, seed=0, scripted_reference=True))

    for key in ("kind", "checkpoint", "base_url", "model", "record", "replay"):
        if args[key]:
            c.backend[key] = args[key]
    if variant == "default" and not args.kind:
        c.backend.kind = "distilled"
        c.tutoring.constrain_json = True  # the student decodes under each agent's schema (docs/genmentor.md)
    if args.kind and args.kind not in ("mock", "distilled"):
        c.plumbing = False
    if args.steps:
        c.train.steps = args.steps
    if args.learners:
        c.tutoring.learners = args.learners
    if variant == "pipeline":
        c.tutoring.mapper = "backend"
    if args.mapper:
        c.tutoring.mapper = args.mapper
    if args.matcher:
        if args.matcher not in ("exact", "token_jaccard", "llm"):
            raise ValueError(f"matcher={args.matcher!r}; valid: exact, token_jaccard, llm")
        c.tutoring.matcher = args.matcher
    if variant == "table":
        c.seeds = (0, 1, 2)
    if variant == "smoke":
        c.model.update(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=64)
        c.train.update(steps=4, batch_size=4, log_every=2, eval_every=2)
        c.eval.update(max_new_tokens=8, bootstrap_resamples=200, max_val=8, max_test=8)
        c.tutoring.update(learners=1, judge=True, mapper="backend")
    return c
