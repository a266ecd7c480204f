"""Connect Four (ours, in TextArena's style): 6 rows x 7 columns, Player 0 plays `X` and moves first,
Player 1 plays `O`; a move is `[col]` with col in 0-6 (first match of `\\[\\s*(?:col\\s*)?(\\d+)\\s*\\]`),
the disc falls to the lowest empty row; four in a row (horizontal, vertical, diagonal) wins; a full board
is a draw. A full or out-of-range column is an invalid move."""

from __future__ import annotations

import re

from humanai_jax.methods.learnarena.games.base import TwoPlayerTextGame

__all__ = ["ConnectFour", "ROWS", "COLS", "four_in_a_row", "drop_row"]

ROWS, COLS = 6, 7
MOVE = re.compile(r"\[\s*(?:col\s*)?(\d+)\s*\]", re.I)
MARKS = {0: "X", 1: "O"}


def drop_row(board, col: int) -> int | None:
    """The row a disc dropped in `col` lands on (row 0 is the top), or None for a full column."""
    for r in range(ROWS - 1, -1, -1):
        if not board[r][col]:
            return r
    return None


def four_in_a_row(board, r: int, c: int) -> bool:
    """Whether the disc at (r, c) completes four in a row."""
    mark = board[r][c]
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        n = 1
        for sign in (1, -1):
            rr, cc = r + sign * dr, c + sign * dc
            while 0 <= rr < ROWS and 0 <= cc < COLS and board[rr][cc] == mark:
                n += 1
                rr, cc = rr + sign * dr, cc + sign * dc
        if n >= 4:
            return True
    return False


def render(board) -> str:
    head = " " + " ".join(str(c) for c in range(COLS))
    return "\n".join([head] + ["|" + "|".join(board[r][c] or "." for c in range(COLS)) + "|" for r in range(ROWS)])


class ConnectFour(TwoPlayerTextGame):
    env_id = "ConnectFour-v0"

    def _new_state(self) -> None:
        self.board = [["" for _ in range(COLS)] for _ in range(ROWS)]

    def _player_prompt(self, pid: int) -> str:
        return (f"You are Player {pid} in Connect Four. Your discs are '{MARKS[pid]}'; your opponent's are "
                f"'{MARKS[1 - pid]}'.\n"
                f"The board has {ROWS} rows and {COLS} columns; a disc dropped in a column falls to the lowest "
                "empty cell. Connect four of your discs in a row (horizontally, vertically, or diagonally) to win.\n"
                f"On your turn, submit the column as '[col]' with col from 0 to {COLS - 1}; for example '[3]' drops "
                "a disc in the middle column.\n"
                "An invalid move (wrong format or a full column) must be resubmitted; a second invalid move in "
                "the same turn loses the game.")

    def _state_message(self) -> str:
        return f"Current Board:\n\n{render(self.board)}\n\nAvailable Moves: {', '.join(self.legal_actions())}"

    def legal_actions(self) -> list[str]:
        return [f"[{c}]" for c in range(COLS) if not self.board[0][c]]

    def _apply(self, pid: int, action: str) -> str | None:
        m = MOVE.search(action)
        if m is None:
            return f"Invalid move format. Player {pid} did not respond with a valid move '[col]'."
        c = int(m.group(1))
        if not 0 <= c < COLS:
            return f"Invalid column {c}: must be between 0 and {COLS - 1}."
        r = drop_row(self.board, c)
        if r is None:
            return f"Invalid move. Column {c} is full."
        self.board[r][c] = MARKS[pid]
        if four_in_a_row(self.board, r, c):
            self._win(pid)
        elif all(self.board[0][cc] for cc in range(COLS)):
            self._draw()
        return None
