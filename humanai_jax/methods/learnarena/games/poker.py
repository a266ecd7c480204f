"""Heads-up Texas Hold'em (textarena's `Poker-v0` for two players, re-implemented).

Cards: one 52-card deck, ranks 2-10 J Q K A, suits ♠♥♦♣, written like `10♥`, `A♠`. Each hand deals from a fresh
shuffle drawn from one generator seeded at `reset(seed=...)` (else the constructor's seed; never the global RNG), so
the same seed gives the same deals. Defaults as textarena: 10 hands, 1,000 chips each, blinds 10/20.

A hand (heads-up rules): the button posts the small blind and acts first pre-flop; the other player posts the big
blind and acts first on the flop, turn and river. Player 0 has the button in hand 1; it alternates. Streets:
pre-flop, flop (3 board cards), turn (1), river (1), then a showdown of the best five of seven cards (high card <
pair < two pair < three of a kind < straight (A-2-3-4-5, the wheel, is the lowest) < flush < full house < four of
a kind < straight flush; kickers break ties; equal hands split the pot). A player who runs out of chips is all-in:
the rest of the board is dealt without betting, and chips the opponent could not match are returned.

Moves (textarena 0.5.x's bracketed tokens, case-insensitive, anywhere in the reply; the first one counts):
  `[Check]` (nothing to call), `[Call]` (match the bet; with nothing due it checks), `[Fold]`,
  `[Bet N]` (open a street with a total bet of N, at least the big blind), `[Raise N]` (raise BY N over the
  current bet, at least the previous full bet or raise). A bet or raise for more than the stack is an all-in;
  an all-in may be smaller than the minimum. The observation lists the exact range and `Available Moves`.
End: after `num_hands` hands, or when a player has no chips; more chips wins (+1 / -1), equal chips draw (0 / 0).
Invalid moves follow base.py's allowance (resubmit once, then -1 for the offender, 0 for the other).
Length: every valid move is a check / call / fold (at most two per street that do not end it) or a bet / raise
(each full one adds a big blind or more to a player's total, a short one is an all-in), so a hand has at most
`8 + 2 * starting_chips // big_blind + 2` moves; `max_turns` is that times `num_hands` (1,100 by default), a
bound for the loop's step cap, never reached in practice (random games: tens of moves).

Versions and differences: textarena 0.5.x reads the bracketed tokens above (the current textarena reads bare
`check`, `bet 40`, ... and has fixed most of 0.5.x's bugs). 0.5.x's bugs we do not copy: it shuffles with the
global `random` module (no seeded deal); `[Bet N]` facing a bet is taken as a raise to N and there is no minimum
bet or raise; chips an all-in opponent cannot match are never returned; a fold reveals the unseen board; the
final rewards rank players by elimination order and chip count with no draw for equal stacks; an invalid move
hands the pot out and redeals. We follow the current textarena, which has the real rules: minimum bet = big
blind, minimum raise = the last full bet or raise, short all-ins allowed, uncalled chips returned, a fold shows
nothing, equal stacks draw. Our own choices: the first bracketed token in the reply counts (0.5.x tries check,
fold, call, bet, raise in that order); `[Fold]` is accepted at any time (it is legal poker) but listed only when
facing a bet; if a blind is short (all-in), the bet to call is the larger posted blind (textarena keeps the big
blind), since nobody else can act; with two players a raise against an all-in opponent is refused (nobody could
call it), which also makes the short-all-in reopening rule moot; an odd chip in a split pot cannot arise (the
contested pot is twice the smaller contribution). The invalid-move ending is base.py's -1 / 0 (textarena
eliminates the offender, which with two players also hands the other the win)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from humanai_jax.methods.learnarena.games.base import GAME_ID, TwoPlayerTextGame

__all__ = ["Poker", "new_deck", "card_rank", "hand_value", "HAND_NAMES", "parse_action", "equity", "poker_move"]

RANKS, SUITS = ("2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K", "A"), "♠♥♦♣"
RANK_VALUE = {r: i + 2 for i, r in enumerate(RANKS)}
HAND_NAMES = ("High Card", "One Pair", "Two Pair", "Three of a Kind", "Straight", "Flush", "Full House",
              "Four of a Kind", "Straight Flush")
STREETS = ("Pre-flop", "Flop", "Turn", "River")
ACTION = re.compile(r"\[\s*(check|call|fold|bet|raise)\b\s*([^\]]*)\]", re.IGNORECASE)


def new_deck() -> list[str]:
    """The 52 cards in a fixed order (shuffle it with a seeded generator)."""
    return [f"{r}{s}" for s in SUITS for r in RANKS]


def card_rank(card: str) -> int:
    """2..10 as themselves, J=11, Q=12, K=13, A=14."""
    return RANK_VALUE[card[:-1]]


def _straight_top(ranks) -> int:
    """The top rank of the best straight in a set of ranks (5 for the wheel A-2-3-4-5), or 0."""
    present = set(ranks) | ({1} if 14 in ranks else set())
    return next((top for top in range(14, 4, -1) if all(top - i in present for i in range(5))), 0)


def hand_value(cards) -> tuple[int, tuple[int, ...]]:
    """(category 0..8 as in HAND_NAMES, tie-breaking ranks) of the best five of `cards` (up to 7); a larger
    value wins, equal values split. Tie-breakers: the grouped ranks (quads, trips, pairs) then kickers, high
    first; straights give only their top card; flushes and high cards their five ranks."""
    ranks = sorted((card_rank(c) for c in cards), reverse=True)
    by_suit: dict[str, list[int]] = {}
    for c in cards:
        by_suit.setdefault(c[-1], []).append(card_rank(c))
    flush = next((sorted(rs, reverse=True) for rs in by_suit.values() if len(rs) >= 5), None)
    if flush and (top := _straight_top(flush)):
        return 8, (top,)
    counts = Counter(ranks)
    groups = sorted(counts, key=lambda r: (counts[r], r), reverse=True)  # by multiplicity, then rank

    def kickers(*used: int, n: int) -> tuple[int, ...]:
        return tuple(r for r in ranks if r not in used)[:n]

    if counts[groups[0]] == 4:
        return 7, (groups[0], *kickers(groups[0], n=1))
    if counts[groups[0]] == 3 and len(groups) > 1 and counts[groups[1]] >= 2:
        return 6, (groups[0], groups[1])  # a second set of trips counts as the pair
    if flush:
        return 5, tuple(flush[:5])
    if top := _straight_top(ranks):
        return 4, (top,)
    if counts[groups[0]] == 3:
        return 3, (groups[0], *kickers(groups[0], n=2))
    pairs = [r for r in groups if counts[r] == 2]
    if len(pairs) >= 2:
        return 2, (pairs[0], pairs[1], *kickers(pairs[0], pairs[1], n=1))  # a third pair can be the kicker
    if pairs:
        return 1, (pairs[0], *kickers(pairs[0], n=3))
    return 0, tuple(ranks[:5])


def parse_action(action: str) -> tuple[str, int | None] | str:
    """(verb, amount) of the first bracketed poker token, or an error string."""
    m = ACTION.search(action)
    if m is None:
        return ("Invalid poker action. Reply with one of [Check], [Call], [Fold], [Bet N] or [Raise N] "
                "(in square brackets).")
    verb, rest = m.group(1).lower(), m.group(2).strip()
    if verb in ("check", "call", "fold"):
        return verb, None  # textarena 0.5.x accepts '[Call 20]' as a call too
    if not re.fullmatch(r"\d{1,12}", rest):
        return f"[{verb.capitalize()} N] needs a whole number of chips, e.g. [{verb.capitalize()} 40]."
    return verb, int(rest)


class Poker(TwoPlayerTextGame):
    env_id = "Poker-v0"

    def __init__(self, seed: int = 0, num_hands: int = 10, starting_chips: int = 1000, small_blind: int = 10,
                 big_blind: int = 20):
        if not 0 < small_blind <= big_blind < starting_chips:
            raise ValueError(f"need 0 < small_blind <= big_blind < starting_chips, got {small_blind}, {big_blind}, "
                             f"{starting_chips}")
        if num_hands < 1:
            raise ValueError(f"num_hands must be >= 1, got {num_hands}")
        self.seed, self.num_hands, self.starting_chips = seed, num_hands, starting_chips
        self.small_blind, self.big_blind = small_blind, big_blind

    @property
    def max_turns(self) -> int:
        """An upper bound on valid moves in a game (see the module docstring)."""
        return self.num_hands * (8 + 2 * self.starting_chips // self.big_blind + 2)

    # ------------------------------------------------------------------ setup
    def reset(self, num_players: int = 2, seed: int | None = None) -> None:
        if num_players != 2:
            raise ValueError(f"{self.env_id} is a two-player game, got num_players={num_players}")
        self.current_player, self.done, self.rewards, self.reason = 0, False, None, ""
        self.turn = 0  # valid moves so far
        self._invalid_in_turn = 0
        self._inbox = {0: [], 1: []}
        self._rng = np.random.default_rng(self.seed if seed is None else seed)
        self.chips = [self.starting_chips, self.starting_chips]
        self.hand, self.button = 1, 0
        for pid in (0, 1):
            self._send(GAME_ID, pid, self._player_prompt(pid))
        self._send(GAME_ID, None, f"Starting a {self.num_hands}-hand Texas Hold'em game with 2 players.")
        self._start_hand()
        self._send(GAME_ID, self.current_player, self._view(self.current_player))

    def _player_prompt(self, pid: int) -> str:
        return (f"You are Player {pid} in a 2-player Texas Hold'em Poker game.\nGame Information:\n"
                f"- {self.num_hands} hands total\n- Starting stack: {self.starting_chips} chips\n"
                f"- Blinds: {self.small_blind}/{self.big_blind}\n"
                "- The dealer posts the small blind and acts first before the flop; the big blind acts first "
                "after it. The dealer button alternates.\n"
                "- After the last hand the player with more chips wins (equal chips draw); a player with no "
                "chips left loses at once.\n\n"
                "Available actions (exact tokens, in square brackets):\n"
                "  '[Check]'   - when no bet is live\n"
                "  '[Call]'    - match the current bet\n"
                "  '[Fold]'    - discard your hand\n"
                f"  '[Bet N]'   - open for N chips (at least {self.big_blind})\n"
                "  '[Raise N]' - raise by N chips over the current bet (at least the previous bet or raise, "
                "unless all-in)\n"
                "An invalid move must be resubmitted; a second invalid move in the same turn loses the game.")

    def _start_hand(self) -> None:
        deck = new_deck()
        order = self._rng.permutation(len(deck))
        cards = [deck[i] for i in order]
        self.hole = {0: cards[0:2], 1: cards[2:4]}
        self.board = cards[4:9]
        self.street, self.folded = 0, None
        self.bets, self.contrib = [0, 0], [0, 0]
        self.acted: set[int] = set()
        self.last_full_raise = self.big_blind
        sb, bb = self.button, 1 - self.button
        posted = {sb: self._pay(sb, self.small_blind), bb: self._pay(bb, self.big_blind)}
        self.current_bet = max(self.bets)
        self._send(GAME_ID, None, f"Hand {self.hand} / {self.num_hands}: Player {sb} is the dealer and posts the "
                                  f"small blind ({posted[sb]}); Player {bb} posts the big blind ({posted[bb]}).")
        self.current_player = sb
        if self._betting_over():
            self._run_out()

    def _pay(self, pid: int, amount: int) -> int:
        paid = min(amount, self.chips[pid])
        self.chips[pid] -= paid
        self.bets[pid] += paid
        self.contrib[pid] += paid
        return paid

    # ------------------------------------------------------------------ views and moves
    @property
    def pot(self) -> int:
        return sum(self.contrib)

    def visible_board(self) -> list[str]:
        return self.board[:(0, 3, 4, 5)[self.street]]

    def to_call(self, pid: int) -> int:
        return min(self.current_bet - self.bets[pid], self.chips[pid])

    def raise_range(self, pid: int) -> tuple[str, int, int] | None:
        """('bet' | 'raise', lowest N, highest N = all-in) for `pid`, or None if it may not bet or raise."""
        stack_total = self.bets[pid] + self.chips[pid]
        if self.chips[1 - pid] == 0 or stack_total <= self.current_bet:
            return None
        if self.current_bet == 0:
            return "bet", min(self.big_blind, stack_total), stack_total
        low_total = min(self.current_bet + self.last_full_raise, stack_total)
        return "raise", low_total - self.current_bet, stack_total - self.current_bet

    def legal_actions(self, pid: int | None = None) -> list[str]:
        """Every legal kind of move; bets and raises at a few sizes (minimum, about the pot, all-in) -- any N in
        the range of `raise_range` is legal."""
        pid = self.current_player if pid is None else pid
        moves = ["[Fold]", "[Call]"] if self.current_bet > self.bets[pid] else ["[Check]"]
        if (rng := self.raise_range(pid)) is not None:
            verb, low, high = rng
            sizes = sorted({low, min(max(low, self.pot), high), high})
            moves += [f"[{verb.capitalize()} {n}]" for n in sizes]
        return moves

    def _status(self, p: int) -> str:
        return "folded" if self.folded == p else "all-in" if self.chips[p] == 0 else "active"

    def _view(self, pid: int) -> str:
        lines = [f"===== Hand {self.hand} / {self.num_hands} - {STREETS[self.street]} =====",
                 f"Pot: {self.pot} | Current bet: {self.current_bet}",
                 f"Visible board: [{', '.join(self.visible_board())}]"]
        for p in (0, 1):
            role = "Dealer/SB" if p == self.button else "BB"
            lines.append(f"P{p} ({role}): {self.chips[p]} chips | bet {self.bets[p]} | {self._status(p)}")
        lines += [f"Your hole: {', '.join(self.hole[pid])}", "=" * 46]
        due = self.to_call(pid)
        options = ["[Fold]", f"[Call] ({due} chips{', all-in' if due == self.chips[pid] else ''})"] if due > 0 \
            else ["[Check]"]
        if (rng := self.raise_range(pid)) is not None:
            verb, low, high = rng
            verb = verb.capitalize()
            options.append(f"[{verb} N] (N from {low} to {high}; {high} is all-in)" if low < high
                           else f"[{verb} {high}] (all-in)")
        lines.append(f"To call: {due} | Your options: {', '.join(options)}")
        lines.append(f"Available Moves: {', '.join(self.legal_actions(pid))}")
        return "\n".join(lines)

    def _state_message(self) -> str:
        return self._view(self.current_player)

    # ------------------------------------------------------------------ betting
    def _bet_action(self, pid: int, verb: str, amount: int | None) -> str | None:
        """Applies one action to the street; returns an error (state unchanged) or None."""
        due = self.current_bet - self.bets[pid]
        if verb == "fold":
            self.folded = pid
            self._send(GAME_ID, None, f"Player {pid} folds.")
        elif verb == "check" or (verb == "call" and due <= 0):
            if due > 0:
                return f"Cannot check facing a bet: {self.to_call(pid)} to call. Reply [Call], [Fold] or [Raise N]."
            self.acted.add(pid)
            self._send(GAME_ID, None, f"Player {pid} checks." if verb == "check"
                       else f"Player {pid} calls with nothing due (checks).")
        elif verb == "call":
            paid = self._pay(pid, due)
            self.acted.add(pid)
            self._send(GAME_ID, None, f"Player {pid} calls {paid}{' and is all-in' if self.chips[pid] == 0 else ''}.")
        else:
            return self._bet_or_raise(pid, verb, amount)
        return None

    def _bet_or_raise(self, pid: int, verb: str, amount: int) -> str | None:
        if amount <= 0:
            return "Bet and raise amounts must be positive."
        if verb == "bet" and self.current_bet > 0:
            return (f"There is a live bet of {self.current_bet}: reply [Call], [Fold] or [Raise N] (N = chips "
                    "added over the current bet).")
        if verb == "raise" and self.current_bet == 0:
            return "There is no bet to raise: reply [Check] or [Bet N]."
        rng = self.raise_range(pid)
        if rng is None:
            why = (f"Player {1 - pid} is all-in" if self.chips[1 - pid] == 0
                   else "your stack only covers a call")
            return f"You cannot {verb}: {why}. Reply [Call] or [Fold]."
        _, low, high = rng
        if amount < low and amount < high:
            rule = (f"A bet must be at least {low} chips" if verb == "bet"
                    else f"A raise must add at least {low} chips (a total bet of {self.current_bet + low})")
            return f"{rule}, unless it is all-in ({verb} {high}). Reply [{verb.capitalize()} {low}] or more."
        amount = min(amount, high)  # more than the stack is an all-in
        total = amount if verb == "bet" else self.current_bet + amount
        if amount >= self.last_full_raise:  # the street starts at a big blind, so this covers a bet
            self.last_full_raise = total - self.current_bet  # a full bet / raise sets the next minimum
        self._pay(pid, total - self.bets[pid])
        self.current_bet = total
        self.acted = {pid}  # the opponent must act again
        all_in = " and is all-in" if self.chips[pid] == 0 else ""
        self._send(GAME_ID, None, f"Player {pid} {'bets' if verb == 'bet' else 'raises'} to {total}{all_in}.")
        return None

    def _betting_over(self) -> bool:
        """No more decisions in this hand: nobody can act, or the one who can has matched the other's all-in."""
        actors = [p for p in (0, 1) if self.chips[p] > 0]
        if not actors:
            return True
        return len(actors) == 1 and self.bets[actors[0]] >= self.bets[1 - actors[0]]

    def _street_closed(self) -> bool:
        return all(p in self.acted and self.bets[p] == self.current_bet for p in (0, 1) if self.chips[p] > 0)

    def _apply(self, pid: int, action: str) -> str | None:
        parsed = parse_action(action)
        if isinstance(parsed, str):
            return parsed
        error = self._bet_action(pid, *parsed)
        if error is not None:
            return error
        if self.folded is not None:
            winner = 1 - pid
            self._send(GAME_ID, None, f"Player {winner} wins the pot of {self.pot} chips (Player {pid} folded).")
            self.chips[winner] += self.pot
            self._end_hand()
        elif self._betting_over():
            self._run_out()
        elif self._street_closed():
            self._next_street()
        else:
            self.current_player = 1 - pid
        return None

    # ------------------------------------------------------------------ streets and showdown
    def _next_street(self) -> None:
        if self.street == 3:
            self._showdown()
            return
        self.street += 1
        self.bets, self.acted, self.current_bet, self.last_full_raise = [0, 0], set(), 0, self.big_blind
        self._send(GAME_ID, None, f"--- {STREETS[self.street]}: board [{', '.join(self.visible_board())}] ---")
        self.current_player = 1 - self.button

    def _run_out(self) -> None:
        if self.street < 3:
            self.street = 3
            self._send(GAME_ID, None, f"No more betting is possible; the board is dealt out: "
                                      f"[{', '.join(self.board)}].")
        self._showdown()

    def _showdown(self) -> None:
        values = {p: hand_value(self.hole[p] + self.board) for p in (0, 1)}
        lines = [f"Showdown, hand {self.hand}:"]
        lines += [f"Player {p}: {' '.join(self.hole[p])} ({HAND_NAMES[values[p][0]]})" for p in (0, 1)]
        lines.append(f"Community cards: {', '.join(self.board)}")
        self._send(GAME_ID, None, "\n".join(lines))
        matched = min(self.contrib)
        for p in (0, 1):  # chips the opponent could not match go back
            if (extra := self.contrib[p] - matched) > 0:
                self.chips[p] += extra
                self._send(GAME_ID, None, f"Player {p}'s uncalled {extra} chips are returned.")
        pot = 2 * matched
        if values[0] == values[1]:
            self.chips[0] += pot // 2
            self.chips[1] += pot // 2  # the contested pot is even: no odd chip with two players
            self._send(GAME_ID, None, f"Players 0 and 1 split the pot of {pot} chips ({pot // 2} each).")
        else:
            winner = 0 if values[0] > values[1] else 1
            self.chips[winner] += pot
            self._send(GAME_ID, None, f"Player {winner} wins the pot of {pot} chips with "
                                      f"{HAND_NAMES[values[winner][0]]}.")
        self._end_hand()

    def _end_hand(self) -> None:
        self.contrib, self.bets = [0, 0], [0, 0]
        if self.hand >= self.num_hands or 0 in self.chips:
            self._finish()
            return
        self.hand += 1
        self.button = 1 - self.button
        self._start_hand()

    def _finish(self) -> None:
        c0, c1 = self.chips
        if c0 == c1:
            self._draw()
            self.reason = f"The game ends after {self.hand} hands with {c0} chips each. The game is a draw!"
        else:
            winner = 0 if c0 > c1 else 1
            self._win(winner)
            self.reason = (f"The game ends after {self.hand} hands: Player 0 has {c0} chips, Player 1 has {c1}. "
                           f"Player {winner} wins!")

    # ------------------------------------------------------------------ protocol
    def step(self, action: str) -> tuple[bool, dict]:
        """base.step, except that the next player is set by the betting (not alternation) and the table view
        goes to the player to act only (hole cards are private)."""
        if self.done:
            raise RuntimeError(f"{self.env_id}: step() after the game ended ({self.reason})")
        pid = self.current_player
        self._send(pid, None, action)  # public, as in textarena
        error = self._apply(pid, action)
        if error is not None:
            return self._reject(pid, error)
        self._invalid_in_turn = 0
        self.turn += 1
        if self.done:
            self._send(GAME_ID, None, self.reason)
            return True, {"reason": self.reason}
        self._send(GAME_ID, self.current_player, self._view(self.current_player))
        return False, {}


