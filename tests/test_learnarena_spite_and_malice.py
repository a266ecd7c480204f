"""Spite and Malice (textarena's SpiteAndMalice-v0 rules, re-implemented): the seeded deal, center piles with
wild Kings, the draw / play / discard turn, chains, the win and deadlock endings, the invalid-move allowance,
private hands, and the LLM-free players. Hand-built positions are the reference."""

import random
from collections import Counter

import numpy as np

from humanai_jax.methods.learnarena.games.spite_and_malice import (
    SpiteAndMalice,
    fits,
    new_deck,
    spite_and_malice_move,
)
from humanai_jax.methods.learnarena.loop import play_game


def fresh(seed=0):
    env = SpiteAndMalice()
    env.reset(seed=seed)
    return env


def all_cards(env):
    cards = list(env.deck) + env.completed + [c for pile in env.center for c in pile]
    for p in (0, 1):
        cards += env.payoff[p] + env.hands[p] + [c for pile in env.discards[p] for c in pile]
    return Counter(cards)


def test_seeded_deal_uses_no_global_rng():
    deck = new_deck()
    assert len(deck) == 96 and Counter(c[0] for c in deck) == {r: 8 for r in "A23456789JQK"}
    py_state, np_state = random.getstate(), np.random.get_state()[1].copy()
    a, b, c = fresh(3), fresh(3), fresh(4)
    assert random.getstate() == py_state and (np.random.get_state()[1] == np_state).all()
    assert (a.deck, a.payoff, a.hands) == (b.deck, b.payoff, b.hands) and a.payoff != c.payoff
    assert len(a.deck) == 46 and [len(a.payoff[p]) for p in (0, 1)] == [20, 20]
    assert [len(a.hands[p]) for p in (0, 1)] == [5, 5] and all_cards(a) == Counter(deck)
    d = SpiteAndMalice(seed=3)
    d.reset()  # no seed: the constructor's
    assert d.deck == a.deck


def test_center_piles_and_wild_kings_by_hand():
    assert fits("A♠", []) and fits("K♦", []) and not fits("2♠", [])
    run = ["A♠", "2♥", "3♦", "4♣", "K♠"]  # the King stands for 5
    assert fits("6♥", run) and not fits("5♥", run) and fits("K♣", run)
    assert fits("2♥", ["K♠"]) and not fits("A♥", ["K♠"])
    env = fresh()
    env.has_drawn[0] = True
    env.center[0] = ["A♠", "2♥", "3♦", "4♣", "5♠", "6♠", "7♠", "8♠", "9♠", "J♠"]
    env.hands[0] = ["Q♦", "K♥", "9♣", "9♦", "9♥"]
    env.step("[play Q♦ 0]")
    assert env.center[0] == [] and len(env.completed) == 11 and env.current_player == 0  # cleared at Queen
    env.center[1] = ["A♠", "2♥", "3♦", "4♣", "5♠", "6♠", "7♠", "8♠", "9♠", "J♠"]
    env.step("[play K♥ 1]")  # a King as the Queen clears the pile too
    assert env.center[1] == [] and len(env.completed) == 22


def test_legal_moves_by_hand():
    env = fresh()
    assert env.legal_actions() == ["[draw]"]
    env.has_drawn[0] = True
    env.center = [["A♠"], [], [], []]
    env.hands[0] = ["2♥", "5♦"]
    env.payoff[0][-1] = "A♣"
    env.discards[0] = [["3♣"], [], [], []]
    plays = ["[play 2♥ 0]", "[play A♣ 1]", "[play A♣ 2]", "[play A♣ 3]"]
    discards = [f"[discard {c} {i}]" for i in range(4) for c in ("2♥", "5♦")]
    assert env.legal_actions() == plays + discards
    env.discards[0] = [["3♣", "A♥"], [], [], []]  # only a discard top plays
    assert "[play A♥ 1]" in env.legal_actions() and "[play 3♣ 0]" not in env.legal_actions()


