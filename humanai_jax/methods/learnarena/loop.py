"""The LearnArena loops (spec learnarena.md §3-4).

`run_rounds` is the integrated benchmark loop (`learnarena_benchmark.py`) and, with flags, the LfC and
LfE experiments:

  concept (LfC)   Player-0 writes brief winning strategies from its first observation, once per game
                  (`ConceptCache`: one file per game id and Player-0 model).
  learning        from round 2 with experiences: top-3 by score (stable); Player-1 self-analysis (LfE) and
                  Player-0's instructor guide (LfI) from them; Player-1's system prompt = blocks + reminder +
                  base prompt. Round 1 or learning off: the concept block only.
  trajectories    (LfE runner) the selected experiences' full trajectories are added as a block; the pool
                  is the last `history_limit` experiences.
  play            env.reset; loop get_observation -> agent -> step; rewards = close(); outcome by rewards.
  after the game  Player-0 instructor feedback and the judge score (or the outcome score); the experience is
                  stored. A game that raises (a backend failure) is outcome "Error", score 0, not stored.

Player-1 may be a chat agent or an LLM-free player (`players.make_player`), which gives the baselines on
the same loop against the same Player-0.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence

from humanai_jax.agents import BackendError, GenConfig
from humanai_jax.eval import stats
from humanai_jax.methods.learnarena import games as games_lib
from humanai_jax.methods.learnarena.agents import RoleAgent, Tracer
from humanai_jax.methods.learnarena.learning import pool_of, select_top
from humanai_jax.methods.learnarena.prompting import (
    PROMPTS,
    analysis_prompt,
    combiner_prompt,
    compose_player_system,
    concept_prompt,
    trajectories_text,
)
from humanai_jax.methods.learnarena.scoring import judge_score, outcome_score

__all__ = ["ConceptCache", "play_game", "run_rounds", "summarize_rounds", "outcome_of"]


class ConceptCache:
    """Concept texts on disk, one JSON file per (game id, Player-0 model); `directory=""` keeps them in memory."""

    def __init__(self, directory: str = ""):
        self.directory, self._mem = directory, {}

    def _path(self, game: str, model: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{game}__{model}")
        return os.path.join(self.directory, f"{safe}.json")

    def get(self, game: str, model: str, make: Callable[[], str]) -> str:
        key = (game, model)
        if key in self._mem:
            return self._mem[key]
        path = self._path(game, model) if self.directory else None
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                text = json.load(f)["summary"]
        else:
            text = make()
            if path:
                os.makedirs(self.directory, exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    json.dump({"game": game, "model": model, "summary": text}, f, ensure_ascii=False)
        self._mem[key] = text
        return text


def outcome_of(rewards: Mapping[int, float]) -> str:
    if rewards[0] > rewards[1]:
        return "Player 0 won"
    if rewards[1] > rewards[0]:
        return "Player 1 won"
    return "Draw"


def play_game(env, players: Mapping[int, Callable[[str], str]], *, seed: int | None = None,
              max_steps: int | None = None) -> tuple[list[dict], dict]:
    """Plays one game from `env.reset(seed=seed)` (the deal or setup of card and hidden-piece games); returns
    `(moves [{player, observation, action}], rewards {0: r0, 1: r1})`. `max_steps` defaults to a bound no legal
    game reaches: 500, or two steps per turn of a game with a `max_turns` draw rule (each move may follow one
    invalid try) -- reaching it means the env failed to end, an error."""
    env.reset(num_players=2, seed=seed)
    if max_steps is None:
        max_steps = max(500, 2 * getattr(env, "max_turns", 0) + 2)
    moves, done = [], False
    while not done:
        if len(moves) >= max_steps:
            raise RuntimeError(f"{env.env_id}: no end after {max_steps} steps")
        pid, observation = env.get_observation()
        action = players[pid](observation)
        done, _ = env.step(action)
        moves.append({"player": pid, "observation": observation, "action": action})
    rewards = env.close()
    return moves, {0: float(rewards[0]), 1: float(rewards[1])}


def _concept(player0: RoleAgent, env_factory, game: str) -> str:
    env = env_factory()
    env.reset(num_players=2)
    _, observation = env.get_observation()
    with player0.role(PROMPTS.text("concept_system"), "learnarena.concept") as agent:
        return agent(concept_prompt(game, observation))


def _safe_call(agent: RoleAgent, system: str, tag: str, prompt: str, errors: list) -> str:
    """A learning-block call; a failure leaves the block out (and is counted)."""
    try:
        with agent.role(system, tag) as a:
            return a(prompt)
    except BackendError as e:
        errors.append(f"{tag}: {e}")
        return ""


def run_rounds(game: str, player0: RoleAgent, player1: RoleAgent | Callable[[str], str] | str, *,
               num_rounds: int = 20, learning: bool = True, use_concept: bool = True, instructor: bool = True,
               trajectories: bool = False,
               history_limit: int | None = None, top_k: int = 3, score_mode: str = "judge",
               judge_cfg: GenConfig = GenConfig(temperature=0.0, max_tokens=512), judge_attempts: int = 1,
               concept_cache: ConceptCache | None = None, env_factory: Callable[[], object] | None = None,
               tracer: Tracer | None = None, seed: int = 0, arm: str = "", log=print) -> list[dict]:
    """Rounds of one game. `player1`: a RoleAgent (evaluated model) or a player kind "random" /
    "heuristic" (baselines: no learning blocks). Returns one record per round (docs/learnarena.md §3.6 fields); each round's
    `game_end` trace event carries what the summaries are computed from (and `arm`, the results' name for
    this setting), so `experiments.replay_metrics` can recompute them from the trace."""
    import numpy as np

    env_factory = env_factory or (lambda: games_lib.make(game))
    concept_cache = concept_cache or ConceptCache()
    is_model = isinstance(player1, RoleAgent)
    base_system = player1.system_prompt if is_model else ""
    model0 = getattr(player0.backend, "name", "player0")
    model1 = getattr(player1.backend, "name", "player1") if is_model else f"baseline:{player1}"
    concept = ""
    if use_concept and is_model:
        try:
            concept = concept_cache.get(game, model0, lambda: _concept(player0, env_factory, game))
        except BackendError as e:
            log(f"  concept for {game} failed: {e}")
    experiences: list[dict] = []
    records = []
    rng = np.random.default_rng(seed)
    for rnd in range(1, num_rounds + 1):
        if tracer is not None:
            tracer.context = {"item_id": game, "round": rnd, "episode": model1}
        block_errors: list[str] = []
        selected = []
        env = env_factory()
        if is_model:
            guide = analysis = traj = ""
            pool = pool_of(experiences, history_limit)
            if learning and rnd > 1 and pool:
                selected = select_top(pool, top_k)
                player1.system_prompt = base_system
                analysis = _safe_call(player1, PROMPTS.text("analysis_system"), "learnarena.analysis",
                                      analysis_prompt(selected), block_errors)
                if instructor:  # the LfE runner has none (docs/learnarena.md §4)
                    guide = _safe_call(player0, PROMPTS.text("combiner_system"), "learnarena.combiner",
                                       combiner_prompt(selected), block_errors)
                traj = trajectories_text(selected) if trajectories else ""
            player1.system_prompt = compose_player_system(base_system, concept=concept, guide=guide, analysis=analysis,
                                                          trajectories=traj, learning=bool(selected))
            p1 = player1
        else:
            from humanai_jax.methods.learnarena.players import make_player

            p1 = make_player(player1, env, rng)
        record = {"game": game, "round": rnd, "player0_model": model0, "player1_model": model1,
                  "learning_enabled": learning and is_model, "concept": bool(concept),
                  "player1_system_prompt": player1.system_prompt if is_model else None,
                  "selected_experience_info": [{"round": e["round"], "outcome": e["outcome"], "score": e["score"]}
                                               for e in selected],
                  "block_errors": block_errors}
        try:
            moves, rewards = play_game(env, {0: player0, 1: p1}, seed=seed * 1000 + rnd)
            outcome = outcome_of(rewards)
            last = moves[-1]
            with player0.role(PROMPTS.text("instructor_system"), "learnarena.instructor") as agent:
                feedback = agent(PROMPTS.render("instructor_user", outcome=outcome, observation=last["observation"],
                                                action=last["action"]))
            judge_error = None
            if score_mode == "judge":
                score, judge_error = judge_score(player0.backend, outcome, last, judge_cfg, max_attempts=judge_attempts)
            elif score_mode == "outcome":
                score = outcome_score(outcome)
            else:
                raise ValueError(f"score_mode must be 'judge' or 'outcome', got {score_mode!r}")
            record.update(rewards=[rewards[0], rewards[1]], outcome=outcome, player1_won=rewards[1] > rewards[0],
                          moves=moves, instructor_feedback=feedback, score=score, judge_error=judge_error, error=None)
            experiences.append({"round": rnd, "outcome": outcome, "score": score, "moves": moves,
                                "instructor_feedback": feedback})
        except BackendError as e:
            record.update(rewards=[0.0, 0.0], outcome="Error", player1_won=False, moves=[], instructor_feedback=None,
                          score=0, judge_error=None, error=str(e))
        if tracer is not None:
            tracer.event("game_end", {"arm": arm, **{k: record[k] for k in ("game", "round", "outcome", "score", "rewards",
                                                                             "error", "judge_error")}})
        log(f"  {game} round {rnd}/{num_rounds} ({model1}): {record['outcome']}, score {record['score']}")
        records.append(record)
    if is_model:
        player1.system_prompt = base_system
    return records


def summarize_rounds(records: Sequence[Mapping]) -> dict:
    """Player-1's wins / draws / losses / errors, win rate over all rounds (draws and errors are non-wins)
    with its exact 95% CI, mean score, judge failures."""
    n = len(records)
    wins = sum(r["outcome"] == "Player 1 won" for r in records)
    lo, hi = stats.binomial_ci(wins, n)
    return {"rounds": n, "wins": wins, "draws": sum(r["outcome"] == "Draw" for r in records),
            "losses": sum(r["outcome"] == "Player 0 won" for r in records),
            "errors": sum(r["outcome"] == "Error" for r in records),
            "win_rate": wins / n if n else 0.0, "win_rate_ci95": [lo, hi],
            "mean_score": sum(r["score"] for r in records) / n if n else 0.0,
            "judge_failures": sum(r.get("judge_error") is not None for r in records)}
