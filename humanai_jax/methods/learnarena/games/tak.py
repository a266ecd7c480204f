"""Tak (textarena's `Tak-v0`, re-implemented): 4x4 board, each player has 15 stones and 1 capstone; Player 0
moves first. Pieces are `F<k>` (flat stone), `W<k>` (wall, a standing stone) and `C<k>` (capstone) of player k;
a square holds a stack, written bottom to top.

Moves (textarena's format, case-insensitive):
  `place () {(row,col): [piece]}`                      put one of your pieces on an empty square;
  `move (row,col) {(row,col): [pieces], (row,col): [pieces]}`  carry the top 1..4 pieces of a stack you top in
  one straight line, dropping >= 1 piece on every square entered, bottom of the carried pile first (the listed
  pieces, read in order, must equal the top of the source stack bottom to top).
A move cannot enter a wall or a capstone, except that a capstone dropped alone as the last drop flattens a wall.
Opening: on each of the first two turns a player places one of the opponent's flat stones (from the opponent's
reserve); no stack moves then.
End: a move that completes a road (orthogonally connected flats/capstones of one player joining opposite edges)
wins for the road's owner, the mover if both; else a full board or a player with no stones and capstones left
ends the game by flat count (top flat stones only; a tie is a draw); after `max_turns` (100) moves in total the
flat count decides as well. Invalid moves follow base.py's allowance (resubmit once, then lose).

Versions and differences: textarena's Tak changed across releases. Older ones (e.g. the borgr/TextArena
fork's copy) wrap the move in brackets, `[place () {(1,2): [F0]}]`, search for it anywhere in the reply, and have
no opening swap; the current env uses the bare form above, anchored to the whole reply, and the opening swap. We
follow the current env's rules, which are the rules of Tak (the swap is part of the real game), and accept both
spellings anywhere in the reply (so a prompt written for either version works, and a move followed by an
explanation is accepted). `legal_actions()` and the observation read-back are ours (textarena lists no moves)."""

from __future__ import annotations

import re
from collections import deque

from humanai_jax.methods.learnarena.games.base import GAME_ID, TwoPlayerTextGame

__all__ = ["Tak", "tak_moves", "tak_move", "apply_move", "has_road", "flat_counts", "format_move", "parse_move",
           "state_from_observation", "first_legal_from_observation", "SIZE", "STONES",
           "CAPSTONES"]

SIZE, STONES, CAPSTONES = 4, 15, 1
DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1))
ACTION = re.compile(r"(?i)\b(place|move)\s*\(\s*(\d+\s*,\s*\d+\s*|)\)\s*(\{[^{}]*\})")
ENTRY = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*:\s*\[([^\[\]]*)\]")
PIECE = re.compile(r"""\s*['"]?([FWCfwc][01])['"]?\s*""")

# A move is ("place", None, ((square, (piece,)),)) or ("move", source, ((square, pieces), ...)); squares (r, c).


def parse_move(text: str):
    """The first move written in `text`, or an error string saying what is wrong with it."""
    m = ACTION.search(text)
    if m is None:
        return ("Invalid move format. Write 'place () {(row,col): [piece]}' or "
                "'move (row,col) {(row,col): [pieces], ...}'.")
    kind, src, body = m.group(1).lower(), m.group(2), m.group(3)
    source = tuple(int(x) for x in src.split(",")) if src.strip() else None
    drops = []
    for e in ENTRY.finditer(body):
        pieces = []
        for token in e.group(3).split(",") if e.group(3).strip() else []:
            p = PIECE.fullmatch(token)
            if p is None:
                return f"The allocation could not be parsed: {token.strip()!r} is not a piece like F0, W1 or C0."
            pieces.append(p.group(1).upper())
        drops.append(((int(e.group(1)), int(e.group(2))), tuple(pieces)))
    if ENTRY.sub("", body).strip("{} ,\t\n") or not drops:
        return "The allocation could not be parsed. Write it as a dictionary from squares to piece lists, e.g. {(1,2): [F0]}."
    if len({sq for sq, _ in drops}) != len(drops):
        return "The allocation could not be parsed: a square appears twice."
    return kind, source, tuple(drops)


def format_move(move) -> str:
    kind, source, drops = move
    body = ", ".join(f"({r},{c}): [{', '.join(pieces)}]" for (r, c), pieces in drops)
    return f"{kind} ({'' if source is None else f'{source[0]},{source[1]}'}) {{{body}}}"


def _on_board(r: int, c: int) -> bool:
    return 0 <= r < SIZE and 0 <= c < SIZE


