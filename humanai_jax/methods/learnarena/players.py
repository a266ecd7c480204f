"""LLM-free players: the floors every LearnArena table reports, and the scripted opponents of the tests.

  random     a uniformly random legal move (seeded numpy Generator)
  heuristic  TicTacToe: perfect play by minimax (never loses; prefers the fastest win, the slowest loss);
             ConnectFour: win now, else block the opponent's immediate win, else avoid a column that hands
             the opponent a win on top, preferring central columns.
             UltimateTicTacToe: a one-ply score: win the game > win a micro board > block one; penalise
             sending the opponent to a board it can win at once or to a free choice; prefer centres.
             Checkers: a one-ply score: leave the opponent no piece or move > capture > crown a king;
             penalise landing where the moved piece can be jumped at once; else advance.

A player is a callable `observation -> action text`, bound to the env whose state it reads
(`make_player(kind, env, rng)`), so it plugs into the same loop as a chat agent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import numpy as np

from humanai_jax.methods.learnarena.games.checkers import checkers_moves
from humanai_jax.methods.learnarena.games.connect_four import COLS, drop_row, four_in_a_row
from humanai_jax.methods.learnarena.games.poker import poker_move
from humanai_jax.methods.learnarena.games.spite_and_malice import spite_and_malice_move
from humanai_jax.methods.learnarena.games.stratego import stratego_move
from humanai_jax.methods.learnarena.games.tak import first_legal_from_observation, tak_move
from humanai_jax.methods.learnarena.games.tictactoe import MARKS as TTT_MARKS, winner_of

__all__ = ["make_player", "PLAYER_KINDS", "tictactoe_best_moves", "connect_four_move", "ultimate_move", "checkers_move",
           "scripted_move_backend"]

PLAYER_KINDS = ("random", "heuristic")


@functools.cache
def _minimax(cells: tuple[str, ...], me: str, other: str) -> int:
    """Value for the player to move (`me`): +(10 - depth) win, 0 draw, negative loss."""
    board = [list(cells[i * 3:(i + 1) * 3]) for i in range(3)]
    empties = [i for i, v in enumerate(cells) if not v]
    best = -100
    for i in empties:
        nxt = list(cells)
        nxt[i] = me
        board = [nxt[j * 3:(j + 1) * 3] for j in range(3)]
        if winner_of(board) == me:
            value = len(empties)  # sooner wins keep more empty cells
        elif len(empties) == 1:
            value = 0
        else:
            value = -_minimax(tuple(nxt), other, me)
        best = max(best, value)
    return best


def tictactoe_best_moves(board, pid: int) -> list[tuple[int, int]]:
    """All optimal moves for `pid` on a TicTacToe board (row-major order)."""
    me, other = TTT_MARKS[pid], TTT_MARKS[1 - pid]
    cells = tuple(board[r][c] for r in range(3) for c in range(3))
    empties = [i for i, v in enumerate(cells) if not v]
    scores = {}
    for i in empties:
        nxt = list(cells)
        nxt[i] = me
        b = [nxt[j * 3:(j + 1) * 3] for j in range(3)]
        if winner_of(b) == me:
            scores[i] = len(empties)
        elif len(empties) == 1:
            scores[i] = 0
        else:
            scores[i] = -_minimax(tuple(nxt), other, me)
    best = max(scores.values())
    return [divmod(i, 3) for i in empties if scores[i] == best]


_CENTRE_FIRST = (3, 2, 4, 1, 5, 0, 6)


def _wins_at(board, col: int, mark: str) -> bool:
    r = drop_row(board, col)
    if r is None:
        return False
    board[r][col] = mark
    try:
        return four_in_a_row(board, r, col)
    finally:
        board[r][col] = ""


def connect_four_move(board, pid: int) -> int:
    me, other = ("X", "O") if pid == 0 else ("O", "X")
    legal = [c for c in _CENTRE_FIRST if c < COLS and drop_row(board, c) is not None]
    for mark in (me, other):  # win now, else block
        for c in legal:
            if _wins_at(board, c, mark):
                return c
    safe = []
    for c in legal:
        r = drop_row(board, c)
        board[r][c] = me
        gives = r > 0 and _wins_at(board, c, other)
        board[r][c] = ""
        if not gives:
            safe.append(c)
    return (safe or legal)[0]


def _completes(board, r: int, c: int, mark: str) -> bool:
    board[r][c] = mark
    try:
        return winner_of(board) == mark
    finally:
        board[r][c] = ""


def ultimate_move(env, pid: int) -> tuple[int, int, int]:
    """The heuristic's `(board, row, col)` on an UltimateTicTacToe env (first of the best-scored moves)."""
    me, other = ("X", "O") if pid == 0 else ("O", "X")
    moves = [tuple(int(x) for x in re.findall(r"\d", a)) for a in env.legal_actions()]

    def open_board(b: int) -> bool:
        return not env.macro[b // 3][b % 3]

    def can_win(b: int, mark: str) -> bool:
        board = env.boards[b]
        return open_board(b) and any(not board[r][c] and _completes(board, r, c, mark)
                                     for r in range(3) for c in range(3))

    def score(move) -> int:
        b, r, c = move
        s = 0
        if _completes(env.boards[b], r, c, me):
            s += 100
            macro = [[m if m in ("X", "O") else "" for m in row] for row in env.macro]
            if _completes(macro, b // 3, b % 3, me):
                s += 1000
        if _completes(env.boards[b], r, c, other):
            s += 50
        target = 3 * r + c
        if target == b and s >= 100 or not open_board(target):
            s -= 30  # the opponent gets a free choice
        elif can_win(target, other):
            s -= 60
        return s + (3 if (r, c) == (1, 1) else 1 if r != 1 and c != 1 else 0)

    return max(moves, key=score)


def checkers_move(board, pid: int) -> tuple[int, int, int, int]:
    """The heuristic's `(r1, c1, r2, c2)` on a Checkers board (first of the best-scored moves)."""
    def score(move) -> int:
        r1, c1, r2, c2 = move
        after = [row[:] for row in board]
        piece, after[r1][c1] = after[r1][c1], "."
        if abs(r2 - r1) == 2:
            after[(r1 + r2) // 2][(c1 + c2) // 2] = "."
        crowned = piece.islower() and r2 == (0 if pid == 0 else 7)
        after[r2][c2] = piece.upper() if crowned else piece
        replies = checkers_moves(after, 1 - pid)
        s = 1000 if not replies else 0
        s += 100 if abs(r2 - r1) == 2 else 0
        s += 50 if crowned else 0
        s -= 80 if any(abs(a - b) == 2 and ((a + b) // 2, (c + d) // 2) == (r2, c2) for a, c, b, d in replies) else 0
        return s + (r1 - r2 if pid == 0 else r2 - r1)

    return max(checkers_moves(board, pid), key=score)


def make_player(kind: str, env, rng: np.random.Generator | None = None) -> Callable[[str], str]:
    """A player bound to `env` (which must expose `legal_actions()` and, for `heuristic`, `board`)."""
    if kind == "random":
        rng = rng if rng is not None else np.random.default_rng(0)
        return lambda observation: str(rng.choice(env.legal_actions()))
    if kind == "heuristic":
        if env.env_id == "TicTacToe-v0":
            def ttt(observation: str) -> str:
                r, c = tictactoe_best_moves(env.board, env.current_player)[0]
                return f"[{r}, {c}]"
            return ttt
        if env.env_id == "ConnectFour-v0":
            return lambda observation: f"[{connect_four_move(env.board, env.current_player)}]"
        if env.env_id == "UltimateTicTacToe-v0":
            return lambda observation: "[{}, {}, {}]".format(*ultimate_move(env, env.current_player))
        if env.env_id == "Checkers-v0":
            return lambda observation: "[{} {} {} {}]".format(*checkers_move(env.board, env.current_player))
        if env.env_id == "Tak-v0":
            return lambda observation: tak_move(env, env.current_player)
        if env.env_id == "Stratego-v0":
            return lambda observation: stratego_move(env, env.current_player)
        if env.env_id == "Poker-v0":
            return lambda observation: poker_move(env, env.current_player)
        if env.env_id == "SpiteAndMalice-v0":
            return lambda observation: spite_and_malice_move(env, env.current_player)
        raise ValueError(f"no heuristic player for {env.env_id}")
    raise ValueError(f"unknown player kind {kind!r}; valid: {PLAYER_KINDS}")


_AVAILABLE = re.compile(r"Available Moves: (.*)")
_MOVE = re.compile(r"\[[^\]]*\]")


def scripted_move_backend(name: str = "scripted-first-legal"):
    """An offline stand-in for a chat model (plumbing runs and tests): a move request is answered with the
    first move of the last `Available Moves:` line it was shown, a judge request with `Score: 5/10`,
    anything else with a fixed sentence."""
    from humanai_jax.agents import ScriptedBackend

    def move(messages) -> str:
        if "in Tak" in messages[-1]["content"]:  # Tak lists no moves: read the position back from the board
            return first_legal_from_observation(messages[-1]["content"])
        found = _AVAILABLE.findall(messages[-1]["content"])
        return _MOVE.findall(found[-1])[0] if found else "[0]"

    backend = ScriptedBackend([("learnarena.player[01]", None, move), ("learnarena.judge", None, "Score: 5/10"),
                               (".*", None, "Keep the centre and block open lines.")])
    backend.name = name
    return backend
