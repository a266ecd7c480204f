"""Tic Tac Toe (rules of textarena 0.5.6 as in spec learnarena.md §6): Player 0 moves first and plays
`O`, Player 1 plays `X`; a move is `[row, col]` with row, col in 0-2 (`[1 1]` is the centre), the first
match of `\\[\\s*(\\d)\\s*,?\\s*(\\d)\\s*\\]`; three in a row wins; a full board is a draw."""

from __future__ import annotations

import re

from humanai_jax.methods.learnarena.games.base import TwoPlayerTextGame

__all__ = ["TicTacToe", "LINES", "winner_of"]

MOVE = re.compile(r"\[\s*(\d)\s*,?\s*(\d)\s*\]")
LINES = [*([(r, c) for c in range(3)] for r in range(3)), *([(r, c) for r in range(3)] for c in range(3)),
         [(i, i) for i in range(3)], [(i, 2 - i) for i in range(3)]]
MARKS = {0: "O", 1: "X"}


def winner_of(board) -> str | None:
    """The mark with three in a row on a 3x3 board ("" = empty), or None."""
    for line in LINES:
        a, b, c = (board[r][col] for r, col in line)
        if a and a == b == c:
            return a
    return None


def render(board) -> str:
    return "\n---+---+---\n".join("|".join(f" {board[r][c] or ' '} " for c in range(3)) for r in range(3))


class TicTacToe(TwoPlayerTextGame):
    env_id = "TicTacToe-v0"

    def _new_state(self) -> None:
        self.board = [["" for _ in range(3)] for _ in range(3)]

    def _player_prompt(self, pid: int) -> str:
        return (f"You are Player {pid} in Tic Tac Toe. Your mark is '{MARKS[pid]}'; your opponent plays "
                f"'{MARKS[1 - pid]}'.\n"
                "Your goal is to get three of your marks in a row (horizontally, vertically, or diagonally).\n"
                "On your turn, submit the cell you want as '[row, col]' with row and col from 0 to 2; "
                "for example '[1 1]' places your mark in the centre.\n"
                "An invalid move (wrong format or an occupied cell) must be resubmitted; a second invalid "
                "move in the same turn loses the game.")

    def _state_message(self) -> str:
        return f"Current Board:\n\n{render(self.board)}\n\nAvailable Moves: {', '.join(self.legal_actions())}"

    def legal_actions(self) -> list[str]:
        return [f"[{r}, {c}]" for r in range(3) for c in range(3) if not self.board[r][c]]

    def _apply(self, pid: int, action: str) -> str | None:
        m = MOVE.search(action)
        if m is None:
            return f"Invalid move format. Player {pid} did not respond with a valid move '[row, col]'."
        r, c = int(m.group(1)), int(m.group(2))
        if not (0 <= r < 3 and 0 <= c < 3):
            return f"Invalid cell [{r}, {c}]: row and col must be between 0 and 2."
        if self.board[r][c]:
            return f"Invalid move. Cell [{r}, {c}] is already occupied."
        self.board[r][c] = MARKS[pid]
        if winner_of(self.board):
            self._win(pid)
        elif all(self.board[i][j] for i in range(3) for j in range(3)):
            self._draw()
        return None
