"""Checkers (textarena 0.5.6's simplified rules): legal moves, captures, kinging, terminal states, scoring,
the invalid-move allowance, and the LLM-free players. Hand-built positions are the reference."""

import numpy as np

from humanai_jax.methods.learnarena.games import make
from humanai_jax.methods.learnarena.games.checkers import checkers_moves, initial_board
from humanai_jax.methods.learnarena.players import checkers_move, make_player


def empty():
    return [["." for _ in range(8)] for _ in range(8)]


def test_opening_moves_by_hand():
    board = initial_board()
    assert sum(x == "r" for row in board for x in row) == 12 and sum(x == "b" for row in board for x in row) == 12
    assert checkers_moves(board, 0) == [(5, 0, 4, 1), (5, 2, 4, 1), (5, 2, 4, 3), (5, 4, 4, 3), (5, 4, 4, 5),
                                        (5, 6, 4, 5), (5, 6, 4, 7)]
    assert checkers_moves(board, 1) == [(2, 1, 3, 0), (2, 1, 3, 2), (2, 3, 3, 2), (2, 3, 3, 4), (2, 5, 3, 4),
                                        (2, 5, 3, 6), (2, 7, 3, 6)]


def test_capture_king_and_backward_moves():
    b = empty()
    b[4][3], b[3][4], b[1][6] = "r", "b", "b"
    assert (4, 3, 2, 5) in checkers_moves(b, 0) and (4, 3, 5, 2) not in checkers_moves(b, 0)  # men go forward only
    b[0][1] = "R"
    assert {(0, 1, 1, 0), (0, 1, 1, 2)} <= set(checkers_moves(b, 0))  # a king moves backwards (down for Red)
    env = make("Checkers-v0")
    env.reset()
    env.board = b
    done, info = env.step("I jump: [4 3 2 5]")
    assert not done and info == {} and env.board[3][4] == "." and env.board[2][5] == "r"
    env.board = empty()
    env.board[1][2], env.board[7][0], env.board[6][1] = "r", "b", "b"
    env.current_player = 0
    env.step("[1 2 0 3]")
    assert env.board[0][3] == "R"  # crowned on the far row


def test_wins_when_opponent_has_no_pieces_or_no_moves():
    env = make("Checkers-v0")
    env.reset()
    env.board = empty()
    env.board[4][3], env.board[3][4] = "r", "b"
    done, _ = env.step("[4 3 2 5]")
    assert done and env.close() == {0: 1.0, 1: -1.0}
    env.reset()
    env.board = empty()
    env.board[7][0], env.board[6][1], env.board[4][3], env.board[5][0] = "b", "r", "r", "r"
    # Black's man on the last row cannot move forward: after Red moves, Black is stuck and loses.
    done, _ = env.step("[4 3 3 2]")
    assert done and env.close() == {0: 1.0, 1: -1.0} and "Player 0" in env.reason


def test_draw_after_max_turns_and_invalid_move_allowance():
    env = make("Checkers-v0")
    env.reset()
    env.board = empty()
    env.board[7][0], env.board[0][7] = "R", "B"  # two kings shuffling never meet
    shuffle = {0: ["[7 0 6 1]", "[6 1 7 0]"], 1: ["[0 7 1 6]", "[1 6 0 7]"]}
    for t in range(50):
        assert not env.done
        env.step(shuffle[env.current_player][(t // 2) % 2])
    assert env.done and env.close() == {0: 0.0, 1: 0.0}
    env.reset()
    assert env.step("[5 0 3 2]") == (False, {"reason": "Move [5 0 3 2] is illegal.", "invalid_move": True})
    assert env.current_player == 0
    done, info = env.step("no move")
    assert done and info["invalid_move"] and env.close() == {0: -1.0, 1: 0.0}


def test_heuristic_prefers_capture_and_safety_and_beats_random():
    b = empty()
    b[5][2], b[4][3], b[5][6] = "r", "b", "r"
    assert checkers_move(b, 0) == (5, 2, 3, 4)  # takes the last black piece
    wins = losses = 0
    for seed in range(20):
        env = make("Checkers-v0")
        env.reset()
        players = {0: make_player("heuristic", env), 1: make_player("random", env, np.random.default_rng(seed))}
        while not env.done:
            pid, obs = env.get_observation()
            assert players[pid](obs) in env.legal_actions()
            env.step(players[pid](obs))
        wins, losses = wins + (env.close()[0] == 1), losses + (env.close()[0] == -1)
    assert wins >= 8 and losses == 0  # many games hit the 50-move draw


def test_random_games_end_by_the_rules():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        env = make("Checkers-v0")
        env.reset()
        pieces = 24
        while not env.done:
            legal = env.legal_actions()
            assert legal, "a side to move with no legal move must already have lost"
            env.step(str(rng.choice(legal)))
            now = sum(x != "." for row in env.board for x in row)
            assert now in (pieces, pieces - 1)  # a move captures at most one piece
            pieces = now
        rewards = env.close()
        if rewards[0] == 0:
            assert env.turn == 50 and rewards == {0: 0.0, 1: 0.0}
        else:
            winner = 0 if rewards[0] == 1 else 1
            assert rewards[1 - winner] == -1 and not checkers_moves(env.board, 1 - winner)