def placement_error(board, reserves, move_count: int, pid: int, source, drops) -> str | None:
    if source is not None:
        return "Use () as the source of a placement."
    if len(drops) != 1 or len(drops[0][1]) != 1:
        return f"A placement names one square and one piece, e.g. place () {{(1,2): [F{pid}]}}."
    (r, c), (piece,) = drops[0]
    if move_count < 2:
        if piece != f"F{1 - pid}":
            return f"During the opening you must place one of your opponent's flat stones (F{1 - pid})."
    elif piece[1] != str(pid):
        return f"You can only place your own pieces (F{pid}, W{pid}, or C{pid})."
    owner = int(piece[1])
    if reserves[owner]["capstones" if piece[0] == "C" else "stones"] == 0:
        return f"There are no {'capstones' if piece[0] == 'C' else 'stones'} left to place."
    if not _on_board(r, c):
        return f"Square ({r},{c}) is not on the {SIZE}x{SIZE} board."
    if board[r][c]:
        return f"Square ({r},{c}) is not empty; pieces can only be placed on empty squares."
    return None


def movement_error(board, move_count: int, pid: int, source, drops) -> str | None:
    if move_count < 2:
        return f"Stacks cannot move during the opening; place one of your opponent's flat stones (F{1 - pid})."
    if source is None:
        return f"A move names a source square, e.g. move (1,1) {{(1,2): [F{pid}]}}."
    sr, sc = source
    if not _on_board(sr, sc):
        return f"Square ({sr},{sc}) is not on the {SIZE}x{SIZE} board."
    stack = board[sr][sc]
    if not stack:
        return f"There is no stack on ({sr},{sc})."
    if stack[-1][1] != str(pid):
        return f"The stack on ({sr},{sc}) is topped by {stack[-1]}; you can only move stacks topped by your own piece."
    if any(not pieces for _, pieces in drops):
        return "Every square you move onto must receive at least one piece."
    carried = [p for _, pieces in drops for p in pieces]
    if len(carried) > SIZE:
        return f"You can carry at most {SIZE} pieces (the board size)."
    if len(carried) > len(stack) or carried != stack[-len(carried):]:
        return (f"The dropped pieces must be the top pieces of the stack on ({sr},{sc}) in bottom-to-top order "
                f"(the stack is {'/'.join(stack)}).")
    (fr, fc), _ = drops[0]
    dr, dc = fr - sr, fc - sc
    if abs(dr) + abs(dc) != 1:
        return "The first drop must be on a square next to the source (up, down, left, or right)."
    for i, ((r, c), pieces) in enumerate(drops, start=1):
        if (r, c) != (sr + i * dr, sc + i * dc):
            return "Drops must be on consecutive squares in one straight line from the source."
        if not _on_board(r, c):
            return f"Square ({r},{c}) is not on the {SIZE}x{SIZE} board."
        top = board[r][c][-1][0] if board[r][c] else None
        if top == "C":
            return f"You cannot move onto the capstone on ({r},{c})."
        if top == "W" and not (i == len(drops) and pieces == (pieces[0],) and pieces[0][0] == "C"):
            return (f"You cannot move onto the wall on ({r},{c}); only a capstone dropped alone as the final piece "
                    "can flatten it.")
    return None


def apply_move(board, reserves, move) -> None:
    """Apply a legal move in place (`board`: SIZE x SIZE lists of piece lists; `reserves`: {pid: counts})."""
    kind, source, drops = move
    if kind == "place":
        (r, c), (piece,) = drops[0]
        board[r][c].append(piece)
        reserves[int(piece[1])]["capstones" if piece[0] == "C" else "stones"] -= 1
        return
    n = sum(len(pieces) for _, pieces in drops)
    sr, sc = source
    del board[sr][sc][-n:]
    for (r, c), pieces in drops:
        if board[r][c] and board[r][c][-1][0] == "W":
            board[r][c][-1] = "F" + board[r][c][-1][1]
        board[r][c].extend(pieces)


def _compositions(n: int, max_parts: int):
    """Ordered ways to write n as a sum of 1..max_parts positive parts."""
    if n == 0:
        yield ()
        return
    if max_parts == 0:
        return
    for first in range(1, n + 1):
        for rest in _compositions(n - first, max_parts - 1):
            yield (first, *rest)