# ---------------------------------------------------------------------- heuristic player
def equity(hole, board, samples: int = 200) -> float:
    """Hand strength: the chance that `hole` beats one random hand once the board is complete (ties count
    half), by `samples` random deals of the unseen cards; seeded from the known cards, so the same position
    always gets the same number."""
    known = list(hole) + list(board)
    deck = new_deck()
    rng = np.random.default_rng(sorted(deck.index(c) for c in known))
    unseen = [c for c in deck if c not in known]
    need = 2 + 5 - len(board)
    score = 0.0
    for _ in range(samples):
        drawn = [unseen[i] for i in rng.choice(len(unseen), need, replace=False)]
        full_board = list(board) + drawn[2:]
        mine, theirs = hand_value(list(hole) + full_board), hand_value(drawn[:2] + full_board)
        score += 1.0 if mine > theirs else 0.5 if mine == theirs else 0.0
    return score / samples


def poker_move(env: Poker, pid: int, raise_at: float = 0.65, margin: float = 0.05) -> str:
    """Plays by hand strength (`equity` against a random hand): bet or raise about the pot with equity >=
    `raise_at`; else check when free, call when equity beats the pot odds by `margin`, fold otherwise. Uses
    only what `pid` sees (its hole cards, the visible board, the bets)."""
    strength = equity(env.hole[pid], env.visible_board())
    due = env.to_call(pid)
    rng = env.raise_range(pid)
    if rng is not None and strength >= raise_at:
        verb, low, high = rng
        return f"[{verb.capitalize()} {min(max(low, env.pot), high)}]"
    if due <= 0:
        return "[Check]"
    return "[Call]" if strength >= due / (env.pot + due) + margin else "[Fold]"
