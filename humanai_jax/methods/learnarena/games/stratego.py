"""Stratego (textarena's `Stratego-v0`, re-implemented).

Board: 10x10, rows A-J (top to bottom), columns 0-9; lakes `~` on columns 2-3 and 6-7 of rows E and F (squares
(4,2) (4,3) (5,2) (5,3) (4,6) (4,7) (5,6) (5,7)), which nothing may enter or cross. Each player has 40 pieces
(abbreviation, rank, count): MS Marshal 10 x1, GN General 9 x1, CL Colonel 8 x2, MJ Major 7 x3, CP Captain 6 x4,
LT Lieutenant 5 x4, SG Sergeant 4 x4, MN Miner 3 x5, SC Scout 2 x8, SP Spy 1 x1, BM Bomb x6, FL Flag x1.
Setup (textarena's automatic one, seeded: `reset(seed=...)`, else the constructor's seed): Player 0 fills rows
A-D, Player 1 rows G-J; the Flag goes on one of the player's two back rows, Bombs on the squares next to it,
the remaining Bombs on the player's two front rows, every other piece on a random free square of its four rows.
Player 0 moves first.

A move is `[A0 B0]` (source, destination; the first match anywhere in the reply, as textarena 0.5.x reads
it); a reply that is only `A0 B0` (the current textarena's bare form) is accepted too. A piece steps
one square up, down, left or right onto an empty or enemy square; a Scout may instead go any number of empty
squares in a straight line and may attack the first enemy piece on it; Bombs and Flags never move. A piece may
not move between the same two squares more than three times in a row (the two-square rule: a fourth such move
is invalid; moving another piece resets the count).
Battles (both ranks are revealed to both players): the higher rank wins and takes the square (a losing
attacker is removed, the defender stays); equal ranks remove both; a Bomb removes any attacker except a Miner,
which defuses it and takes the square; a Spy that attacks the Marshal wins (a Marshal attacking a Spy wins).
End: capturing the Flag wins; after a move, if neither player has a movable piece (anything but Bombs and
Flags) the game is a draw; else the player to move with no legal move loses, and a mover left with no movable
piece loses; after `max_turns` (1000) moves in total the game is a draw. Invalid moves follow base.py's
allowance (resubmit once, then lose). A game may take up to 2 * max_turns steps (each move can follow one
invalid try); `loop.play_game` reads `max_turns` to set its step cap.

Hidden information (what textarena shows): each player sees its own pieces by abbreviation and the
opponent's as `?`; a raw reply is echoed only to its author; after each move the mover reads "You have moved
your piece from X to Y." and the opponent "Player k has moved a piece from X to Y.", each followed by the
battle's ranks and result when there was one; the player to move then gets its own view of the board and its
Available Moves, listed as `[A0 B0], ...`.

Versions and differences: LearnArena pins textarena 0.5.x, whose Stratego has bugs we do not copy: Player 0
can never win by elimination (`if self._check_winner():` is false for winner 0); a Miner that defuses a Bomb
leaves the Bomb in the defender's piece list (a later end check can crash); a source square on a lake crashes;
the board is not cleared on `reset`, so a second game on the same env never finishes its setup; the setup draws
from the global `random` module; Player 1's remaining Bombs go on rows H-I instead of its front rows G-H; there
is no turn limit, no two-square rule and no "no legal move" loss. We follow the current textarena, whose fixes
are the real rules (front-row Bombs on G-H, the two-square rule, the no-legal-move loss, the draw when neither
side can move, the 1000-move limit). Observations follow textarena 0.6+ (the board and Available Moves go to
the player to move; 0.5.x instead appends each player's board to every move message and lists no moves). We
read 0.5.x's `[A0 B0]` leniently (any case, extra spaces) and also the current bare form. As in every textarena
version (and unlike the official rules, where each player deploys its own army) the setup is automatic, and
revealed enemy pieces are still drawn as `?`; the final board is not revealed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from humanai_jax.methods.learnarena.games.base import GAME_ID, TwoPlayerTextGame

__all__ = ["Stratego", "Piece", "PIECE_COUNTS", "RANKS", "ABBREVIATIONS", "LAKES", "SIZE", "battle",
           "stratego_moves", "has_legal_move", "move_error", "has_movable_piece", "parse_move", "format_move",
           "square_name", "render", "random_setup", "public_view", "stratego_move"]

SIZE = 10
LAKES = frozenset({(4, 2), (4, 3), (5, 2), (5, 3), (4, 6), (4, 7), (5, 6), (5, 7)})
PIECE_COUNTS = {"Flag": 1, "Bomb": 6, "Spy": 1, "Scout": 8, "Miner": 5, "Sergeant": 4, "Lieutenant": 4,
                "Captain": 4, "Major": 3, "Colonel": 2, "General": 1, "Marshal": 1}
RANKS = {"Flag": 0, "Bomb": 11, "Spy": 1, "Scout": 2, "Miner": 3, "Sergeant": 4, "Lieutenant": 5, "Captain": 6,
         "Major": 7, "Colonel": 8, "General": 9, "Marshal": 10}
ABBREVIATIONS = {"Flag": "FL", "Bomb": "BM", "Spy": "SP", "Scout": "SC", "Miner": "MN", "Sergeant": "SG",
                 "Lieutenant": "LT", "Captain": "CP", "Major": "MJ", "Colonel": "CL", "General": "GN",
                 "Marshal": "MS"}
IMMOBILE = ("Bomb", "Flag")
DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1))
BRACKETED = re.compile(r"\[\s*([A-J])\s*([0-9])\s*,?\s+([A-J])\s*([0-9])\s*\]", re.IGNORECASE)
BARE = re.compile(r"\s*([A-J])([0-9])\s+([A-J])([0-9])\s*", re.IGNORECASE)


@dataclass
class Piece:
    """One piece; `revealed` (its rank was shown in a battle) and `moved` are public, `rank` is private."""
    owner: int
    rank: str
    ident: int
    revealed: bool = False
    moved: bool = False


def square_name(r: int, c: int) -> str:
    return f"{chr(ord('A') + r)}{c}"


def _on_board(r: int, c: int) -> bool:
    return 0 <= r < SIZE and 0 <= c < SIZE


def battle(attacker: str, defender: str) -> str:
    """`"win"`, `"lose"` or `"tie"` for the attacker (capturing the Flag is a win)."""
    if defender == "Bomb":
        return "win" if attacker == "Miner" else "lose"
    if attacker == "Spy" and defender == "Marshal":
        return "win"
    a, d = RANKS[attacker], RANKS[defender]
    return "tie" if a == d else "win" if a > d else "lose"


def _place(board, rng: np.random.Generator, piece: Piece, rows) -> tuple[int, int]:
    free = [(r, c) for r in rows for c in range(SIZE) if board[r][c] is None and (r, c) not in LAKES]
    r, c = free[rng.integers(len(free))]
    board[r][c] = piece
    return r, c


def random_setup(seed: int) -> list[list[Piece | None]]:
    """textarena's automatic setup (flag in the back two rows, bombs around it, the rest of the bombs on the
    front two rows, everything else at random), drawn from `np.random.default_rng(seed)`. Piece idents:
    0-39 for Player 0, 100-139 for Player 1."""
    rng = np.random.default_rng(seed)
    board: list[list[Piece | None]] = [[None] * SIZE for _ in range(SIZE)]
    for pid in (0, 1):
        back, front, own = ((0, 1), (2, 3), range(0, 4)) if pid == 0 else ((8, 9), (6, 7), range(6, 10))
        pieces = iter(Piece(pid, rank, 100 * pid + i) for i, rank in enumerate(
            [rank for rank, count in PIECE_COUNTS.items() for _ in range(count)]))  # Flag, 6 Bombs, then the rest
        fr, fc = _place(board, rng, next(pieces), back)
        bombs = PIECE_COUNTS["Bomb"]
        for dr, dc in DIRECTIONS:
            r, c = fr + dr, fc + dc
            if bombs and _on_board(r, c) and board[r][c] is None:
                board[r][c] = next(pieces)
                bombs -= 1
        for _ in range(bombs):
            _place(board, rng, next(pieces), front)
        for piece in pieces:
            _place(board, rng, piece, own)
    return board


# ---------------------------------------------------------------------------------------------- movement
def _repeats_two_squares(piece: Piece, src, dst, last_moved: dict, history: dict) -> bool:
    """The two-square rule: the piece's last three moves (all made in a row by its owner) went between the same
    two squares as this one."""
    if last_moved.get(piece.owner) != piece.ident:
        return False
    past = history.get(piece.ident, [])
    pair = {src, dst}
    return len(past) >= 3 and all(set(m) == pair for m in past[-3:])


def stratego_moves(board, pid: int, last_moved: dict | None = None, history: dict | None = None) -> list:
    """Every legal `((r1, c1), (r2, c2))` for `pid`, by source square (row-major), then direction (up, down,
    left, right) and distance. `last_moved` {player: piece ident} and `history` {ident: [(src, dst), ...]}
    are the two-square rule's memory (none: no restriction)."""
    last_moved, history = last_moved or {}, history or {}
    moves = []
    for r in range(SIZE):
        for c in range(SIZE):
            piece = board[r][c]
            if piece is None or piece.owner != pid or piece.rank in IMMOBILE:
                continue
            reach = SIZE if piece.rank == "Scout" else 1
            for dr, dc in DIRECTIONS:
                for k in range(1, reach + 1):
                    nr, nc = r + k * dr, c + k * dc
                    if not _on_board(nr, nc) or (nr, nc) in LAKES:
                        break
                    target = board[nr][nc]
                    if target is not None and target.owner == pid:
                        break
                    if not _repeats_two_squares(piece, (r, c), (nr, nc), last_moved, history):
                        moves.append(((r, c), (nr, nc)))
                    if target is not None:  # an attack ends the line
                        break
    return moves