def test_turn_draw_play_discard_and_refill():
    env = fresh()
    assert env.step("[play A♠ 0]")[1]["invalid_move"] and env.current_player == 0  # must draw first
    env.hands[0] = env.hands[0][:2]
    before = len(env.deck)
    assert env.step("[draw]") == (False, {}) and len(env.hands[0]) == 5 and len(env.deck) == before - 3
    assert env.step("[draw]")[1]["reason"].startswith("Draw is allowed exactly once")
    env.payoff[0][-1] = "A♠"
    n_payoff = len(env.payoff[0])
    env.step("I play my payoff card: [play A♠ 0]")
    assert env.center[0] == ["A♠"] and len(env.payoff[0]) == n_payoff - 1 and env.current_player == 0
    env.hands[0] = ["2♦"]
    before = len(env.deck)
    env.step("[play 2♦ 0]")  # the emptied hand is refilled and the turn goes on
    assert len(env.hands[0]) == 5 and len(env.deck) == before - 5 and env.current_player == 0
    card = env.hands[0][0]
    assert env.step(f"[discard {card} 2] [play A♥ 1]") == (False, {})  # commands after a discard are ignored
    assert env.discards[0][2] == [card] and env.current_player == 1 and not env.has_drawn[0]


def test_chain_is_atomic():
    env = fresh()
    env.step(f"[draw] [discard {env.hands[0][0]} 0]")
    assert env.current_player == 1
    env.hands[1] = ["A♥", "7♣", "9♦", "9♥", "9♠"]
    saved = (list(env.deck), list(env.hands[1]), [list(p) for p in env.center])
    done, info = env.step("[draw] [play A♥ 1] [play 7♣ 1]")
    assert not done and "7♣" in info["reason"] and "needs 2" in info["reason"]
    assert (env.deck, env.hands[1], env.center) == saved and not env.has_drawn[1]
    done, info = env.step("[draw] [play A♥ 1] [discard 7♣ 3]")
    assert info == {} and env.center[1] == ["A♥"] and env.discards[1][3] == ["7♣"] and env.current_player == 0


def test_win_by_emptying_payoff():
    env = fresh()
    env.payoff[0] = ["A♠"]
    done, info = env.step("[draw] [play A♠ 0] [discard 9♥ 0]")
    assert done and env.close() == {0: 1.0, 1: -1.0} and "finished their payoff pile" in info["reason"]


def deadlock_position(payoff1: int):
    env = fresh()
    env.deck = []
    env.hands = {0: ["5♠"], 1: []}
    env.payoff = {0: ["9♠", "9♥"], 1: ["9♦"] * payoff1}
    env.discards = {0: [[], [], [], []], 1: [[], [], [], []]}
    env.center = [[], [], [], []]
    return env


def test_deadlock_fewer_payoff_cards_wins_or_draw():
    env = deadlock_position(3)
    done, info = env.step("[draw] [discard 5♠ 1]")  # nobody can play a 9 or a 5 on empty piles; no hands
    assert done and env.close() == {0: 1.0, 1: -1.0} and info["reason"].startswith("Deadlock")
    env = deadlock_position(1)
    assert env.step("[draw] [discard 5♠ 1]")[0] and env.close() == {0: -1.0, 1: 1.0}
    env = deadlock_position(2)
    assert env.step("[draw] [discard 5♠ 1]")[0] and env.close() == {0: 0.0, 1: 0.0}


def test_turn_ends_automatically_without_cards_or_plays():
    env = deadlock_position(3)
    env.hands = {0: [], 1: ["5♥"]}
    done, info = env.step("[draw]")
    assert not done and env.current_player == 1 and "turn ends" in env.observation_of(0)
    env.hands[0] = []
    env.discards[0][0] = ["K♣"]  # a King on a discard pile is a play: the turn does not end
    env.current_player, env.has_drawn = 0, {0: False, 1: False}
    env.step("[draw]")
    assert env.current_player == 0 and env.legal_actions() == [f"[play K♣ {i}]" for i in range(4)]