def tak_moves(board, reserves, move_count: int, pid: int) -> list:
    """Every legal move of `pid`: placements (row-major, F/W/C), then stack moves."""
    empty = [(r, c) for r in range(SIZE) for c in range(SIZE) if not board[r][c]]
    if move_count < 2:
        return [("place", None, (((r, c), (f"F{1 - pid}",)),)) for r, c in empty]
    kinds = (["F", "W"] if reserves[pid]["stones"] else []) + (["C"] if reserves[pid]["capstones"] else [])
    moves = [("place", None, (((r, c), (f"{k}{pid}",)),)) for r, c in empty for k in kinds]
    for sr in range(SIZE):
        for sc in range(SIZE):
            stack = board[sr][sc]
            if not stack or stack[-1][1] != str(pid):
                continue
            for dr, dc in DIRECTIONS:
                reach = 0  # squares enterable in this direction; a wall ends the line (flattened only at the end)
                while _on_board(sr + (reach + 1) * dr, sc + (reach + 1) * dc):
                    top = board[sr + (reach + 1) * dr][sc + (reach + 1) * dc]
                    if top and top[-1][0] in "WC":
                        break
                    reach += 1
                nr, nc = sr + (reach + 1) * dr, sc + (reach + 1) * dc
                wall_after = _on_board(nr, nc) and bool(board[nr][nc]) and board[nr][nc][-1][0] == "W"
                for n in range(1, min(SIZE, len(stack)) + 1):
                    carried = stack[-n:]
                    for parts in _compositions(n, reach):
                        moves.append(_stack_move(sr, sc, dr, dc, carried, parts))
                    if wall_after and carried[-1][0] == "C":  # capstone alone flattens the wall at the end
                        for parts in _compositions(n - 1, reach):
                            if len(parts) == reach:
                                moves.append(_stack_move(sr, sc, dr, dc, carried, (*parts, 1)))
    return moves


def _stack_move(sr, sc, dr, dc, carried, parts):
    drops, i = [], 0
    for k, size in enumerate(parts, start=1):
        drops.append(((sr + k * dr, sc + k * dc), tuple(carried[i:i + size])))
        i += size
    return ("move", (sr, sc), tuple(drops))


def has_road(board, pid: int) -> bool:
    """True when `pid`'s flats/capstones connect top to bottom or left to right."""
    def road(r, c):
        return _on_board(r, c) and bool(board[r][c]) and board[r][c][-1] in (f"F{pid}", f"C{pid}")

    for starts, reached in (([(0, c) for c in range(SIZE)], lambda r, c: r == SIZE - 1),
                            ([(r, 0) for r in range(SIZE)], lambda r, c: c == SIZE - 1)):
        queue = deque(s for s in starts if road(*s))
        seen = set(queue)
        while queue:
            r, c = queue.popleft()
            if reached(r, c):
                return True
            for dr, dc in DIRECTIONS:
                nxt = (r + dr, c + dc)
                if nxt not in seen and road(*nxt):
                    seen.add(nxt)
                    queue.append(nxt)
    return False


def flat_counts(board) -> dict[int, int]:
    return {pid: sum(bool(s) and s[-1] == f"F{pid}" for row in board for s in row) for pid in (0, 1)}


def render(board) -> str:
    cells = [[f"({len(s)}) {'/'.join(s)}" if s else "" for s in row] for row in board]
    width = max(5, *(len(x) for row in cells for x in row))
    sep = "     " + "-" * (SIZE * (width + 3) - 1)
    lines = ["      " + "   ".join(f"{i:^{width}}" for i in range(SIZE)), sep]
    for r, row in enumerate(cells):
        lines += [f"{r:>3} | " + " | ".join(x.center(width) for x in row) + " |", sep]
    return "\n".join(lines)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