def has_legal_move(board, pid: int, last_moved: dict | None = None, history: dict | None = None) -> bool:
    """Whether `pid` has any legal move, without listing them all (a Scout's longer runs pass through its first
    step, so single steps decide, unless the two-square rule bars one)."""
    last_moved, history = last_moved or {}, history or {}
    for r in range(SIZE):
        for c in range(SIZE):
            piece = board[r][c]
            if piece is None or piece.owner != pid or piece.rank in IMMOBILE:
                continue
            for dr, dc in DIRECTIONS:
                nr, nc = r + dr, c + dc
                if not _on_board(nr, nc) or (nr, nc) in LAKES or (board[nr][nc] and board[nr][nc].owner == pid):
                    continue
                if not _repeats_two_squares(piece, (r, c), (nr, nc), last_moved, history):
                    return True
                if piece.rank == "Scout":  # the step is barred by the two-square rule; a longer run may not be
                    return bool(stratego_moves(board, pid, last_moved, history))
    return False


def has_movable_piece(board, pid: int) -> bool:
    return any(p is not None and p.owner == pid and p.rank not in IMMOBILE for row in board for p in row)


def move_error(board, pid: int, src, dst, last_moved: dict | None = None, history: dict | None = None) -> str | None:
    """Why `src -> dst` is not a legal move for `pid` (textarena's reasons and order), or None."""
    (r1, c1), (r2, c2) = src, dst
    piece = board[r1][c1] if _on_board(r1, c1) else None
    if not (_on_board(r1, c1) and _on_board(r2, c2)):
        return f"Invalid action format. Player {pid} did not input valid coordinates."
    if piece is None or piece.owner != pid:
        return f"Player {pid} must move one of their own pieces."
    if piece.rank in IMMOBILE:
        return f"Player {pid} cannot move a bomb or flag."
    distance = abs(r1 - r2) + abs(c1 - c2)
    if distance != 1:
        if piece.rank != "Scout":
            return "Pieces move one square up, down, left or right; only scouts may move further, in a straight line."
        if r1 != r2 and c1 != c2:
            return f"Player {pid} cannot move a scout diagonally."
        if distance == 0:
            return f"Player {pid} must move the piece to another square."
        dr, dc = (r2 > r1) - (r2 < r1), (c2 > c1) - (c2 < c1)
        for k in range(1, distance):
            r, c = r1 + k * dr, c1 + k * dc
            if (r, c) in LAKES:
                return f"Player {pid} cannot move into the lake."
            if board[r][c] is not None:
                return f"Player {pid} cannot move a scout through other pieces."
    if (r2, c2) in LAKES:
        return f"Player {pid} cannot move into the lake."
    if board[r2][c2] is not None and board[r2][c2].owner == pid:
        return f"Player {pid} cannot move onto their own piece."
    if _repeats_two_squares(piece, src, dst, last_moved or {}, history or {}):
        return "This move violates Stratego's two-square repetition rule."
    return None


