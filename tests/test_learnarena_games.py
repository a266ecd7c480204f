"""LearnArena native games: legal moves, the invalid-move allowance, terminal states and rewards, checked
by hand and against an independent brute-force line check over random games; LLM-free players (perfect
TicTacToe minimax never loses and beats a random player; the Connect Four heuristic beats random)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from humanai_jax.methods.learnarena import games
from humanai_jax.methods.learnarena.loop import outcome_of, play_game
from humanai_jax.methods.learnarena.players import make_player, tictactoe_best_moves


def _play(env, actions):
    out = None
    for a in actions:
        out = env.step(a)
    return out


# ------------------------------------------------------------------------------------------ TicTacToe
def test_tictactoe_prompt_board_and_legal_moves():
    env = games.make("TicTacToe-v0")
    env.reset()
    pid, obs = env.get_observation()
    assert pid == 0 and obs.startswith("\n[GAME] You are Player 0 in Tic Tac Toe. Your mark is 'O'")
    assert "'[1 1]' places your mark in the centre" in obs
    assert len(env.legal_actions()) == 9
    assert env.step("I'll take the centre [1 1] please") == (False, {})
    assert env.board[1][1] == "O" and "[1, 1]" not in env.legal_actions() and len(env.legal_actions()) == 8
    pid, obs = env.get_observation()
    assert pid == 1 and "You are Player 1 in Tic Tac Toe. Your mark is 'X'" in obs
    assert "\n[Player 0] I'll take the centre [1 1] please" in obs
    assert "   |   |   \n---+---+---\n   | O |   \n---+---+---\n   |   |   " in obs
    env.step("[0,2]")
    assert env.board[0][2] == "X"
    assert "[GAME] You are Player 1" not in env.get_observation()[1]  # each player sees only its own prompt


@pytest.mark.parametrize("moves, winner", [
    (["[0 0]", "[1 0]", "[0 1]", "[1 1]", "[0 2]"], 0),               # row
    (["[0 0]", "[0 1]", "[1 0]", "[1 1]", "[2 2]", "[2 1]"], 1),      # column, X
    (["[0 0]", "[0 1]", "[1 1]", "[0 2]", "[2 2]"], 0),               # diagonal
    (["[0 0]", "[0 2]", "[0 1]", "[1 1]", "[2 2]", "[2 0]"], 1),      # anti-diagonal
])
def test_tictactoe_wins(moves, winner):
    env = games.make("TicTacToe-v0")
    env.reset()
    for a in moves[:-1]:
        assert env.step(a)[0] is False
    done, info = env.step(moves[-1])
    assert done and info["reason"] == f"Player {winner} has won!"
    assert env.close() == {winner: 1.0, 1 - winner: -1.0}
    with pytest.raises(RuntimeError, match="after the game ended"):
        env.step("[2, 2]")


def test_tictactoe_draw():
    env = games.make("TicTacToe-v0")
    env.reset()
    done, info = _play(env, ["[0 0]", "[0 1]", "[0 2]", "[1 1]", "[1 0]", "[1 2]", "[2 1]", "[2 0]", "[2 2]"])
    assert done and info["reason"] == "The game is a draw!" and env.close() == {0: 0.0, 1: 0.0}


@pytest.mark.parametrize("bad", ["no move here", "[3, 0]", "[1, 1]"])
def test_tictactoe_invalid_move_allowance(bad):
    env = games.make("TicTacToe-v0")
    env.reset()
    env.step("[1, 1]")
    with pytest.raises(RuntimeError, match="before the game ended"):
        env.close()
    done, info = env.step(bad)  # first invalid move: resubmit, same player
    assert not done and info["invalid_move"] and env.current_player == 1
    assert "Player 1 attempted an invalid move" in env.get_observation()[1]
    assert env.step("[0, 0]") == (False, {})  # a valid move resets the allowance
    env.step("[2, 2]")
    assert env.step(bad)[0] is False
    done, info = env.step(bad)  # second invalid move in the same turn loses
    assert done and env.close() == {1: -1.0, 0: 0.0}
    assert outcome_of(env.close()) == "Player 0 won"


# ------------------------------------------------------------------------------------------ Connect Four
def test_connect_four_gravity_full_column_and_wins():
    env = games.make("ConnectFour-v0")
    env.reset()
    for _ in range(3):
        env.step("[3]")  # X
        env.step("[4]")  # O
    assert [env.board[r][3] for r in range(6)] == ["", "", "", "X", "X", "X"]
    done, info = env.step("[col 3]")  # vertical four for Player 0
    assert done and env.close() == {0: 1.0, 1: -1.0}

    env.reset()
    for a in ["[0]", "[0]"] * 3:
        env.step(a)
    assert env.legal_actions() == [f"[{c}]" for c in range(1, 7)]  # column 0 is full
    env.step("[1]")
    assert env.step("[0]")[1]["invalid_move"]  # column 0 is full
    assert env.step("[9]")[1]["invalid_move"] is True
    assert env.done and env.close() == {1: -1.0, 0: 0.0}


def test_connect_four_diagonal_win():
    env = games.make("ConnectFour-v0")
    env.reset()
    # X builds the rising diagonal (5,0) (4,1) (3,2) (2,3)
    done, _ = _play(env, ["[0]", "[1]", "[1]", "[2]", "[2]", "[3]", "[2]", "[3]", "[3]", "[6]", "[3]"])
    assert done and env.close() == {0: 1.0, 1: -1.0}


def _brute_winner(board, k):
    """Independent check: the mark filling any k-window along rows, columns or diagonals."""
    rows, cols = len(board), len(board[0])
    for r, c in itertools.product(range(rows), range(cols)):
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            cells = [(r + i * dr, c + i * dc) for i in range(k)]
            if all(0 <= rr < rows and 0 <= cc < cols for rr, cc in cells):
                marks = {board[rr][cc] for rr, cc in cells}
                if len(marks) == 1 and "" not in marks:
                    return marks.pop()
    return None


@pytest.mark.parametrize("game, k", [("TicTacToe-v0", 3), ("ConnectFour-v0", 4)])
def test_random_games_end_exactly_when_brute_force_says(game, k):
    rng = np.random.default_rng(0)
    marks = {"TicTacToe-v0": {0: "O", 1: "X"}, "ConnectFour-v0": {0: "X", 1: "O"}}[game]
    for _ in range(150):
        env = games.make(game)
        env.reset()
        done = False
        while not done:
            assert _brute_winner(env.board, k) is None
            mover = env.current_player
            done, _ = env.step(str(rng.choice(env.legal_actions())))
        rewards = env.close()
        w = _brute_winner(env.board, k)
        if w is None:
            assert rewards == {0: 0.0, 1: 0.0} and not env.legal_actions()
        else:
            assert w == marks[mover] and rewards[mover] == 1.0 and rewards[1 - mover] == -1.0


def test_unknown_game():
    with pytest.raises(ValueError, match="ConnectFour-v0"):
        games.make("Chess-v0")


# ------------------------------------------------------------------------------------------ players
def test_minimax_takes_wins_and_blocks():
    b = [["O", "O", ""], ["X", "X", ""], ["", "", ""]]
    assert tictactoe_best_moves(b, 0) == [(0, 2)]  # O wins now
    b = [["O", "", ""], ["X", "X", ""], ["", "", "O"]]
    assert tictactoe_best_moves(b, 0) == [(1, 2)]  # O must block X


def _tally(game, kinds, n, seed=0):
    out = {"p0": 0, "p1": 0, "draw": 0}
    for s in range(n):
        env = games.make(game)
        rng = np.random.default_rng(seed + s)
        _, rewards = play_game(env, {0: make_player(kinds[0], env, rng), 1: make_player(kinds[1], env, rng)})
        out[{"Player 0 won": "p0", "Player 1 won": "p1", "Draw": "draw"}[outcome_of(rewards)]] += 1
    return out


def test_perfect_tictactoe_never_loses_and_beats_random():
    assert _tally("TicTacToe-v0", ("heuristic", "heuristic"), 2) == {"p0": 0, "p1": 0, "draw": 2}
    as_first = _tally("TicTacToe-v0", ("heuristic", "random"), 30)
    as_second = _tally("TicTacToe-v0", ("random", "heuristic"), 30)
    assert as_first["p1"] == 0 and as_second["p0"] == 0
    assert as_first["p0"] >= 27 and as_second["p1"] >= 20


def test_connect_four_heuristic_beats_random():
    t = _tally("ConnectFour-v0", ("random", "heuristic"), 20)
    assert t["p1"] >= 18


# ------------------------------------------------------------------------------------------ Ultimate TicTacToe
def test_ultimate_forced_board_and_wrong_board():
    env = games.make("UltimateTicTacToe-v0")
    env.reset()
    assert len(env.legal_actions()) == 81 and "Player 0 in Ultimate Tic Tac Toe. Your mark is 'X'" in \
        env.get_observation()[1]
    env.step("[4, 0, 0]")  # X in the centre board's corner -> O must play on board 0
    assert env.next_board == 0 and all(a.startswith("[0,") for a in env.legal_actions())
    assert env.step("[5, 1, 1]")[1]["invalid_move"]  # wrong board
    assert env.step("[0, 2, 2]") == (False, {})  # O's bottom-right cell sends X to board 8
    assert env.next_board == 8 and len(env.legal_actions()) == 9
    assert env.boards[4][0][0] == "X" and env.boards[0][2][2] == "O"


def test_ultimate_micro_board_won_sends_to_free_choice():
    env = games.make("UltimateTicTacToe-v0")
    env.reset()
    env.boards[0] = [["X", "X", ""], ["O", "O", ""], ["", "", ""]]
    env.next_board = 0
    assert env.step("[0, 0, 2]") == (False, {})  # X completes board 0's top row, target board 2 is open
    assert env.macro[0][0] == "X" and env.next_board == 2
    env.boards[2] = [["O", "O", ""], ["X", "", ""], ["X", "", ""]]
    assert env.step("[2, 0, 2]") == (False, {})  # O wins board 2 and would be sent to board 2: free choice
    assert env.macro[0][2] == "O" and env.next_board is None
    assert "[0, 1, 2]" not in env.legal_actions() and "[2, 1, 1]" not in env.legal_actions()


def test_ultimate_macro_win():
    env = games.make("UltimateTicTacToe-v0")
    env.reset()
    env.macro = [["X", "X", ""], ["", "", ""], ["", "", ""]]
    env.boards[2] = [["X", "X", ""], ["", "", ""], ["", "", ""]]
    env.next_board = 2
    done, info = env.step("[2, 0, 2]")
    assert done and info["reason"] == "Player 0 has won!" and env.close() == {0: 1.0, 1: -1.0}


def _brute_ultimate(env):
    micro = [[(_brute_winner(env.boards[3 * r + c], 3) or "") for c in range(3)] for r in range(3)]
    return micro, _brute_winner(micro, 3)


def test_ultimate_random_games_against_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(40):
        env = games.make("UltimateTicTacToe-v0")
        env.reset()
        done = False
        while not done:
            micro, winner = _brute_ultimate(env)
            assert winner is None
            assert all(micro[r][c] in ("", env.macro[r][c]) for r in range(3) for c in range(3))
            mover = env.current_player
            done, _ = env.step(str(rng.choice(env.legal_actions())))
        rewards = env.close()
        _, winner = _brute_ultimate(env)
        if winner is None:
            assert rewards == {0: 0.0, 1: 0.0} and not env.legal_actions()
        else:
            assert winner == {0: "X", 1: "O"}[mover] and rewards[mover] == 1.0


def test_ultimate_heuristic_beats_random():
    t = _tally("UltimateTicTacToe-v0", ("heuristic", "random"), 12)
    assert t["p0"] >= 9
