"""Spite and Malice (textarena's `SpiteAndMalice-v0`, re-implemented).

Cards: two 48-card decks (ranks A 2-9 J Q K, no 10s; suits ♠♥♦♣), 96 cards written like `A♠`, `J♦`. A seeded
shuffle (`reset(seed=...)`, else the constructor's seed; never the global RNG) deals each player a 20-card payoff
pile (top card face up) and a 5-card hand; the other 46 cards are the draw pile. Each player has 4 discard piles,
and there are 4 shared center piles. Player 0 moves first.

Center piles are built up from A: a card fits a pile of n cards when its rank is n + 1 (A=1, 2..9, J=10, Q=11);
a King is wild: it fits any pile and stands for the rank n + 1 (after A 2 3 4 a King is a 5 and the next card
must be a 6). A pile that reaches 11 cards (up to Q) is cleared out of the game.

A turn (textarena's format, commands in square brackets, case-insensitive, anywhere in the reply, executed in
order; several may be chained in one reply):
  `[draw]`             first, exactly once per turn: refill the hand to 5 cards from the draw pile;
  `[play A♠ 0]`        play a card on center pile 0-3: the top of your payoff pile, a hand card or the top card
                       of one of your discard piles (if the card is in several places: payoff, then hand, then
                       the lowest discard pile; the format names no source);
  `[discard 5♦ 1]`     put a hand card on your discard pile 0-3; this ends the turn (later commands are ignored).
Playing the last hand card while the draw pile has cards refills the hand to 5 and the turn goes on. A player
who has drawn, holds no card and has no play ends the turn automatically.
End: a player whose payoff pile is empty wins (+1 / -1). When the draw pile is empty and neither player has a
hand card or a play from payoff or discard tops (a deadlock), fewer payoff cards wins; equal counts draw.
Invalid commands follow base.py's allowance (resubmit once, then lose); a reply whose chain fails anywhere is
undone completely. Every turn spends a card from a finite supply (nothing returns to the draw pile), so a game
always ends (random and heuristic games: at most 174 steps, inside `loop.play_game`'s 500).

Versions and differences: textarena 0.5.x (the version LearnArena pins) reads the bracketed commands above; the
current textarena reads them bare (`draw play A♠ 0`); we accept the bracketed form only, as 0.5.x does.
0.5.x has bugs we do not copy: it shuffles the global `random` module once in `__init__` and never rebuilds the
deck, so each `reset` deals from what is left; `[draw]` may be repeated at any time (refilling mid-turn, against
the rules) and raises when the pile runs out mid-fill; a failing chain keeps its earlier commands; a player with
an empty hand and no play cannot end the turn, so such games never end. We follow the current textarena's fixes,
which are the real rules: one draw at the start of the turn, refill on an emptied hand, atomic chains, the
automatic turn end and the deadlock rule. As in both versions (and unlike the card game, where finished center
piles are shuffled back into the draw pile) cleared center piles leave the game; we keep that, since it is what
makes the deadlock ending reachable. The actions are private to their author, as in textarena; the observation
shows the opponent's payoff top, counts and discard piles but not their hand, and lists the available moves."""

from __future__ import annotations

import copy
import re

import numpy as np

from humanai_jax.methods.learnarena.games.base import GAME_ID, TwoPlayerTextGame

__all__ = ["SpiteAndMalice", "new_deck", "card_rank", "fits", "spite_and_malice_move", "PAYOFF_SIZE", "HAND_SIZE",
           "NUM_PILES", "PILE_FULL"]

RANKS, SUITS = "A23456789JQK", "♠♥♦♣"
PAYOFF_SIZE, HAND_SIZE, NUM_PILES, PILE_FULL = 20, 5, 4, 11
COMMAND = re.compile(r"\[\s*(draw|play|discard)\b\s*(?:([A-Za-z0-9]+)\s*([♠♥♦♣])\s+(\d+)\s*)?\]", re.IGNORECASE)
_STATE = ("deck", "payoff", "hands", "discards", "center", "completed", "has_drawn")


def new_deck() -> list[str]:
    """The 96 cards, two of each rank and suit, in a fixed order (shuffle it with a seeded generator)."""
    return [f"{r}{s}" for r in RANKS for s in SUITS] * 2


def card_rank(card: str) -> int:
    """A=1 .. 9=9, J=10, Q=11; K (wild) = 12."""
    return RANKS.index(card[0]) + 1


def fits(card: str, pile: list[str]) -> bool:
    """A center pile of n cards (always built A, 2, ... with Kings standing for the missing rank) takes rank n + 1
    or a King."""
    return card[0] == "K" or card_rank(card) == len(pile) + 1


