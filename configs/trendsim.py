r"""TrendSim: trending-topic simulation under poisoning attacks (docs/trendsim.md).

  # default: scaled-down run with the rule policy (no LLM), 1 seed, clean vs 30% attackers + moderation sweep
  python -m experiments.run --config configs/trendsim.py --workdir runs/trendsim
  # attack share 0 / 1% / 3% / 10% / 30% x 3 seeds, mean +- std of dE, plus the moderation sweep at 30%
  nice python -m experiments.run --config configs/trendsim.py:sweep --workdir runs/trendsim_sweep
  # the same sweep where the first page cannot saturate (60 agents, 20 comments per page; chosen on validation)
  nice python -m experiments.run --config configs/trendsim.py:sweep_unsaturated --workdir runs/trendsim_sweep_unsat
  # the feed ordered by a content-based recommender (persona <-> comment similarity) instead of the hot list
  nice python -m experiments.run --config configs/trendsim.py:sweep_persona --workdir runs/trendsim_sweep_persona
  # an LLM by config: the project's own model in process (plumbing), any HF checkpoint, any endpoint
  python -m experiments.run --config configs/trendsim.py:llm,kind=project,checkpoint=runs/head/lm_tiny_s0 ...
  python -m experiments.run --config configs/trendsim.py:llm,kind=hf,checkpoint=/path/Qwen2.5-0.5B-Instruct ...
  python -m experiments.run --config configs/trendsim.py:llm,kind=openai,base_url=http://127.0.0.1:8000,model=M ...

Variant-string options: kind=rules|project|hf|openai|replay, checkpoint=, base_url=, model=, record=PATH,
replay=PATH, n_agents=N, n_seeds=N, tweet=I, lang=zh|en. Every field can be overridden with --config.key=value.
"""

import ml_collections

from humanai_jax.configs import choose_variant, parse_arg

_VARIANTS = {"default": {}, "sweep": {}, "sweep_unsaturated": {}, "sweep_persona": {}, "llm": {}}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, rest = choose_variant(arg, _VARIANTS, default="default")
    args = parse_arg(rest, kind="", checkpoint="", base_url="", model="", record="", replay="", n_agents=-1,
                     n_seeds=-1, tweet=-1, lang="")

    c = ml_collections.ConfigDict()
    c.experiment = "trendsim"
    c.seed = 0
    c.n_seeds = 1  # seeds seed .. seed + n_seeds - 1
    c.data_dir = ""  # "" = ../shared/data/trendsim next to the repository
    c.tweet_index = 1
    c.n_agents = 100  # total agents per run (the reference uses 1000)
    c.attack_shares = "0.3"  # comma-separated; a clean run (share 0, no moderation) is always added per seed
    c.share_moderation = False  # moderation in the share sweep (False: the undefended attack effect)
    c.moderation_sweep = "none,0.0,0.25,0.5,0.75"  # split_time values ("none" = no defence); "" = skip
    c.moderation_share = 0.3
    c.sim = ml_collections.ConfigDict(dict(
        window_s=16 * 3600, epoch_num=2, max_step=3, page_size=4, replies_shown=4, schedule_mode="reference",
        sampler="reference", decision_mode="reference", index_mode="reference", lang="zh", compat_format=False,
        batch_window_s=600, temperature=0.95, top_p=1.0, max_tokens=128, checkpoint_every=50, max_errors=0,
        trace_calls=True, feed="hot"))  # feed: hot (reference) | persona (content-based recommender, docs)
    c.backend = ml_collections.ConfigDict(dict(
        kind="rules", flag_threshold=2, invalid_rate=0.02, recovery=0.0, checkpoint="", tokenizer="", chat_template="",
        base_url="", model="", api_key_env="OPENAI_API_KEY", timeout_s=120.0, max_concurrency=8, max_batch=64,
        record="", replay=""))
    c.plots = True

    if variant in ("sweep", "sweep_persona"):
        c.n_seeds = 3
        c.n_agents = 200
        c.attack_shares = "0.01,0.03,0.1,0.3"  # the issue asks for 0 / 10% / 30%; 1% and 3% show where it saturates
        if variant == "sweep_persona":  # the Main page ordered by the content-based recommender (feed.py)
            c.sim.feed = "persona"
    elif variant == "sweep_unsaturated":
        # `sweep` saturates: from 10% attackers every first page (4 comments) is all attacker comments. Here the
        # page (20) holds more comments than 30% of the agents (18 of 60), chosen on validation posts 0 and 3,
        # seeds 100-101, by exposure alone (first-page attacker share at 30% <= 0.9), never by dE (docs/trendsim.md)
        c.n_seeds = 3
        c.n_agents = 60
        c.sim.page_size = 20
        c.attack_shares = "0.01,0.03,0.1,0.3"
    elif variant == "llm":  # a small run for a real model; with the project's tiny LM it checks plumbing only
        c.n_agents = 10
        c.attack_shares = "0.3"
        c.moderation_sweep = ""
        c.sim.max_step = 1
        c.sim.max_tokens = 32
        c.backend.update(kind="project", chat_template="plain")
    for key in ("kind", "checkpoint", "base_url", "model", "record", "replay"):
        if args[key]:
            c.backend[key] = args[key]
    if args.n_agents > 0:
        c.n_agents = args.n_agents
    if args.n_seeds > 0:
        c.n_seeds = args.n_seeds
    if args.tweet >= 0:
        c.tweet_index = args.tweet
    if args.lang:
        c.sim.lang = args.lang
    return c