def parse_move(text: str):
    """`((r1, c1), (r2, c2))` from the first `[A0 B0]` in `text` (or a reply that is only `A0 B0`), else None."""
    m = BRACKETED.search(text) or BARE.fullmatch(text)
    if m is None:
        return None
    a, b, c, d = m.groups()
    return (ord(a.upper()) - ord("A"), int(b)), (ord(c.upper()) - ord("A"), int(d))


def format_move(move) -> str:
    (r1, c1), (r2, c2) = move
    return f"[{square_name(r1, c1)} {square_name(r2, c2)}]"


def render(board, viewer: int | None) -> str:
    """textarena's board text for `viewer` (own pieces by abbreviation, the opponent's as `?`); `viewer=None`
    reveals everything (Player 0 lower case, Player 1 upper case)."""
    lines = ["   " + " ".join(f"{i:>3}" for i in range(SIZE))]
    for r in range(SIZE):
        cells = [f"{chr(ord('A') + r):<3}"]
        for c in range(SIZE):
            piece = board[r][c]
            if (r, c) in LAKES:
                cells.append("  ~ ")
            elif piece is None:
                cells.append("  . ")
            elif viewer is None:
                abbr = ABBREVIATIONS[piece.rank]
                cells.append(f" {abbr.lower() if piece.owner == 0 else abbr} ")
            else:
                cells.append(f" {ABBREVIATIONS[piece.rank]} " if piece.owner == viewer else "  ? ")
        lines.append("".join(cells))
    return "\n".join(lines) + "\n"