def test_invalid_move_allowance_and_formats():
    env = fresh()
    done, info = env.step("I will draw now")
    assert not done and info["invalid_move"] and "square brackets" in info["reason"] and env.current_player == 0
    done, info = env.step("[draw] [play 10♠ 0]")  # the second invalid move of the turn loses
    assert done and "no 10s" in info["reason"] and env.close() == {0: -1.0, 1: 0.0}
    env = fresh()
    assert "no 10s" in env.step("[play 10♠ 0]")[1]["reason"]
    assert env.step("[draw]") == (False, {})  # a valid move resets the count
    assert "There is no pile 7" in env.step("[play A♠ 7]")[1]["reason"] and not env.done
    done, info = env.step("[play]")
    assert done and "needs a card and a pile" in info["reason"] and env.close() == {0: -1.0, 1: 0.0}


def test_hands_and_actions_are_private():
    env = fresh()
    hand0 = str(env.hands[0])
    env.step(f"Thinking aloud... [draw] [discard {env.hands[0][0]} 0]")
    obs1 = env.observation_of(1)
    assert hand0 not in obs1 and "Hand: 4 hidden card(s)" in obs1 and "Thinking aloud" not in obs1
    assert "Player 0 discarded" in obs1 and f"Hand: {env.hands[1]}" in obs1 and "Thinking aloud" in env.observation_of(0)
    assert env.get_observation()[1].rstrip().endswith("Available Moves: [draw]")


def test_heuristic_plans_to_the_payoff_card_and_beats_random():
    env = fresh()
    env.has_drawn[0] = True
    env.center = [["A♠"], ["A♦", "2♦"], [], []]
    env.payoff[0][-1] = "4♦"
    env.hands[0] = ["2♥", "3♣", "9♠", "J♦", "K♣"]
    assert spite_and_malice_move(env, 0) == "[play 3♣ 1]"  # pile 1 reaches the 4 with one card and no King
    env.payoff[0][-1] = "A♥"
    assert spite_and_malice_move(env, 0) == "[play A♥ 2]"
    record = Counter()
    for seed in range(20):
        for seat in (0, 1):
            env = SpiteAndMalice(seed=seed)
            rng = np.random.default_rng(seed)
            heuristic = lambda obs, env=env: spite_and_malice_move(env, env.current_player)  # noqa: E731
            rand = lambda obs, env=env, rng=rng: str(rng.choice(env.legal_actions()))  # noqa: E731
            moves, rewards = play_game(env, {seat: heuristic, 1 - seat: rand})
            assert all(m["action"] in m["observation"].rsplit("Available Moves: ", 1)[1] for m in moves)
            record[{1.0: "win", 0.0: "draw", -1.0: "loss"}[rewards[seat]]] += 1
    assert record["win"] >= 34 and record["loss"] == 0, record  # measured: 37 wins, 3 draws, 0 losses


def test_random_games_end_by_the_rules():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        env = fresh(seed)
        steps = 0
        while not env.done:
            legal = env.legal_actions()
            assert legal, "a player to move always has a draw, a play or a discard"
            env.step(str(rng.choice(legal)))
            steps += 1
            assert all_cards(env) == Counter(new_deck()), "cards are neither created nor lost"
        assert steps <= 500
        rewards, sizes = env.close(), [len(env.payoff[p]) for p in (0, 1)]
        if 0 in sizes:
            assert rewards[sizes.index(0)] == 1.0
        else:
            assert env._deadlocked()
            assert rewards == ({0: 0.0, 1: 0.0} if sizes[0] == sizes[1] else
                               {0: 1.0, 1: -1.0} if sizes[0] < sizes[1] else {0: -1.0, 1: 1.0})
