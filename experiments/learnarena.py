r"""LearnArena on any chat model: games (integrated benchmark, LfC, LfE) or math (LfI), with the LLM-free
baselines on the same loop.

  python -m experiments.run --config configs/learnarena.py:benchmark,base_url=URL,model=M --workdir DIR

Writes DIR/results.json (`games.<game>.<arm>` summaries: rounds, wins, draws, losses, errors, win_rate with
its exact 95% CI, mean_score; `overall.<arm>` pooled over games; for LfI `lfi.<mode>`), DIR/rounds.json
(one record per round, the reference's fields), DIR/traces.jsonl (every call and game outcome), and
prints the table. See docs/learnarena.md.
"""

from __future__ import annotations

import os
import pathlib
import uuid

from humanai_jax import experiment
from humanai_jax.agents import GenConfig
from humanai_jax.data.jsonl import JsonlWriter
from humanai_jax.eval import stats
from humanai_jax.methods.learnarena import math_lfi
from humanai_jax.methods.learnarena.agents import RoleAgent, TracedBackend, Tracer
from humanai_jax.methods.learnarena.loop import ConceptCache, run_rounds, summarize_rounds
from humanai_jax.methods.learnarena.players import scripted_move_backend
from humanai_jax.methods.learnarena.prompting import PROMPTS
from humanai_jax.methods.motivebench.backends import build_backend

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# arm name -> run_rounds flags, per dimension (baselines are added to every game dimension)
ARMS = {
    "benchmark": {"model": dict(learning=True, use_concept=True, instructor=True)},
    "lfc": {"without_concept": dict(learning=False, use_concept=False),
            "with_concept": dict(learning=False, use_concept=True)},
    "lfe": {"without_experience": dict(learning=False, use_concept=False),
            "with_experience": dict(learning=True, use_concept=False, instructor=False, trajectories=True)},
}


def _backend(block, seed: int):
    if block.kind == "scripted":
        return scripted_move_backend()
    backend, _ = build_backend(block, seed=seed)
    return backend


def _gen(g) -> GenConfig:
    return GenConfig(temperature=float(g.temperature), top_p=float(g.top_p), max_tokens=int(g.max_tokens),
                     seed=int(g.seed))


def _pool(summaries: list[dict]) -> dict:
    rounds = sum(s["rounds"] for s in summaries)
    wins = sum(s["wins"] for s in summaries)
    lo, hi = stats.binomial_ci(wins, rounds)
    out = {k: sum(s[k] for s in summaries) for k in ("rounds", "wins", "draws", "losses", "errors", "judge_failures")}
    out.update(win_rate=wins / rounds if rounds else 0.0, win_rate_ci95=[lo, hi],
               mean_score=sum(s["mean_score"] * s["rounds"] for s in summaries) / rounds if rounds else 0.0)
    return out


def format_table(results: dict) -> str:
    lines = [f"LearnArena {results['dimension']}: Player-1 win rate over {results['num_rounds']} rounds per game "
             f"(exact 95% CI), vs Player-0 {results['player0']}",
             f"{'game':20s} {'arm':22s} {'win rate':>20s} {'W/D/L/err':>12s} {'score':>6s}"]
    for game, arms in [*results["games"].items(), ("overall", results["overall"])]:
        for arm, s in arms.items():
            lo, hi = s["win_rate_ci95"]
            lines.append(f"{game:20s} {arm:22s} {100 * s['win_rate']:6.1f} [{100 * lo:4.1f}-{100 * hi:5.1f}] "
                         f"{s['wins']:>3d}/{s['draws']}/{s['losses']}/{s['errors']:<3d} {s['mean_score']:6.2f}")
    return "\n".join(lines)