class _Private(str):
    """A game message meant for one player only (`base.TwoPlayerTextGame` broadcasts its state message)."""
    to: int


def _private(text: str, to: int) -> _Private:
    message = _Private(text)
    message.to = to
    return message


_RESULT = {"tie": "As the ranks are the same, both pieces lost.",
           "miner": "As miners can defuse bombs, {} the battle.",
           "bomb": "As the attacker is not a miner, {} the battle.",
           "spy": "As the attacker is a spy and the destination is a marshal, {} the battle.",
           "win": "As the attacker is a higher rank than the destination, {} the battle.",
           "lose": "As the attacker is a lower rank than the destination, {} the battle."}


class Stratego(TwoPlayerTextGame):
    env_id = "Stratego-v0"

    def __init__(self, seed: int = 0, max_turns: int = 1000):
        self.seed, self.max_turns = seed, max_turns

    def reset(self, num_players: int = 2, seed: int | None = None) -> None:
        self._setup_seed = self.seed if seed is None else seed
        super().reset(num_players, seed)

    def _new_state(self) -> None:
        self.board = random_setup(self._setup_seed)
        self.last_moved: dict[int, int] = {}  # player -> ident of the piece it moved last
        self.history: dict[int, list] = {}  # ident -> its last (<= 3) moves, made in a row
        self.removed: dict[int, list[str]] = {0: [], 1: []}  # ranks each player has lost (public: revealed)

    def _send(self, sender: int, to: int | None, message: str) -> None:
        if sender != GAME_ID and to is None:
            to = sender  # a raw reply is private to its author, as in textarena
        if isinstance(message, _Private):
            to = message.to
        super()._send(sender, to, message)

    def _player_prompt(self, pid: int) -> str:
        return (
            f"You are Player {pid} in Stratego. Player 0 moves first.\n"
            "Your goal is to capture your opponent's Flag or eliminate all of their movable pieces.\n"
            "Your army has been placed for you on the board, including your Flag, Bombs, and other pieces of "
            "varying ranks.\n\n"
            "### Your Pieces (abbreviation, rank, count)\n"
            "- MS Marshal (10) x1, GN General (9) x1, CL Colonel (8) x2, MJ Major (7) x3, CP Captain (6) x4, "
            "LT Lieutenant (5) x4,\n"
            "  SG Sergeant (4) x4, MN Miner (3) x5, SC Scout (2) x8, SP Spy (1) x1, BM Bomb x6, FL Flag x1.\n\n"
            "### Gameplay Instructions\n"
            "1. **Movement Rules:**\n"
            "   - On your turn, you can move one piece by one step to an adjacent empty or enemy square (up, down, "
            "left, or right).\n"
            "   - Scouts may instead move any number of empty squares in a straight line (not diagonally), and may "
            "attack the first enemy piece in that line; they cannot pass pieces or lakes.\n"
            "   - If the selected piece is a Bomb or a Flag, it cannot be moved.\n"
            "   - A piece may not move back and forth between the same two squares more than three turns in a row.\n"
            "2. **Battles:**\n"
            "   - If you move onto a square occupied by an opponent's piece, then a battle will occur and both ranks "
            "are revealed to both players:\n"
            "     - The piece with the higher rank wins and eliminates the opponent's piece.\n"
            "     - If the ranks are equal, both pieces are removed from the board.\n"
            "     - **Special Cases:**\n"
            "       - Bombs eliminate most attacking pieces except Miners, which defuse Bombs.\n"
            "       - Spies can defeat the Marshal if the Spy attacks first but lose to all other pieces.\n"
            "3. **End of the Game:**\n"
            "   - Capturing the opponent's Flag wins.\n"
            "   - A player with no movable pieces left, or with no legal move on their turn, loses; if neither "
            "player has a movable piece left, the game is a draw.\n"
            f"   - The game is a draw after {self.max_turns} turns in total (each player's move is one turn).\n\n"
            "### How to Make a Move:\n"
            "1. Specify the coordinates of the piece you want to move and its destination.\n"
            "2. Use the format: [A0 B0], where A0 is the source position, and B0 is the destination.\n"
            "   - Rows are lettered A-J from top to bottom and columns numbered 0-9 from left to right.\n"
            "   - Example: To move a piece from row A, column 0 to row B, column 0, input [A0 B0].\n"
            "3. Choose one of the Available Moves listed under the board.\n\n"
            "### Important Notes:\n"
            "- The board shows your own pieces by abbreviation, e.g. MN, MS.\n"
            "- Opponent pieces are shown as ? without revealing their ranks.\n"
            "- Grids with ~ are lakes and cannot be moved onto.\n"
            "- An invalid move must be resubmitted; a second invalid move in the same turn loses the game.\n"
            "- Player 0 and player 1's frontlines are row D and G respectively.")

    def _state_message(self) -> str:
        pid = self.current_player
        return _private(f"Current Board:\n\n{render(self.board, pid)}\nAvailable Moves: "
                        f"{', '.join(self.legal_actions())}", pid)

    def legal_actions(self) -> list[str]:
        return [format_move(m) for m in stratego_moves(self.board, self.current_player, self.last_moved,
                                                       self.history)]

    def _apply(self, pid: int, action: str) -> str | None:
        move = parse_move(action)
        if move is None:
            return f"Invalid action format. Player {pid} did not input a move in the format [A0 B0]."
        src, dst = move
        error = move_error(self.board, pid, src, dst, self.last_moved, self.history)
        if error is not None:
            return error
        (r1, c1), (r2, c2) = src, dst
        piece, target = self.board[r1][c1], self.board[r2][c2]
        self.board[r1][c1] = None
        piece.moved = True
        where = f"from {square_name(r1, c1)} to {square_name(r2, c2)}."
        mine, theirs = f"You have moved your piece {where}", f"Player {pid} has moved a piece {where}"
        if target is None:
            self.board[r2][c2] = piece
        else:
            result = battle(piece.rank, target.rank)
            piece.revealed = target.revealed = True
            if result == "tie":
                self.board[r2][c2] = None
                self.removed[pid].append(piece.rank)
                self.removed[1 - pid].append(target.rank)
            elif result == "win":
                self.board[r2][c2] = piece
                self.removed[1 - pid].append(target.rank)
            else:
                self.removed[pid].append(piece.rank)
            if target.rank == "Flag":
                self._send(GAME_ID, pid, f"{mine} The attacking piece was {piece.rank} and the destination piece "
                                         "was Flag.")
                self._send(GAME_ID, 1 - pid, f"{theirs} The attacking piece was {piece.rank} and the destination "
                                             "piece was Flag.")
                self._win(pid)
                self.reason = f"Player {pid} has captured the opponent's flag!"
                return None
            kind = ("tie" if result == "tie" else ("miner" if result == "win" else "bomb") if target.rank == "Bomb"
                    else "spy" if piece.rank == "Spy" and target.rank == "Marshal" else result)
            won = result == "win"
            detail = f" The attacking piece was {piece.rank} and the destination piece was {target.rank}. "
            mine += detail + _RESULT[kind].format("you won" if won else "you lost")
            theirs += detail + _RESULT[kind].format("you lost" if won else "you won")
        self._record(piece, src, dst)
        self._send(GAME_ID, pid, mine)
        self._send(GAME_ID, 1 - pid, theirs)
        self._check_end(pid)
        return None

    def _record(self, piece: Piece, src, dst) -> None:
        if self.last_moved.get(piece.owner) != piece.ident:
            self.history[piece.ident] = []  # moving another piece breaks a back-and-forth run
        self.history.setdefault(piece.ident, []).append((src, dst))
        del self.history[piece.ident][:-3]
        self.last_moved[piece.owner] = piece.ident

    def _check_end(self, mover: int) -> None:
        opponent = 1 - mover
        mover_can_move = has_movable_piece(self.board, mover)
        if not mover_can_move and not has_movable_piece(self.board, opponent):
            self._draw()
            self.reason = "Neither player has a movable piece left, so the game is a draw."
        elif not has_legal_move(self.board, opponent, self.last_moved, self.history):
            self._win(mover)
            self.reason = f"Player {mover} wins! Player {opponent} has no legal moves left."
        elif not mover_can_move:
            self._win(opponent)
            self.reason = f"Player {opponent} wins! Player {mover} has no movable pieces remaining."
        elif self.turn + 1 >= self.max_turns:  # self.turn counts the moves before this one
            self._draw()
            self.reason = "The turn limit has been reached, so the game is a draw."