def _parse(action: str):
    """[(verb, card | None, pile | None)] of every bracketed command, or an error string."""
    action = action.replace("\ufe0f", "").replace("\ufe0e", "")  # emoji-style suits such as '♥️'
    commands = []
    for m in COMMAND.finditer(action):
        verb, rank, suit, pile = m.group(1).lower(), m.group(2), m.group(3), m.group(4)
        if verb == "draw":
            if rank is not None:
                return "[draw] takes no card or pile."
            commands.append(("draw", None, None))
            continue
        if rank is None:
            return f"[{verb}] needs a card and a pile, e.g. [{verb} A♠ 0]."
        if rank.upper() not in RANKS[:-1] + "K" or len(rank) != 1:
            return f"{rank}{suit} is not a card: ranks are A, 2-9, J, Q, K (the deck has no 10s)."
        if not 0 <= int(pile) < NUM_PILES:
            return f"There is no pile {pile}: piles are numbered 0-{NUM_PILES - 1}."
        commands.append((verb, rank.upper() + suit, int(pile)))
    return commands or None


class SpiteAndMalice(TwoPlayerTextGame):
    env_id = "SpiteAndMalice-v0"

    def __init__(self, seed: int = 0):
        self.seed = seed

    # ------------------------------------------------------------------ setup
    def reset(self, num_players: int = 2, seed: int | None = None) -> None:
        if num_players != 2:
            raise ValueError(f"{self.env_id} is a two-player game, got num_players={num_players}")
        self.current_player, self.done, self.rewards, self.reason = 0, False, None, ""
        self.turn = 0  # valid steps so far
        self._invalid_in_turn = 0
        self._inbox = {0: [], 1: []}
        self._deal(self.seed if seed is None else seed)
        for pid in (0, 1):
            self._send(GAME_ID, pid, self._player_prompt(pid))
            self._send(GAME_ID, pid, self._view(pid, with_moves=pid == self.current_player))

    def _deal(self, seed: int) -> None:
        deck = new_deck()
        self.deck = [deck[i] for i in np.random.default_rng(seed).permutation(len(deck))]  # top = last
        self.payoff = {pid: [self.deck.pop() for _ in range(PAYOFF_SIZE)] for pid in (0, 1)}
        self.hands = {pid: [self.deck.pop() for _ in range(HAND_SIZE)] for pid in (0, 1)}
        self.discards = {pid: [[] for _ in range(NUM_PILES)] for pid in (0, 1)}
        self.center = [[] for _ in range(NUM_PILES)]
        self.completed: list[str] = []  # cleared center piles (out of the game)
        self.has_drawn = {0: False, 1: False}

    def _player_prompt(self, pid: int) -> str:
        return (f"You are Player {pid} in a two-player game of Spite and Malice. You win by being the first to empty "
                "your payoff pile.\n"
                "Cards come from two decks without 10s: A=1, 2-9, J=10, Q=11, and K is wild. There are 4 shared "
                "center piles (0-3). A center pile starts with an Ace and goes up one rank at a time to Queen, when "
                "it is cleared. A King can be played on any center pile and takes the rank that comes next (after "
                "A 2 3 4 a King counts as 5, so the next card must be a 6).\n"
                "You may play to the center piles: the top card of your payoff pile, any card in your hand, or the "
                "top card of any of your 4 discard piles (0-3). The opponent sees your payoff top and discard "
                "piles, not your hand.\n"
                "Your turn, in square brackets:\n"
                "  [draw] first, once per turn: fill your hand up to 5 cards.\n"
                "  [play A♠ 0] plays the card A♠ on center pile 0. If you play every card in your hand you draw 5 "
                "more and continue.\n"
                "  [discard 5♦ 1] puts a card from your hand on your discard pile 1 and ends your turn (you must "
                "discard to end it; payoff cards cannot be discarded).\n"
                "You may chain commands in one reply, e.g. '[draw] [play A♠ 0] [discard 5♦ 1]'. If the draw pile "
                "is empty and neither player can move, the player with fewer payoff cards wins.\n"
                "An invalid move must be resubmitted; a second invalid move in the same turn loses the game.\n"
                "Player 0 starts.")

    # ------------------------------------------------------------------ views and moves
    def _view(self, pid: int, with_moves: bool = True) -> str:
        lines = [f"Draw pile: {len(self.deck)} card(s)", "", "--- Center Piles ---"]
        lines += [f"Pile {i}: {pile}" for i, pile in enumerate(self.center)]
        for p in (0, 1):
            payoff = self.payoff[p]
            lines += ["", f"--- Player {p} ({'Your View' if p == pid else 'Public View'}) ---",
                      f"Payoff Pile (Top Card): {payoff[-1] if payoff else 'Empty'}, Payoff Pile Length: {len(payoff)}",
                      f"Hand: {self.hands[p]}" if p == pid else f"Hand: {len(self.hands[p])} hidden card(s)",
                      f"Discard Piles: {self.discards[p]}"]
        text = "Current Board:\n\n" + "\n".join(lines)
        if with_moves:
            text += f"\n\nAvailable Moves: {', '.join(self.legal_actions(pid))}"
        return text

    def _state_message(self) -> str:
        return self._view(self.current_player)

    def playable_cards(self, pid: int) -> list[str]:
        """Cards `pid` may play now: payoff top, hand, discard tops (in that order, duplicates kept)."""
        tops = [pile[-1] for pile in self.discards[pid] if pile]
        return self.payoff[pid][-1:] + list(self.hands[pid]) + tops

    def legal_actions(self, pid: int | None = None) -> list[str]:
        pid = self.current_player if pid is None else pid
        if not self.has_drawn[pid]:
            return ["[draw]"]
        moves = [f"[play {card} {i}]" for i, pile in enumerate(self.center)
                 for card in self.playable_cards(pid) if fits(card, pile)]
        moves += [f"[discard {card} {i}]" for i in range(NUM_PILES) for card in self.hands[pid]]
        return list(dict.fromkeys(moves))

    def _has_play(self, pid: int, with_hand: bool = True) -> bool:
        cards = self.playable_cards(pid) if with_hand else self.payoff[pid][-1:] + [
            pile[-1] for pile in self.discards[pid] if pile]
        return any(fits(card, pile) for card in cards for pile in self.center)

    def _draw_up(self, pid: int) -> None:
        while len(self.hands[pid]) < HAND_SIZE and self.deck:
            self.hands[pid].append(self.deck.pop())

    def _play(self, pid: int, card: str, index: int) -> str | None:
        pile = self.center[index]
        if not fits(card, pile):
            return (f"Invalid play. Player {pid} tried to play {card} on center pile {index}, which needs "
                    f"{RANKS[len(pile)]} or a King.")
        if self.payoff[pid] and self.payoff[pid][-1] == card:
            self.payoff[pid].pop()
        elif card in self.hands[pid]:
            self.hands[pid].remove(card)
        else:
            source = next((d for d in self.discards[pid] if d and d[-1] == card), None)
            if source is None:
                return (f"Invalid play. Player {pid} tried to play {card}, which is not the top of their payoff "
                        "pile, in their hand or on top of one of their discard piles.")
            source.pop()
        pile.append(card)
        if len(pile) == PILE_FULL:
            self.completed.extend(pile)
            pile.clear()
        return None

    def _run(self, pid: int, commands) -> tuple[str | None, list[str], bool]:
        """Executes the chain; returns (error, event descriptions, turn ended)."""
        events = []
        for verb, card, index in commands:
            if verb == "draw":
                if self.has_drawn[pid]:
                    return "Draw is allowed exactly once, at the start of your turn.", events, False
                self._draw_up(pid)
                self.has_drawn[pid] = True
                events.append(f"Player {pid} drew cards (hand: {len(self.hands[pid])}, draw pile: {len(self.deck)}).")
                continue
            if not self.has_drawn[pid]:
                return "You must [draw] at the start of your turn before playing or discarding.", events, False
            if verb == "play":
                error = self._play(pid, card, index)
                if error is not None:
                    return error, events, False
                events.append(f"Player {pid} played {card} on center pile {index}.")
                if not self.payoff[pid]:
                    return None, events, False
                if not self.hands[pid] and self.deck:
                    self._draw_up(pid)
                    events.append(f"Player {pid} played every card in hand and drew a new hand.")
            else:
                if card not in self.hands[pid]:
                    return (f"Invalid discard. Player {pid} tried to discard {card}, which is not in their hand "
                            "(only hand cards can be discarded)."), events, False
                self.hands[pid].remove(card)
                self.discards[pid][index].append(card)
                events.append(f"Player {pid} discarded {card} to discard pile {index}. Player {1 - pid} goes next.")
                return None, events, True
        return None, events, False

    def _apply(self, pid: int, action: str) -> str | None:  # base hook, unused: `step` is overridden
        raise NotImplementedError

    # ------------------------------------------------------------------ protocol
    def step(self, action: str) -> tuple[bool, dict]:
        if self.done:
            raise RuntimeError(f"{self.env_id}: step() after the game ended ({self.reason})")
        pid = self.current_player
        self._send(pid, pid, action)  # private, as in textarena
        commands = _parse(action)
        if commands is None:
            error = (f"Invalid move format. Player {pid} did not respond with a valid move in square brackets: "
                     "[draw], [play <card> <pile>] or [discard <card> <pile>].")
        elif isinstance(commands, str):
            error = f"Invalid move format. {commands}"
        else:
            saved = copy.deepcopy({k: getattr(self, k) for k in _STATE})
            error, events, ended = self._run(pid, commands)
            if error is not None:
                for k, v in saved.items():
                    setattr(self, k, v)
        if error is not None:
            return self._reject(pid, error)
        self._invalid_in_turn = 0
        self.turn += 1
        for event in events:
            self._send(GAME_ID, None, event)
        self._check_end(pid)
        if self.done:
            self._send(GAME_ID, None, self.reason)
            return True, {"reason": self.reason}
        if not ended and not self.hands[pid] and not self._has_play(pid):
            self._send(GAME_ID, None, f"Player {pid} has no card to discard and no legal play; their turn ends.")
            ended = True
        if ended:
            self.has_drawn[pid] = False
            self.current_player = 1 - pid
            self._send(GAME_ID, pid, self._view(pid, with_moves=False))
        self._send(GAME_ID, self.current_player, self._view(self.current_player))
        return False, {}

    def _deadlocked(self) -> bool:
        return not self.deck and all(not self.hands[p] and not self._has_play(p, with_hand=False) for p in (0, 1))

    def _check_end(self, mover: int) -> None:
        if not self.payoff[mover]:
            self._win(mover)
            self.reason = f"Player {mover} has finished their payoff pile! Player {mover} wins!"
        elif self._deadlocked():
            n0, n1 = len(self.payoff[0]), len(self.payoff[1])
            if n0 == n1:
                self._draw()
                self.reason = f"Deadlock reached with both players having {n0} payoff cards remaining."
            else:
                winner = 0 if n0 < n1 else 1
                self._win(winner)
                self.reason = (f"Deadlock reached! Player {winner} wins with {min(n0, n1)} payoff cards remaining "
                               f"vs {max(n0, n1)}.")


