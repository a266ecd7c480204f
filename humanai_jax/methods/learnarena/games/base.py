"""The `GameEnv` protocol (TextArena 0.5.6's API as LearnArena uses it) and a base class for
two-player, turn-based text games with TextArena's observation and invalid-move conventions.

    env.reset(num_players=2, seed=None)
    pid, observation = env.get_observation()      # whose turn, and everything that player has seen
    done, info = env.step(action)                 # action: the player's raw text
    rewards = env.close()                         # {0: r0, 1: r1}

Observation (TextArena's `LLMObservationWrapper`): every message the player has received so far, each as
`\\n[GAME] msg` or `\\n[Player k] msg`, concatenated; the first is the player's own game prompt.
Invalid moves (TextArena's `error_allowance=1`): the first invalid move in a turn is broadcast with a
request to resubmit and the same player moves again; a second invalid move in the same turn ends the
game, -1 for the offender and 0 for the other. Win / loss: +1 / -1; draw: 0 / 0.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["GameEnv", "TwoPlayerTextGame", "GAME_ID"]

GAME_ID = -1


class GameEnv(Protocol):
    env_id: str

    def reset(self, num_players: int = 2, seed: int | None = None) -> None: ...

    def get_observation(self) -> tuple[int, str]: ...

    def step(self, action: str) -> tuple[bool, dict]: ...

    def close(self) -> dict[int, float]: ...


class TwoPlayerTextGame:
    """Base class: message log, turns, the invalid-move allowance, outcome. Subclasses implement
    `_new_state()`, `_player_prompt(pid)`, `_state_message()`, `_apply(pid, action) -> error | None`
    (which calls `_win(pid)` / `_draw()` on a terminal move) and `legal_actions()`."""

    env_id = ""
    error_allowance = 1

    def reset(self, num_players: int = 2, seed: int | None = None) -> None:
        if num_players != 2:
            raise ValueError(f"{self.env_id} is a two-player game, got num_players={num_players}")
        self.current_player = 0
        self.done = False
        self.rewards: dict[int, float] | None = None
        self.reason = ""
        self.turn = 0
        self._invalid_in_turn = 0
        self._inbox: dict[int, list[tuple[int, str]]] = {0: [], 1: []}
        self._new_state()
        for pid in (0, 1):
            self._send(GAME_ID, pid, self._player_prompt(pid))
        self._send(GAME_ID, None, self._state_message())

    # ------------------------------------------------------------------ subclass hooks
    def _new_state(self) -> None:
        raise NotImplementedError

    def _player_prompt(self, pid: int) -> str:
        raise NotImplementedError

    def _state_message(self) -> str:
        raise NotImplementedError

    def _apply(self, pid: int, action: str) -> str | None:
        raise NotImplementedError

    def legal_actions(self) -> list[str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ protocol
    def _send(self, sender: int, to: int | None, message: str) -> None:
        for pid in (0, 1) if to is None else (to,):
            self._inbox[pid].append((sender, message))

    def observation_of(self, pid: int) -> str:
        return "".join(f"\n[GAME] {m}" if s == GAME_ID else f"\n[Player {s}] {m}" for s, m in self._inbox[pid])

    def get_observation(self) -> tuple[int, str]:
        return self.current_player, self.observation_of(self.current_player)

    def _win(self, pid: int) -> None:
        self.done, self.rewards, self.reason = True, {pid: 1.0, 1 - pid: -1.0}, f"Player {pid} has won!"

    def _draw(self) -> None:
        self.done, self.rewards, self.reason = True, {0: 0.0, 1: 0.0}, "The game is a draw!"

    def step(self, action: str) -> tuple[bool, dict]:
        if self.done:
            raise RuntimeError(f"{self.env_id}: step() after the game ended ({self.reason})")
        pid = self.current_player
        self._send(pid, None, action)
        error = self._apply(pid, action)
        if error is not None:
            return self._reject(pid, error)
        self._invalid_in_turn = 0
        self.turn += 1
        if self.done:
            self._send(GAME_ID, None, self.reason)
            return True, {"reason": self.reason}
        self.current_player = 1 - pid
        self._send(GAME_ID, None, self._state_message())
        return False, {}

    def _reject(self, pid: int, error: str) -> tuple[bool, dict]:
        """An invalid move: the first in a turn asks for a resubmission, the next one loses the game."""
        self._invalid_in_turn += 1
        if self._invalid_in_turn > self.error_allowance:
            self.done, self.rewards = True, {pid: -1.0, 1 - pid: 0.0}
            self.reason = f"Player {pid} made an invalid move again. Reason: {error}"
            self._send(GAME_ID, None, self.reason)
            return True, {"reason": self.reason, "invalid_move": True}
        self._send(GAME_ID, None, f"Player {pid} attempted an invalid move. Reason: {error} "
                                  "Please resubmit a valid move and remember to follow the game rules to avoid "
                                  "penalties.")
        return False, {"reason": error, "invalid_move": True}

    def close(self) -> dict[int, float]:
        if not self.done:
            raise RuntimeError(f"{self.env_id}: close() before the game ended")
        return dict(self.rewards)