# ---------------------------------------------------------------------------------------------- heuristic player
# Material values for the heuristic (the Flag's stands for winning the game).
VALUES = {"Flag": 1000.0, "Bomb": 1.0, "Spy": 4.0, "Scout": 1.0, "Miner": 2.5, "Sergeant": 1.5, "Lieutenant": 2.0,
          "Captain": 3.0, "Major": 4.0, "Colonel": 5.5, "General": 7.0, "Marshal": 9.0}


def public_view(env, pid: int):
    """What `pid` knows: a board of `(owner, rank or None, moved)` cells (enemy ranks only where a battle
    revealed them; None for empty) and the multiset {rank: count} of the enemy's still-unseen pieces."""
    view = [[None] * SIZE for _ in range(SIZE)]
    unseen = dict(PIECE_COUNTS)
    for rank in env.removed[1 - pid]:
        unseen[rank] -= 1
    for r in range(SIZE):
        for c in range(SIZE):
            p = env.board[r][c]
            if p is None:
                continue
            known = p.owner == pid or p.revealed
            view[r][c] = (p.owner, p.rank if known else None, p.moved)
            if p.owner != pid and p.revealed:
                unseen[p.rank] -= 1
    return view, unseen


def _rank_odds(unseen: dict, moved: bool) -> dict:
    """The distribution of an unseen enemy piece's rank (a piece that has moved is no Bomb or Flag)."""
    pool = {k: v for k, v in unseen.items() if v > 0 and not (moved and k in IMMOBILE)}
    total = sum(pool.values())
    return {k: v / total for k, v in pool.items()} if total else {}