# ---------------------------------------------------------------------- heuristic player
def _plan_to_payoff(env: SpiteAndMalice, pid: int) -> tuple[str, int] | None:
    """The first play of the cheapest chain of plays (hand cards and discard tops, Kings last) that lets the
    payoff top go down on some center pile, as `(card, pile)`; None if no pile can be reached this way."""
    target = env.payoff[pid][-1]
    best = None
    for i, pile in enumerate(env.center):
        if fits(target, pile):
            return target, i
        need = range(len(pile) + 1, card_rank(target))
        hand, discards, plan, kings = list(env.hands[pid]), [d[:] for d in env.discards[pid]], [], 0
        for rank in need:
            card = next((d[-1] for d in discards if d and card_rank(d[-1]) == rank), None)
            if card is not None:
                next(d for d in discards if d and d[-1] == card).pop()
            else:
                card = next((c for c in hand if card_rank(c) == rank), None)
                card = card or next((c for c in hand if c[0] == "K"), None)
                if card is None:
                    card = next((d[-1] for d in discards if d and d[-1][0] == "K"), None)
                    if card is None:
                        break
                    next(d for d in discards if d and d[-1] == card).pop()
                else:
                    hand.remove(card)
                kings += card[0] == "K"
            plan.append(card)
        else:
            cost = (kings, len(plan))
            if plan and (best is None or cost < best[0]):
                best = (cost, plan[0], i)
    return None if best is None else (best[1], best[2])


