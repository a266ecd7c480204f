"""Heads-up Texas Hold'em (textarena's Poker-v0 rules, re-implemented): the hand evaluator against hand values
and a brute-force best-of-21 five-card classifier, the seeded deal, blinds and action order, bet / raise / call
rules and their errors, folds, showdowns and split pots, all-ins with uncalled chips returned, every ending
(bust, last hand with more / equal chips, invalid-move allowance), private hole cards, the equity estimate,
the heuristic against random, and 30 random games checked for chip conservation."""

import itertools
import random
from collections import Counter

import numpy as np

from humanai_jax.agents import GenConfig
from humanai_jax.methods.learnarena.agents import RoleAgent
from humanai_jax.methods.learnarena.games.poker import (
    HAND_NAMES,
    Poker,
    card_rank,
    equity,
    hand_value,
    new_deck,
    parse_action,
    poker_move,
)
from humanai_jax.methods.learnarena.loop import outcome_of, play_game
from humanai_jax.methods.learnarena.players import scripted_move_backend


# ---------------------------------------------------------------------- an independent reference evaluator
def five_card_value(cards):
    """The textbook classification of exactly five cards: category, then ranks grouped by count (high first)."""
    ranks = sorted((card_rank(c) for c in cards), reverse=True)
    counts = Counter(ranks)
    grouped = tuple(sorted(counts, key=lambda r: (counts[r], r), reverse=True))
    shape = sorted(counts.values(), reverse=True)
    flush = len({c[-1] for c in cards}) == 1
    uniq = sorted(counts)
    top = uniq[-1] if len(uniq) == 5 and uniq[-1] - uniq[0] == 4 else 5 if uniq == [2, 3, 4, 5, 14] else 0
    if top and flush:
        return 8, (top,)
    if shape == [4, 1]:
        return 7, grouped
    if shape == [3, 2]:
        return 6, grouped
    if flush:
        return 5, tuple(ranks)
    if top:
        return 4, (top,)
    return {(3, 1, 1): 3, (2, 2, 1): 2, (2, 1, 1, 1): 1}.get(tuple(shape), 0), grouped


def brute_force_value(cards):
    return max(five_card_value(combo) for combo in itertools.combinations(cards, 5))


def test_hand_values_by_hand():
    cases = [
        ("A♠ J♦ 9♣ 7♥ 5♠ 3♦ 2♣", (0, (14, 11, 9, 7, 5))),
        ("K♠ K♦ 9♣ 7♥ 5♠ 3♦ 2♣", (1, (13, 9, 7, 5))),
        ("K♠ K♦ 9♣ 9♥ 5♠ 5♦ A♣", (2, (13, 9, 14))),
        ("K♠ K♦ 9♣ 9♥ 5♠ 5♦ 2♣", (2, (13, 9, 5))),  # the third pair is the kicker
        ("7♠ 7♦ 7♣ A♥ K♠ 3♦ 2♣", (3, (7, 14, 13))),
        ("10♠ 9♠ 8♦ 7♣ 6♥ 5♠ 2♣", (4, (10,))),  # six in a row: the top five
        ("A♠ 2♦ 3♣ 4♥ 5♠ 9♦ K♣", (4, (5,))),  # the wheel
        ("A♠ K♦ Q♣ J♥ 10♠ 2♦ 3♣", (4, (14,))),
        ("Q♠ K♦ A♣ 2♥ 3♠ 7♦ 9♣", (0, (14, 13, 12, 9, 7))),  # no wrap-around straight
        ("A♥ J♥ 9♥ 6♥ 4♥ 2♥ K♠", (5, (14, 11, 9, 6, 4))),
        ("9♣ 8♣ 7♦ 6♣ 5♣ 2♣ K♥", (5, (9, 8, 6, 5, 2))),  # a straight and a flush, not a straight flush
        ("8♠ 8♦ 8♣ 4♥ 4♠ 4♦ A♣", (6, (8, 4))),  # two sets of trips
        ("8♠ 8♦ 8♣ 4♥ 4♠ J♦ J♣", (6, (8, 11))),
        ("Q♠ Q♦ Q♣ Q♥ A♠ A♦ 2♣", (7, (12, 14))),
        ("9♣ 8♣ 7♣ 6♣ 5♣ A♦ A♥", (8, (9,))),
        ("A♦ 2♦ 3♦ 4♦ 5♦ K♠ Q♠", (8, (5,))),  # the steel wheel
        ("A♠ K♠ Q♠ J♠ 10♠ 9♠ 9♦", (8, (14,))),
    ]
    for text, expected in cases:
        cards = text.split()
        assert hand_value(cards) == expected == brute_force_value(cards), text
    ordered = [hand_value(text.split()) for text, _ in cases]
    assert sorted(set(v[0] for v in ordered)) == list(range(9)) and len(HAND_NAMES) == 9
    assert hand_value("K♠ K♦ A♣ 7♥ 5♠".split()) > hand_value("K♥ K♣ Q♣ J♥ 9♠".split())  # kicker
    assert hand_value("6♠ 2♦ 3♣ 4♥ 5♠".split()) > hand_value("A♠ 2♦ 3♣ 4♥ 5♠".split())  # the wheel is lowest
    assert hand_value("A♠ A♦ 9♣ 9♥ 2♠".split()) > hand_value("K♠ K♦ Q♣ Q♥ A♦".split())