def _attack_value(rank: str, defender: tuple, unseen: dict) -> float:
    """Expected material gain of `rank` attacking the enemy cell `defender`."""
    _, known, moved = defender
    odds = {known: 1.0} if known else _rank_odds(unseen, moved)
    gain = 0.0
    for other, p in odds.items():
        result = battle(rank, other)
        gain += p * (VALUES[other] if result == "win" else -VALUES[rank] if result == "lose"
                     else VALUES[other] - VALUES[rank])
    return gain


def _threat(view, square, rank: str, pid: int, unseen: dict) -> float:
    """Expected loss if an adjacent enemy attacks `rank` standing on `square` (the worst neighbour)."""
    r, c = square
    worst = 0.0
    for dr, dc in DIRECTIONS:
        nr, nc = r + dr, c + dc
        cell = view[nr][nc] if _on_board(nr, nc) else None
        if cell is None or cell[0] == pid or cell[1] in IMMOBILE:
            continue
        odds = {cell[1]: 1.0} if cell[1] else _rank_odds(unseen, True)
        loss = sum(p * VALUES[rank] for other, p in odds.items() if battle(other, rank) in ("win", "tie"))
        worst = max(worst, loss)
    return worst


def stratego_move(env, pid: int) -> str:
    """A one-ply player that uses only what `pid` can see (`public_view`): attack where the expected material
    gain (over the ranks the target can still have) is best, step out of reach of stronger neighbours, and
    otherwise advance towards the nearest enemy piece; a piece does not step straight back."""
    view, unseen = public_view(env, pid)
    enemies = [(r, c) for r in range(SIZE) for c in range(SIZE) if view[r][c] and view[r][c][0] != pid]
    best, best_score = None, -float("inf")
    for move in stratego_moves(env.board, pid, env.last_moved, env.history):
        (r1, c1), (r2, c2) = move
        rank = view[r1][c1][1]
        score = 0.0
        if view[r2][c2] is not None:
            score += _attack_value(rank, view[r2][c2], unseen)
        else:
            score += 0.5 * (_threat(view, (r1, c1), rank, pid, unseen) - _threat(view, (r2, c2), rank, pid, unseen))
            before = min(abs(r1 - r) + abs(c1 - c) for r, c in enemies)
            after = min(abs(r2 - r) + abs(c2 - c) for r, c in enemies)
            score += 0.1 * (before - after) / max(1.0, VALUES[rank])  # cheap pieces lead the advance
            past = env.history.get(env.board[r1][c1].ident, [])
            if past and past[-1] == ((r2, c2), (r1, c1)):
                score -= 0.3
        if score > best_score:
            best, best_score = move, score
    return format_move(best)
