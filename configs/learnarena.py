r"""LearnArena: general learning ability (LfI, LfC, LfE) on offline text games and math (docs/learnarena.md).

  # integrated benchmark (concept + instructor + experience), Player-0 and Player-1 behind OpenAI-compatible
  # endpoints (our server or any vendor; they may be the same server with two model names):
  python -m experiments.run --config configs/learnarena.py:benchmark,base_url=http://127.0.0.1:8000,model=M1,player0_model=M0 \
      --workdir runs/learnarena_bench
  python -m experiments.run --config configs/learnarena.py:lfc,... --workdir runs/la_lfc    # with vs without concept
  python -m experiments.run --config configs/learnarena.py:lfe,... --workdir runs/la_lfe    # experience vs none
  python -m experiments.run --config configs/learnarena.py:lfi,base_url=...,model=M --config.lfi.data_dir=DIR \
      --config.lfi.files=gsm8k.jsonl,svamp.jsonl --workdir runs/la_lfi
  # fully offline plumbing check (scripted first-legal-move players, seconds):
  python -m experiments.run --config configs/learnarena.py:scripted --workdir runs/la_scripted

Games (native, textarena is not used): TicTacToe-v0 (textarena 0.5.6 rules), ConnectFour-v0 and
UltimateTicTacToe-v0 (ours, in TextArena's style).
Baselines on the same loop against the same Player-0: `random` legal move and `heuristic` (perfect
minimax for TicTacToe). Variant options: base_url=, model= (Player-1), player0_url=, player0_model=,
kind= (Player-1 backend kind, see configs/motivebench.py), rounds=N, games=A;B.
`game_gen` replaces the reference's "server default" sampling (which cannot be expressed in a request).
"""

import ml_collections

from humanai_jax.configs import choose_variant, parse_arg

_VARIANTS = {"benchmark": {}, "lfc": {}, "lfe": {}, "lfi": {}, "scripted": {}}


def backend_block(**overrides) -> ml_collections.ConfigDict:
    """Backend fields of humanai_jax.methods.motivebench.backends.build_backend (kind "scripted" here is the
    offline first-legal-move bot of humanai_jax.methods.learnarena.players.scripted_move_backend)."""
    b = dict(kind="openai", script="", checkpoint="", tokenizer="", chat_template="", base_url="", model="",
             api_key_env="OPENAI_API_KEY", timeout_s=120.0, max_concurrency=8, max_batch=16, seed=0, record="",
             replay="")
    b.update(overrides)
    return ml_collections.ConfigDict(b)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, rest = choose_variant(arg, _VARIANTS, default="benchmark")
    args = parse_arg(rest, base_url="", model="", player0_url="", player0_model="", kind="", rounds=0, games="")

    c = ml_collections.ConfigDict()
    c.experiment = "learnarena"
    c.seed = 0
    c.dimension = "benchmark"  # benchmark | lfc | lfe | lfi
    c.games = "TicTacToe-v0,Checkers-v0,Tak-v0,Stratego-v0,SpiteAndMalice-v0,Poker-v0,ConnectFour-v0,UltimateTicTacToe-v0"
    c.num_rounds = 20
    c.limit = 0  # > 0: quick runs, at most N rounds per game and arm (and N math problems per file for lfi)
    c.score_mode = "judge"  # judge (reference code) | outcome (README: win 10, draw 5, loss 0)
    c.judge_attempts = 1  # 1 = the reference (no repair turn)
    c.top_k = 3
    c.history_limit = 0  # LfE pool: last N experiences (0 = all)
    c.baselines = "random,heuristic"  # LLM-free Player-1s on the same loop ("" = none)
    c.concept_dir = ""  # "" = WORKDIR/concepts
    c.player0 = backend_block()  # the fixed opponent, concept writer, instructor and judge
    c.player1 = backend_block()  # the evaluated model
    c.game_gen = ml_collections.ConfigDict(dict(temperature=0.7, top_p=1.0, max_tokens=512, seed=0))
    c.judge_gen = ml_collections.ConfigDict(dict(temperature=0.0, top_p=1.0, max_tokens=512, seed=0))
    c.lfi = ml_collections.ConfigDict(dict(data_dir="", files="", modes="no_hint,passive,interactive",
                                           max_questions=3, limit=0))

    if variant in ("lfc", "lfe", "lfi"):
        c.dimension = variant
    elif variant == "scripted":
        c.player0.kind = "scripted"
        c.player1.kind = "scripted"
        c.num_rounds = 3
    if args.base_url:
        c.player1.base_url = args.base_url
        c.player0.base_url = args.player0_url or args.base_url
    if args.player0_url:
        c.player0.base_url = args.player0_url
    if args.model:
        c.player1.model = args.model
        c.player0.model = args.player0_model or args.model
    if args.player0_model:
        c.player0.model = args.player0_model
    if args.kind:
        c.player1.kind = args.kind
    if args.rounds:
        c.num_rounds = args.rounds
    if args.games:
        c.games = args.games.replace(";", ",")
    return c
