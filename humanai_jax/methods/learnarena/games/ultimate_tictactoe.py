"""Ultimate Tic Tac Toe (ours, in TextArena's style; one of the LfC games of the reference): nine 3x3
micro boards in a 3x3 macro grid. Player 0 plays `X` and moves first, Player 1 plays `O`. A move is
`[board, row, col]` (board 0-8 row-major, row/col 0-2; first match of `\\[\\s*(\\d)\\s*,?\\s*(\\d)\\s*,?\\s*(\\d)\\s*\\]`).
The cell (row, col) of a move sends the opponent to micro board `3 * row + col`; when that board is won or
full, the opponent may play on any open board. Three in a row on a micro board wins it; three won micro
boards in a row on the macro grid win the game; no open cell left without a macro winner is a draw."""

from __future__ import annotations

import re

from humanai_jax.methods.learnarena.games.base import TwoPlayerTextGame
from humanai_jax.methods.learnarena.games.tictactoe import winner_of

__all__ = ["UltimateTicTacToe"]

MOVE = re.compile(r"\[\s*(\d)\s*,?\s*(\d)\s*,?\s*(\d)\s*\]")
MARKS = {0: "X", 1: "O"}


class UltimateTicTacToe(TwoPlayerTextGame):
    env_id = "UltimateTicTacToe-v0"

    def _new_state(self) -> None:
        self.boards = [[["" for _ in range(3)] for _ in range(3)] for _ in range(9)]
        self.macro = [["" for _ in range(3)] for _ in range(3)]  # "X", "O", "-" (full, no winner) or ""
        self.next_board: int | None = None  # None: any open board

    def _open(self, b: int) -> bool:
        return not self.macro[b // 3][b % 3]

    def _player_prompt(self, pid: int) -> str:
        return (f"You are Player {pid} in Ultimate Tic Tac Toe. Your mark is '{MARKS[pid]}'; your opponent plays "
                f"'{MARKS[1 - pid]}'.\n"
                "The board is a 3x3 grid of 3x3 micro boards, numbered 0-8 row by row. Win a micro board with "
                "three in a row; win the game with three won micro boards in a row.\n"
                "The cell you play sends your opponent to the micro board with the same position (cell [r, c] -> "
                "board 3*r+c); if that board is won or full, any open board may be played.\n"
                "Submit your move as '[board, row, col]', for example '[4, 1, 1]' for the centre of the centre "
                "board.\nAn invalid move must be resubmitted; a second invalid move in the same turn loses.")

    def _render(self) -> str:
        rows = []
        for big_r in range(3):
            for r in range(3):
                rows.append(" || ".join(" ".join(self.boards[3 * big_r + big_c][r][c] or "." for c in range(3))
                                        for big_c in range(3)))
            if big_r < 2:
                rows.append("======++=======++======")
        return "\n".join(rows)

    def _state_message(self) -> str:
        where = "any open board" if self.next_board is None else f"board {self.next_board}"
        return (f"Current Board:\n\n{self._render()}\n\nMacro board (won micro boards): "
                f"{[[m or '.' for m in row] for row in self.macro]}\nNext move on {where}. "
                f"Available Moves: {', '.join(self.legal_actions())}")

    def legal_actions(self) -> list[str]:
        boards = [self.next_board] if self.next_board is not None else [b for b in range(9) if self._open(b)]
        return [f"[{b}, {r}, {c}]" for b in boards for r in range(3) for c in range(3) if not self.boards[b][r][c]]

    def _apply(self, pid: int, action: str) -> str | None:
        m = MOVE.search(action)
        if m is None:
            return f"Invalid move format. Player {pid} did not respond with a valid move '[board, row, col]'."
        b, r, c = (int(g) for g in m.groups())
        if not (b < 9 and r < 3 and c < 3):
            return f"Invalid move [{b}, {r}, {c}]: board must be 0-8, row and col 0-2."
        if self.next_board is not None and b != self.next_board:
            return f"Invalid move. You must play on board {self.next_board}."
        if not self._open(b):
            return f"Invalid move. Board {b} is already decided."
        if self.boards[b][r][c]:
            return f"Invalid move. Cell [{b}, {r}, {c}] is already occupied."
        self.boards[b][r][c] = MARKS[pid]
        if winner_of(self.boards[b]):
            self.macro[b // 3][b % 3] = MARKS[pid]
        elif all(self.boards[b][i][j] for i in range(3) for j in range(3)):
            self.macro[b // 3][b % 3] = "-"
        target = 3 * r + c
        self.next_board = target if self._open(target) else None
        macro_for_win = [[m if m in ("X", "O") else "" for m in row] for row in self.macro]
        if winner_of(macro_for_win) == MARKS[pid]:
            self._win(pid)
        elif not self.legal_actions():
            self._draw()
        return None