def spite_and_malice_move(env: SpiteAndMalice, pid: int) -> str:
    """A greedy player: draw; play the payoff top, or the first card of the cheapest chain that reaches it;
    else play non-King discard tops and hand cards that do not set up the opponent's payoff card (emptying
    the hand draws a fresh one); else discard the highest non-King card where it extends a descending run."""
    if not env.has_drawn[pid]:
        return "[draw]"
    planned = _plan_to_payoff(env, pid)
    if planned is not None:
        return "[play {} {}]".format(*planned)
    opp_top = env.payoff[1 - pid][-1] if env.payoff[1 - pid] else None
    tops = [d[-1] for d in env.discards[pid] if d]
    for card in tops + list(env.hands[pid]):
        if card[0] == "K":
            continue
        for i, pile in enumerate(env.center):
            after = len(pile) + 1 if len(pile) + 1 < PILE_FULL else 0
            if fits(card, pile) and (opp_top is None or opp_top[0] == "K" or card_rank(opp_top) != after + 1):
                return f"[play {card} {i}]"
    if not env.hands[pid]:  # only plays that help the opponent are left (the turn cannot end otherwise)
        return env.legal_actions(pid)[0]
    candidates = [c for c in env.hands[pid] if c[0] != "K"] or list(env.hands[pid])

    def score(move):
        card, i = move
        pile = env.discards[pid][i]
        if not pile:
            fit = 1.0
        elif card_rank(pile[-1]) == card_rank(card) + 1:
            fit = 3.0
        elif card_rank(pile[-1]) == card_rank(card):
            fit = 2.0
        else:
            fit = -abs(card_rank(pile[-1]) - card_rank(card)) / 12
        return fit + card_rank(card) / 100

    card, i = max(((c, i) for c in candidates for i in range(NUM_PILES)), key=score)
    return f"[discard {card} {i}]"