def run_games(config, workdir: str, p0_backend, p1_backend, tracer: Tracer) -> dict:
    game_cfg, judge_cfg = _gen(config.game_gen), _gen(config.judge_gen)
    player0 = RoleAgent(p0_backend, PROMPTS.text("player_system"), game_cfg, "learnarena.player0")
    cache = ConceptCache(config.concept_dir or os.path.join(workdir, "concepts"))
    arms = dict(ARMS[config.dimension])
    baselines = [b.strip() for b in config.baselines.split(",") if b.strip()]
    games = [g.strip() for g in config.games.split(",") if g.strip()]
    rounds = min(int(config.num_rounds), int(config.limit)) if config.limit else int(config.num_rounds)
    common = dict(num_rounds=rounds, score_mode=config.score_mode, judge_cfg=judge_cfg,
                  judge_attempts=int(config.judge_attempts), top_k=int(config.top_k),
                  history_limit=int(config.history_limit) or None, concept_cache=cache, tracer=tracer,
                  seed=int(config.seed))
    results, all_rounds = {}, []
    for game in games:
        results[game] = {}
        for arm, flags in arms.items():
            player1 = RoleAgent(p1_backend, PROMPTS.text("player_system"), game_cfg, "learnarena.player1")
            recs = run_rounds(game, player0, player1, **flags, **common, arm=arm)
            results[game][arm] = summarize_rounds(recs)
            all_rounds += [dict(r, arm=arm) for r in recs]
        for kind in baselines:
            recs = run_rounds(game, player0, kind, **common, arm=f"baseline_{kind}")
            results[game][f"baseline_{kind}"] = summarize_rounds(recs)
            all_rounds += [dict(r, arm=f"baseline_{kind}") for r in recs]
    experiment.write_json(os.path.join(workdir, "rounds.json"), {"rounds": all_rounds})
    arm_names = list(next(iter(results.values())).keys()) if results else []
    overall = {arm: _pool([results[g][arm] for g in games]) for arm in arm_names}
    return {"games": results, "overall": overall}


def run_lfi(config, p0_backend, p1_backend) -> dict:
    lc = config.lfi
    data_dir = lc.data_dir or str(REPO_ROOT.parent / "shared" / "data" / "learnarena")
    files = [f.strip() for f in lc.files.split(",") if f.strip()]
    if not files:
        raise ValueError("lfi.files is empty: name the JSONL files in lfi.data_dir (e.g. gsm8k.jsonl,svamp.jsonl)")
    problems = {}
    for f in files:
        probs = math_lfi.load_math(os.path.join(data_dir, f))
        limit = lc.limit or config.limit
        problems[f] = probs[:limit] if limit else probs
    modes = [m.strip() for m in lc.modes.split(",") if m.strip()]
    return {"lfi": math_lfi.evaluate_math(problems, p1_backend, p0_backend, p0_backend, modes=modes,
                                          max_questions=int(lc.max_questions))}


def run(config, workdir: str) -> dict:
    if config.dimension not in (*ARMS, "lfi"):
        raise ValueError(f"dimension must be one of {[*ARMS, 'lfi']}, got {config.dimension!r}")
    os.makedirs(workdir, exist_ok=True)
    with JsonlWriter(os.path.join(workdir, "traces.jsonl")) as writer:
        tracer = Tracer(writer, run_id=uuid.uuid4().hex[:12])
        p0 = TracedBackend(_backend(config.player0, config.seed), tracer)
        p1 = TracedBackend(_backend(config.player1, config.seed), tracer)
        results = {"dimension": config.dimension, "player0": p0.name, "player1": p1.name,
                   "num_rounds": min(int(config.num_rounds), int(config.limit)) if config.limit
                   else int(config.num_rounds), "score_mode": config.score_mode,
                   "deviations": ["game moves use game_gen sampling; the reference sends none (server defaults)"]}
        if config.dimension == "lfi":
            results.update(run_lfi(config, p0, p1))
            print({m: r["pooled"] for m, r in results["lfi"].items()}, flush=True)
        else:
            results.update(run_games(config, workdir, p0, p1, tracer))
            table = format_table(results)
            print(table, flush=True)
            with open(os.path.join(workdir, "table.txt"), "w", encoding="utf-8") as f:
                f.write(table + "\n")
    return results


def replay_metrics(trace_path: str) -> dict:
    """`experiments.replay_metrics` hook (game dimensions): every game x arm summary and the pooled `overall`,
    recomputed from the trace's `game_end` events alone; they must equal results.json's `games` / `overall`."""
    from humanai_jax.data.jsonl import iter_jsonl

    by_arm: dict[str, dict[str, list]] = {}
    for _, rec in iter_jsonl(trace_path):
        if rec.get("type") == "event" and rec.get("name") == "game_end":
            d = rec["data"]
            by_arm.setdefault(d["game"], {}).setdefault(d["arm"], []).append(d)
    if not by_arm:
        raise ValueError(f"{trace_path}: no game_end events (an lfi run, or a trace from before arms were traced)")
    games = {g: {arm: summarize_rounds(recs) for arm, recs in arms.items()} for g, arms in by_arm.items()}
    arm_names = list(next(iter(games.values())))
    overall = {arm: _pool([games[g][arm] for g in games]) for arm in arm_names}
    run_dir = os.path.dirname(os.path.abspath(trace_path))
    return {"metrics": {"games": games, "overall": overall}, "results": os.path.join(run_dir, "results.json"),
            "key": ""}

