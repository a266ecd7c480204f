"""Checkers (textarena 0.5.6's simplified rules, re-implemented): 8x8 board; Player 0 is Red (`r`, rows 5-7,
moves up), Player 1 is Black (`b`, rows 0-2, moves down), pieces on squares with (row + col) odd; Red moves
first. A move is `[rowFrom colFrom rowTo colTo]` (first match of `\\[\\s*(\\d)\\s+(\\d)\\s+(\\d)\\s+(\\d)\\s*\\]`):
a man steps one square diagonally forward or captures by jumping an adjacent opponent piece forward; a man
reaching the far row becomes a king (`R` / `B`), which steps or jumps in all four diagonal directions.
As in textarena: no forced captures and no multi-jumps. A side with no pieces, or with no legal move on its
turn, loses; after `max_turns` (50) moves in total the game is a draw.
Difference from textarena: it tests "no legal move" for the player who just moved (a quirk); we test the
player about to move, which is the rule of the game."""

from __future__ import annotations

import re

from humanai_jax.methods.learnarena.games.base import TwoPlayerTextGame

__all__ = ["Checkers", "checkers_moves", "initial_board", "SIZE"]

SIZE = 8
MOVE = re.compile(r"\[\s*(\d)\s+(\d)\s+(\d)\s+(\d)\s*\]")
MEN = {0: "r", 1: "b"}
FORWARD = {0: -1, 1: 1}


def initial_board() -> list[list[str]]:
    return [["b" if r < 3 and (r + c) % 2 else "r" if r > 4 and (r + c) % 2 else "." for c in range(SIZE)]
            for r in range(SIZE)]


def _owner(piece: str) -> int | None:
    return 0 if piece in ("r", "R") else 1 if piece in ("b", "B") else None


def checkers_moves(board, pid: int) -> list[tuple[int, int, int, int]]:
    """Every legal `(r1, c1, r2, c2)` for `pid` (steps and single captures), row-major by origin."""
    moves = []
    for r in range(SIZE):
        for c in range(SIZE):
            piece = board[r][c]
            if _owner(piece) != pid:
                continue
            rows = (-1, 1) if piece.isupper() else (FORWARD[pid],)
            for dr in rows:
                for dc in (-1, 1):
                    r1, c1, r2, c2 = r + dr, c + dc, r + 2 * dr, c + 2 * dc
                    if 0 <= r1 < SIZE and 0 <= c1 < SIZE and board[r1][c1] == ".":
                        moves.append((r, c, r1, c1))
                    elif (0 <= r2 < SIZE and 0 <= c2 < SIZE and board[r2][c2] == "."
                          and _owner(board[r1][c1]) == 1 - pid):
                        moves.append((r, c, r2, c2))
    return moves


def render(board) -> str:
    lines = ["     " + "  ".join(str(c) for c in range(SIZE)), "   +" + "-" * 25]
    return "\n".join(lines + [f" {r} |" + "".join(f" {board[r][c]} " for c in range(SIZE)) for r in range(SIZE)])


class Checkers(TwoPlayerTextGame):
    env_id = "Checkers-v0"
    max_turns = 50

    def _new_state(self) -> None:
        self.board = initial_board()

    def _player_prompt(self, pid: int) -> str:
        colour = "Red" if pid == 0 else "Black"
        return (f"You are Player {pid} playing as {colour} ('{MEN[pid]}' pieces, '{MEN[pid].upper()}' kings).\n"
                "Make your move in the format [rowFrom colFrom rowTo colTo], e.g. [5 0 4 1].\n"
                "You may include extra explanation, but the move must appear exactly in that format.\n"
                "Rules: move a piece diagonally forward by one square onto an empty square; capture by jumping "
                "over an adjacent opponent piece onto the empty square behind it; a piece reaching the opposite "
                "end becomes a king and may move and capture backwards too. Captures are not forced and there "
                "are no multi-jumps. You lose when you have no pieces or no legal move; after "
                f"{self.max_turns} moves in total the game is a draw.\n"
                "An invalid move must be resubmitted; a second invalid move in the same turn loses the game.")

    def _state_message(self) -> str:
        return f"Current Board:\n\n{render(self.board)}\n\nAvailable Moves: {', '.join(self.legal_actions())}"

    def legal_actions(self) -> list[str]:
        return ["[{} {} {} {}]".format(*m) for m in checkers_moves(self.board, self.current_player)]

    def _apply(self, pid: int, action: str) -> str | None:
        m = MOVE.search(action.strip())
        if m is None:
            return f"Invalid move format. Player {pid} did not respond with '[rowFrom colFrom rowTo colTo]'."
        move = tuple(int(x) for x in m.groups())
        if move not in checkers_moves(self.board, pid):
            return "Move [{} {} {} {}] is illegal.".format(*move)
        r1, c1, r2, c2 = move
        piece, self.board[r1][c1] = self.board[r1][c1], "."
        if abs(r2 - r1) == 2:
            self.board[(r1 + r2) // 2][(c1 + c2) // 2] = "."
        if r2 == (0 if pid == 0 else SIZE - 1):
            piece = piece.upper()
        self.board[r2][c2] = piece
        self._send(-1, None, f"Player {pid} moved ({r1},{c1}) -> ({r2},{c2}).")
        self._check_end(pid)
        return None

    def _check_end(self, mover: int) -> None:
        left = {p: sum(_owner(x) == p for row in self.board for x in row) for p in (0, 1)}
        if left[1 - mover] == 0 or not checkers_moves(self.board, 1 - mover):
            self._win(mover)
        elif self.turn + 1 >= self.max_turns:  # self.turn counts moves before this one
            self._draw()