class Tak(TwoPlayerTextGame):
    env_id = "Tak-v0"
    max_turns = 100

    def _new_state(self) -> None:
        self.board = [[[] for _ in range(SIZE)] for _ in range(SIZE)]
        self.reserves = {pid: {"stones": STONES, "capstones": CAPSTONES} for pid in (0, 1)}
        self.move_count = 0

    def _player_prompt(self, pid: int) -> str:
        me, opp = pid, 1 - pid
        return "\n".join([
            f"You are Player {me} in Tak, playing on a {SIZE}x{SIZE} board. Player 0 moves first.",
            "Your goal is to build a road: a path of orthogonally adjacent squares topped by your flat stones or "
            "capstones that connects two opposite edges of the board (top to bottom or left to right), while "
            "blocking your opponent from doing the same.",
            "Pieces are a letter followed by the owner's player number:",
            f"- Flat stone (F{me}): counts toward roads; any piece may be stacked on it.",
            f"- Wall, a standing stone (W{me}): never part of a road; nothing may be stacked on it except a capstone "
            "that flattens it.",
            f"- Capstone (C{me}): counts toward roads, can flatten walls, and can never be covered.",
            f"Each player starts with {_plural(STONES, 'stone')} (each placed as a flat stone or a wall) and "
            f"{_plural(CAPSTONES, 'capstone')}.",
            "On your turn, do exactly one of the following:",
            "1. Place one of your pieces on an empty square: place () {(row,col): [piece]}",
            f"2. Move a stack whose top piece is yours: pick up 1 to {SIZE} pieces from the top of the stack, travel "
            "in a straight line (up, down, left, or right), and drop at least one piece on every square you enter, "
            "starting next to the source; pieces leave the bottom of the carried pile first. Write the drops in "
            "travel order, each square mapped to the pieces left there from bottom to top: "
            "move (row,col) {(row,col): [pieces], (row,col): [pieces]}.",
            "   A move cannot enter a square topped by a wall or a capstone, except that a capstone dropped alone as "
            "the final piece flattens a wall.",
            "Opening: on each of the first two turns, place one of your opponent's flat stones instead of your own "
            "(Player 0 places an F1, then Player 1 places an F0); no stack may move yet.",
            "The game ends when a move completes a road (its owner wins; the mover wins if both roads are "
            "completed), or when the board is full or a player has placed all pieces: then the player with more "
            "flat stones on top of stacks wins (a tie is a draw). After "
            f"{self.max_turns} moves in total the flat count decides as well.",
            "Rows and columns are numbered from 0; (0,0) is the top-left square. A square shows its stack height "
            "and pieces bottom to top: '(2) F1/W0' is a wall W0 on a flat stone F1.",
            f"Examples: place () {{(1,2): [F{me}]}}; place () {{(0,1): [W{me}]}}; move (1,1) {{(1,2): [F{me}]}}; "
            f"move (2,0) {{(1,0): [F{opp}], (0,0): [F{me}]}}.",
            "An invalid move must be resubmitted; a second invalid move in the same turn loses the game.",
        ])

    def _state_message(self) -> str:
        reserves = "\n".join(f"- Player {p}: {_plural(r['stones'], 'stone')} and {_plural(r['capstones'], 'capstone')}"
                             f" left" for p, r in self.reserves.items())
        lines = [f"Current Board:\n\n{render(self.board)}",
                 f"Reserves (each stone can be placed as a flat stone or a wall):\n{reserves}",
                 f"Turns played: {self.turn} of {self.max_turns}"]
        if self.move_count < 2:
            who = self.current_player
            lines.append(f"Opening: place one of Player {1 - who}'s flat stones (F{1 - who}) on an empty square.")
        return "\n".join(lines)

    def legal_actions(self) -> list[str]:
        return [format_move(m) for m in tak_moves(self.board, self.reserves, self.move_count, self.current_player)]

    def _apply(self, pid: int, action: str) -> str | None:
        move = parse_move(action)
        if isinstance(move, str):
            return move
        kind, source, drops = move
        error = (placement_error(self.board, self.reserves, self.move_count, pid, source, drops) if kind == "place"
                 else movement_error(self.board, self.move_count, pid, source, drops))
        if error is not None:
            return error
        apply_move(self.board, self.reserves, move)
        self.move_count += 1
        self._send(GAME_ID, None, f"Player {pid} played {format_move(move)}.")
        self._check_end(pid)
        return None

    def _check_end(self, mover: int) -> None:
        for pid in (mover, 1 - mover):
            if has_road(self.board, pid):
                self._win(pid)
                self.reason = f"Player {pid} has connected two opposite edges of the board."
                return
        if all(s for row in self.board for s in row):
            trigger = "The board is full."
        else:
            out = [p for p in (0, 1) if not self.reserves[p]["stones"] and not self.reserves[p]["capstones"]]
            trigger = f"Player {out[0]} has no pieces left to place." if out else None
        if trigger is None and self.turn + 1 >= self.max_turns:  # self.turn counts moves before this one
            trigger = "The turn limit has been reached."
        if trigger is not None:
            counts = flat_counts(self.board)
            if counts[0] == counts[1]:
                self._draw()
                self.reason = f"{trigger} The flat count is tied {counts[0]}-{counts[1]}, so the game is a draw."
            else:
                winner = 0 if counts[0] > counts[1] else 1
                self._win(winner)
                self.reason = f"{trigger} Player {winner} wins the flat count {counts[winner]}-{counts[1 - winner]}."