def test_hand_value_matches_brute_force():
    rng = np.random.default_rng(0)
    deck = new_deck()
    small = [c for c in deck if c[:-1] in ("A", "2", "3", "4", "5", "6", "K") and c[-1] in "♠♥"]  # rich in straights
    seen = Counter()
    for pool in (deck, small):
        for _ in range(1000):
            cards = [pool[i] for i in rng.choice(len(pool), 7, replace=False)]
            value = hand_value(cards)
            assert value == brute_force_value(cards), cards
            seen[value[0]] += 1
    assert set(seen) == set(range(9)), seen  # every category was checked


def test_seeded_deal_uses_no_global_rng():
    py_state, np_state = random.getstate(), np.random.get_state()[1].copy()
    a, b, c = Poker(), Poker(), Poker()
    a.reset(seed=5)
    b.reset(seed=5)
    c.reset(seed=6)
    assert random.getstate() == py_state and (np.random.get_state()[1] == np_state).all()
    assert (a.hole, a.board) == (b.hole, b.board) and (a.hole, a.board) != (c.hole, c.board)
    dealt = a.hole[0] + a.hole[1] + a.board
    assert len(set(dealt)) == 9 and set(dealt) <= set(new_deck()) and len(new_deck()) == 52
    for env in (a, b):  # the next hand's deal repeats too
        env.step("[Fold]")
    assert a.hand == b.hand == 2 and (a.hole, a.board) == (b.hole, b.board)
    d = Poker(seed=5)
    d.reset()  # no seed: the constructor's
    e = Poker()
    e.reset(seed=5)
    assert (d.hole, d.board) == (e.hole, e.board)


