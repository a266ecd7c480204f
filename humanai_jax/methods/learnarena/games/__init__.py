"""Native offline game environments for LearnArena (textarena is not a dependency).

`make(env_id)` builds one: TicTacToe-v0 (textarena 0.5.6 rules, docs/learnarena.md §6), Checkers-v0 (textarena 0.5.6's
simplified rules), Tak-v0, Stratego-v0, SpiteAndMalice-v0 and Poker-v0 (textarena's current rules, re-implemented),
ConnectFour-v0 and UltimateTicTacToe-v0 (ours, in TextArena's style).
All follow the `GameEnv` protocol of `base.py`.
"""

from __future__ import annotations

from humanai_jax.methods.learnarena.games.base import GAME_ID, GameEnv, TwoPlayerTextGame
from humanai_jax.methods.learnarena.games.checkers import Checkers
from humanai_jax.methods.learnarena.games.connect_four import ConnectFour
from humanai_jax.methods.learnarena.games.poker import Poker
from humanai_jax.methods.learnarena.games.spite_and_malice import SpiteAndMalice
from humanai_jax.methods.learnarena.games.stratego import Stratego
from humanai_jax.methods.learnarena.games.tak import Tak
from humanai_jax.methods.learnarena.games.tictactoe import TicTacToe
from humanai_jax.methods.learnarena.games.ultimate_tictactoe import UltimateTicTacToe

__all__ = ["GAME_ID", "GameEnv", "TwoPlayerTextGame", "TicTacToe", "ConnectFour", "UltimateTicTacToe", "Checkers", "Tak",
           "Stratego", "SpiteAndMalice", "Poker", "GAMES",
           "make"]

GAMES = {"TicTacToe-v0": TicTacToe, "ConnectFour-v0": ConnectFour, "UltimateTicTacToe-v0": UltimateTicTacToe,
         "Checkers-v0": Checkers, "Tak-v0": Tak, "Stratego-v0": Stratego, "SpiteAndMalice-v0": SpiteAndMalice,
         "Poker-v0": Poker}


def make(env_id: str) -> TwoPlayerTextGame:
    if env_id not in GAMES:
        raise ValueError(f"unknown game {env_id!r}; native games: {sorted(GAMES)} (textarena is not installed)")
    return GAMES[env_id]()