# ---------------------------------------------------------------------------------------------- heuristic player
def _copy(board, reserves):
    return [[list(s) for s in row] for row in board], {p: dict(r) for p, r in reserves.items()}


def _road_progress(board, pid: int) -> int:
    """Largest row- or column-span of one orthogonally connected group of `pid`'s road pieces (0..SIZE)."""
    seen, best = set(), 0
    for r0 in range(SIZE):
        for c0 in range(SIZE):
            if (r0, c0) in seen or not board[r0][c0] or board[r0][c0][-1] not in (f"F{pid}", f"C{pid}"):
                continue
            group, queue = [], [(r0, c0)]
            seen.add((r0, c0))
            while queue:
                r, c = queue.pop()
                group.append((r, c))
                for dr, dc in DIRECTIONS:
                    nr, nc = r + dr, c + dc
                    if (_on_board(nr, nc) and (nr, nc) not in seen and board[nr][nc]
                            and board[nr][nc][-1] in (f"F{pid}", f"C{pid}")):
                        seen.add((nr, nc))
                        queue.append((nr, nc))
            rows, cols = {r for r, _ in group}, {c for _, c in group}
            best = max(best, len(rows), len(cols))
    return best


def _opponent_can_win(board, reserves, move_count: int, opp: int) -> bool:
    for reply in tak_moves(board, reserves, move_count, opp):
        b, res = _copy(board, reserves)
        apply_move(b, res, reply)
        if has_road(b, opp):  # the mover wins even if the move also completes our road
            return True
    return False


def tak_move(env, pid: int) -> str:
    """A greedy player (`env`: a `Tak` or anything with its `board`, `reserves`, `move_count`): complete a road if
    possible; otherwise rank moves by road progress and flat lead, and take the best one that leaves the opponent
    no immediate road (the best-ranked one if none does)."""
    board, reserves, move_count = env.board, env.reserves, env.move_count
    scored = []
    for move in tak_moves(board, reserves, move_count, pid):
        b, res = _copy(board, reserves)
        apply_move(b, res, move)
        if has_road(b, pid):
            return format_move(move)
        if has_road(b, 1 - pid):
            continue
        flats = flat_counts(b)
        score = 3 * (_road_progress(b, pid) - _road_progress(b, 1 - pid)) + flats[pid] - flats[1 - pid]
        scored.append((score, move, b, res))
    if not scored:  # every move completes the opponent's road
        return format_move(tak_moves(board, reserves, move_count, pid)[0])
    scored.sort(key=lambda x: -x[0])  # stable: ties keep generation order
    for _, move, b, res in scored:
        if not _opponent_can_win(b, res, move_count + 1, 1 - pid):
            return format_move(move)
    return format_move(scored[0][1])


# ---------------------------------------------------------------------------------------------- observation parsing
_ROW = re.compile(r"^\s*(\d+) \| (.*) \|$")
_RESERVE = re.compile(r"- Player ([01]): (\d+) stones? and (\d+) capstones? left")
_WHO = re.compile(r"You are Player ([01]) in Tak")


def state_from_observation(observation: str):
    """`(board, reserves, move_count_below_2, pid)` read back from a player's observation text (its last board),
    for LLM-free players that see only text (e.g. a scripted backend); move_count is 0 during the opening, else 2."""
    who = _WHO.search(observation)
    last = observation.rfind("Current Board:")
    if who is None or last < 0:
        raise ValueError("not a Tak observation: no 'You are Player k in Tak' prompt or no 'Current Board:'")
    block = observation[last:]
    board = [[] for _ in range(SIZE)]
    for line in block.splitlines():
        row = _ROW.match(line)
        if row and int(row.group(1)) < SIZE and not board[int(row.group(1))]:
            cells = [cell.strip() for cell in row.group(2).split(" | ")]
            board[int(row.group(1))] = [cell.split(" ", 1)[1].split("/") if cell else [] for cell in cells]
    reserves = {int(p): {"stones": int(s), "capstones": int(c)} for p, s, c in _RESERVE.findall(block)[:2]}
    if any(len(row) != SIZE for row in board) or len(reserves) != 2:
        raise ValueError("could not read the Tak board or reserves from the observation")
    opening = "Opening: place one of Player" in block.split("[Player", 1)[0]
    return board, reserves, 0 if opening else 2, int(who.group(1))


def first_legal_from_observation(observation: str) -> str:
    """The first legal move (placements first) in the position the observation shows last."""
    board, reserves, move_count, pid = state_from_observation(observation)
    return format_move(tak_moves(board, reserves, move_count, pid)[0])