def test_blinds_order_and_legal_moves_by_hand():
    env = Poker()
    env.reset(seed=0)
    assert env.chips == [990, 980] and env.bets == [10, 20] and env.pot == 30 and env.current_player == 0
    assert env.legal_actions() == ["[Fold]", "[Call]", "[Raise 20]", "[Raise 30]", "[Raise 980]"]
    assert "To call: 10 | Your options: [Fold], [Call] (10 chips), [Raise N] (N from 20 to 980; 980 is all-in)" \
        in env.get_observation()[1]
    assert env.step("[Call]") == (False, {}) and env.current_player == 1  # the big blind has the option
    assert env.legal_actions() == ["[Check]", "[Raise 20]", "[Raise 40]", "[Raise 980]"]
    env.step("[Check]")
    assert env.street == 1 and len(env.visible_board()) == 3 and env.current_player == 1  # BB acts first
    assert env.legal_actions() == ["[Check]", "[Bet 20]", "[Bet 40]", "[Bet 980]"]
    env.step("I bet. [Bet 50]")
    assert env.current_player == 0 and env.to_call(0) == 50
    assert env.legal_actions() == ["[Fold]", "[Call]", "[Raise 50]", "[Raise 90]", "[Raise 930]"]
    env.step("[raise 70]")  # raise BY 70: a total of 120; the next minimum raise is 70
    assert env.bets == [120, 50] and env.current_bet == 120 and env.raise_range(1) == ("raise", 70, 860)
    env.step("[Call]")
    assert env.street == 2 and env.pot == 280 and env.chips == [860, 860] and len(env.visible_board()) == 4
    env.step("[Check]")
    env.step("[Check]")
    assert env.street == 3 and env.current_player == 1 and len(env.visible_board()) == 5


def test_bet_and_raise_errors():
    env = Poker()
    env.reset(seed=0)
    errors = {
        "[Check]": "Cannot check facing a bet",
        "[Bet 100]": "There is a live bet of 20",
        "[Raise 10]": "A raise must add at least 20 chips (a total bet of 40)",
        "[Raise 0]": "must be positive",
        "[Raise lots]": "needs a whole number",
        "I call": "Invalid poker action",
    }
    for action, reason in errors.items():
        env._invalid_in_turn = 0
        done, info = env.step(action)
        assert not done and info["invalid_move"] and reason in info["reason"], (action, info)
        assert env.chips == [990, 980] and env.current_player == 0  # nothing changed
    env._invalid_in_turn = 0
    env.step("[Call]")
    env.step("[Check]")
    for action, reason in {"[Raise 40]": "There is no bet to raise", "[Bet 19]": "A bet must be at least 20"}.items():
        env._invalid_in_turn = 0
        assert reason in env.step(action)[1]["reason"]
    assert parse_action("[CALL 20] then [Fold]") == ("call", None) and parse_action("[Bet 5000]") == ("bet", 5000)


def test_all_in_rules_and_uncalled_chips():
    env = Poker()
    env.reset(seed=0)
    env.step("[Raise 5000]")  # more than the stack: all-in for 1000
    assert env.chips[0] == 0 and env.current_bet == 1000 and env.raise_range(1) is None
    assert env.legal_actions() == ["[Fold]", "[Call]"]
    assert "Player 0 is all-in" in env.step("[Raise 100]")[1]["reason"]  # nobody could call a raise
    env = Poker(num_hands=3)
    env.reset(seed=0)
    env.step("[Raise 20]")
    env.step("[Fold]")  # hand 2: chips 1020 / 980, Player 1 is the dealer
    assert env.hand == 2 and env.chips == [1000, 970] and env.current_player == 1
    env.step("[Call]")
    env.step("[Raise 1000]")  # Player 0 all-in for 1020 in total
    env.hole = {0: ["A♠", "A♥"], 1: ["2♣", "7♦"]}
    env.board = ["K♠", "9♦", "4♣", "3♥", "J♠"]
    done, info = env.step("[Call]")  # Player 1 calls 960 all-in: 40 of Player 0's chips are uncalled
    assert done and env.chips == [2000, 0] and env.close() == {0: 1.0, 1: -1.0}  # a bust ends the game at once
    log = env.observation_of(1)
    assert "Player 0's uncalled 40 chips are returned." in log and "Player 0 wins the pot of 1960 chips" in log
    assert "board is dealt out" in log and "Player 1: 2♣ 7♦ (High Card)" in log and "(One Pair)" in log
    env = Poker(num_hands=3)  # the same hand won by the short stack: the uncalled chips keep Player 0 alive
    env.reset(seed=0)
    for action in ("[Raise 20]", "[Fold]", "[Call]", "[Raise 1000]"):
        env.step(action)
    env.hole = {0: ["2♣", "7♦"], 1: ["A♠", "A♥"]}
    env.board = ["K♠", "9♦", "4♣", "3♥", "J♠"]
    assert env.step("[Call]") == (False, {}) and env.hand == 3 and env.chips == [40 - 10, 1960 - 20]


def test_short_all_in_is_allowed_below_the_minimum():
    env = Poker()
    env.reset(seed=0)
    env.chips = [25, 980]  # Player 0 has 35 in all (10 posted)
    assert env.raise_range(0) == ("raise", 15, 15)
    assert env.step("[Raise 15]") == (False, {}) and env.chips[0] == 0 and env.current_bet == 35
    assert env.raise_range(1) is None and env.legal_actions() == ["[Fold]", "[Call]"]


def test_short_blind_is_all_in_and_the_board_runs_out():
    env = Poker(num_hands=3)
    env.reset(seed=0)
    env.chips, env.contrib, env.bets, env.hand, env.button = [1995, 5], [0, 0], [0, 0], 2, 1
    env._start_hand()  # Player 1 (small blind) has only 5 chips: nobody can act, the hand is dealt out
    log = env.observation_of(0)
    assert "posts the small blind (5)" in log and "Player 0's uncalled 15 chips are returned." in log
    assert "board is dealt out" in log and sum(env.chips) + env.pot == 2000
    assert not env.done or 0 in env.chips or env.hand == env.num_hands  # short stacks may run out more hands


def test_showdown_split_and_kicker():
    def checked_down(hole, board):
        env = Poker(num_hands=1)
        env.reset(seed=0)
        env.hole, env.board = hole, board
        for action in ["[Call]"] + ["[Check]"] * 7:
            done, _ = env.step(action)
        assert done
        return env

    env = checked_down({0: ["2♣", "3♦"], 1: ["4♣", "5♦"]}, ["A♠", "K♠", "Q♠", "J♠", "10♠"])  # the board plays
    assert env.chips == [1000, 1000] and env.close() == {0: 0.0, 1: 0.0} and "split the pot of 40" in \
        env.observation_of(1)
    env = checked_down({0: ["A♣", "2♦"], 1: ["K♣", "Q♦"]}, ["A♠", "A♥", "7♦", "7♣", "3♠"])
    assert env.chips == [1020, 980] and outcome_of(env.close()) == "Player 0 won"  # aces full beats two pair
    env = checked_down({0: ["9♣", "2♦"], 1: ["10♣", "3♦"]}, ["A♠", "A♥", "K♦", "K♣", "5♠"])
    assert env.chips == [980, 1020] and env.close() == {0: -1.0, 1: 1.0}  # two pair, the kicker decides


def test_fold_next_hand_and_last_hand_endings():
    env = Poker(num_hands=2)
    env.reset(seed=1)
    flop = env.board[:3]
    env.step("[Fold]")
    assert env.chips == [990 - 20, 1010 - 10] and env.hand == 2 and env.button == 1 and env.current_player == 1
    hand1 = [env.observation_of(p).split("Hand 2 / 2")[0] for p in (0, 1)]
    assert not any(card in text for card in flop for text in hand1)  # a fold shows no unseen card
    done, info = env.step("[Fold]")  # 1000 chips each after the last hand: a draw
    assert done and env.close() == {0: 0.0, 1: 0.0} and "draw" in info["reason"]
    env = Poker(num_hands=1)
    env.reset(seed=1)
    done, info = env.step("[Raise 20]")
    done, info = env.step("[Fold]")
    assert done and env.close() == {0: 1.0, 1: -1.0} and "Player 0 wins" in info["reason"]


def test_invalid_move_allowance():
    env = Poker()
    env.reset(seed=2)
    done, info = env.step("[Check]")
    assert not done and info["invalid_move"] and env.current_player == 0
    done, info = env.step("[dance]")
    assert done and info["invalid_move"] and env.close() == {0: -1.0, 1: 0.0}
    assert outcome_of(env.close()) == "Player 1 won"


def test_hole_cards_are_private():
    env = Poker()
    env.reset(seed=3)
    hole0, hole1 = env.hole[0], env.hole[1]
    env.step("[Call]")
    obs0, obs1 = env.observation_of(0), env.observation_of(1)
    assert all(c in obs0 and c not in obs1 for c in hole0) and all(c in obs1 and c not in obs0 for c in hole1)
    assert "[Player 0] [Call]" in obs1  # actions are public, as in textarena


def test_equity_against_known_values():
    assert abs(equity(["A♠", "A♥"], [], samples=2000) - 0.852) < 0.03  # published all-in equity vs a random hand
    assert abs(equity(["7♣", "2♦"], [], samples=2000) - 0.346) < 0.03
    assert equity(["A♠", "K♠"], ["Q♠", "J♠", "10♠", "2♦", "3♣"], samples=50) == 1.0
    assert equity(["2♣", "3♦"], ["A♠", "K♠", "Q♠", "J♠", "10♠"], samples=50) == 0.5  # the board plays: a split
    assert equity(["9♦", "8♦"], ["7♦", "6♦", "2♣"]) == equity(["9♦", "8♦"], ["7♦", "6♦", "2♣"])  # seeded


def heuristic_vs_random(env: Poker, seat: int, rng: np.random.Generator) -> dict:
    return {seat: lambda obs: poker_move(env, env.current_player),
            1 - seat: lambda obs: str(rng.choice(env.legal_actions()))}


def test_heuristic_beats_random_through_the_loop():
    record, chips_won = Counter(), 0
    for seed in range(20):
        env = Poker()
        seat = seed % 2  # both seats
        moves, rewards = play_game(env, heuristic_vs_random(env, seat, np.random.default_rng(seed)), seed=seed)
        assert all(m["action"] in m["observation"].rsplit("Available Moves:", 1)[1] for m in moves
                   if m["player"] != seat)
        record[rewards[seat]] += 1
        chips_won += env.chips[seat] - env.starting_chips
    assert record[1.0] >= 13 and chips_won > 0, (record, chips_won)  # measured: 16-0-4, +11,230 chips


def test_offline_scripted_backend_reads_the_available_moves():
    agent = RoleAgent(scripted_move_backend(), "system", GenConfig(), "learnarena.player0")
    env = Poker(num_hands=3)
    moves, rewards = play_game(env, {0: agent, 1: lambda obs: poker_move(env, 1)}, seed=4)
    assert moves[0]["action"] == "[Fold]" and outcome_of(rewards) in ("Player 0 won", "Player 1 won", "Draw")


def conserving_random_player(env: Poker, rng: np.random.Generator):
    def player(observation: str) -> str:
        assert env.chips[0] + env.chips[1] + env.pot == 2 * env.starting_chips  # chips are conserved
        assert env.current_bet == max(env.bets) and min(env.chips) >= 0 and not env.done
        return str(rng.choice(env.legal_actions()))
    return player


def test_random_games_end_by_the_rules():
    for seed in range(30):
        env = Poker()
        player = conserving_random_player(env, np.random.default_rng(seed))
        moves, rewards = play_game(env, {0: player, 1: player}, seed=seed)
        assert all(m["action"] in m["observation"].rsplit("Available Moves:", 1)[1] for m in moves)
        assert sum(env.chips) == 2 * env.starting_chips and env.turn == len(moves) <= env.max_turns
        assert env.hand == env.num_hands or 0 in env.chips
        c0, c1 = env.chips
        assert rewards == ({0: 0.0, 1: 0.0} if c0 == c1 else {0: 1.0, 1: -1.0} if c0 > c1 else {0: -1.0, 1: 1.0})
