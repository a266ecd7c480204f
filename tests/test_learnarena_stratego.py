"""Stratego (textarena's Stratego-v0 rules, re-implemented): the seeded setup, legal moves by hand (steps, scout
runs, lakes, bombs and flags) and against a brute-force filter of every (source, destination) pair, battles
(spy/marshal, miner/bomb, ties), the two-square rule, every ending (flag, no movable piece, no legal move, both
immobile, turn limit, invalid-move allowance), hidden information in the observations, rewards as
`loop.play_game` reads them, the heuristic against random, and 30 random games checked against the rules."""

import numpy as np

from humanai_jax.agents import GenConfig
from humanai_jax.methods.learnarena.agents import RoleAgent
from humanai_jax.methods.learnarena.games.stratego import (
    LAKES,
    PIECE_COUNTS,
    SIZE,
    Piece,
    Stratego,
    battle,
    has_movable_piece,
    move_error,
    parse_move,
    public_view,
    stratego_move,
    stratego_moves,
)
from humanai_jax.methods.learnarena.loop import outcome_of, play_game
from humanai_jax.methods.learnarena.players import scripted_move_backend


def sq(name: str) -> tuple[int, int]:
    return ord(name[0]) - ord("A"), int(name[1])


def blank(pieces: dict, seed: int = 0) -> Stratego:
    """An env (Player 0 to move) whose board holds only `pieces` {"D4": (owner, rank)}."""
    env = Stratego(seed=seed)
    env.reset()
    env.board = [[None] * SIZE for _ in range(SIZE)]
    for i, (name, (owner, rank)) in enumerate(pieces.items()):
        r, c = sq(name)
        env.board[r][c] = Piece(owner, rank, 100 * owner + i)
    return env


def names(moves) -> set[str]:
    return {f"{chr(65 + a)}{b} {chr(65 + c)}{d}" for (a, b), (c, d) in moves}


def test_seeded_setup_follows_textarena():
    env = Stratego()
    env.reset(seed=7)
    board = env.board
    for pid, rows, back, front in ((0, range(0, 4), (0, 1), (2, 3)), (1, range(6, 10), (8, 9), (6, 7))):
        mine = {(r, c): p for r in range(SIZE) for c in range(SIZE) if (p := board[r][c]) and p.owner == pid}
        assert set(mine) == {(r, c) for r in rows for c in range(SIZE)}  # 40 pieces fill the four rows
        assert {rank: sum(p.rank == rank for p in mine.values()) for rank in PIECE_COUNTS} == PIECE_COUNTS
        (flag,) = [s for s, p in mine.items() if p.rank == "Flag"]
        assert flag[0] in back
        around = [(flag[0] + dr, flag[1] + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))]
        around = [s for s in around if 0 <= s[0] < SIZE and 0 <= s[1] < SIZE]
        assert all(mine[s].rank == "Bomb" for s in around)  # at most 4 neighbours < 6 bombs
        assert all(s in around or s[0] in front for s, p in mine.items() if p.rank == "Bomb")
    assert all(board[r][c] is None for r, c in LAKES) and all(board[r][c] is None for r in (4, 5) for c in range(SIZE))
    other = Stratego(seed=7)
    other.reset()
    again = [[p and p.rank for p in row] for row in other.board]
    assert again == [[p and p.rank for p in row] for row in board]  # the constructor seed, same setup
    other.reset(seed=8)
    assert [[p and p.rank for p in row] for row in other.board] != again


def test_legal_moves_by_hand():
    env = blank({"D2": (0, "Scout"), "D0": (0, "Miner"), "C0": (0, "Bomb"), "A0": (0, "Flag"), "D5": (0, "Marshal"),
                 "D7": (1, "Sergeant"), "G2": (1, "Flag"), "E5": (0, "Spy")})
    moves = names(stratego_moves(env.board, 0))
    # The scout: up through empty squares to A2, left to D1 (the miner blocks D0), right until it attacks D7;
    # down is the lake E2. Bombs and the flag never move.
    scout = {"D2 C2", "D2 B2", "D2 A2", "D2 D1", "D2 D3", "D2 D4"}
    assert moves == scout | {"D0 D1", "D0 E0", "D5 C5", "D5 D4", "D5 D6", "E5 F5", "E5 E4"}
    env.board[3][5] = None  # without the marshal the scout runs on and attacks D7 (and stops there)
    assert {"D2 D5", "D2 D6", "D2 D7"} <= names(stratego_moves(env.board, 0))
    assert "D2 D8" not in names(stratego_moves(env.board, 0))
    assert names(stratego_moves(env.board, 1)) == {"D7 C7", "D7 D6", "D7 D8"}  # E7 is a lake; G2 is the flag
    assert env.legal_actions()[:4] == ["[D0 E0]", "[D0 D1]", "[D2 C2]", "[D2 B2]"]  # by source, up-down-left-right


def test_move_errors_match_the_generator_by_brute_force():
    env = Stratego(seed=3)
    env.reset()
    rng = np.random.default_rng(3)
    for _ in range(60):  # into the middlegame
        env.step(str(rng.choice(env.legal_actions())))
    for pid in (0, 1):
        every = {((a, b), (c, d)) for a in range(SIZE) for b in range(SIZE) for c in range(SIZE) for d in range(SIZE)}
        legal = {m for m in every if move_error(env.board, pid, *m, env.last_moved, env.history) is None}
        assert legal == set(stratego_moves(env.board, pid, env.last_moved, env.history)) and legal


def test_move_error_reasons():
    env = blank({"D2": (0, "Scout"), "D4": (0, "Miner"), "C2": (0, "Bomb"), "G3": (1, "Scout"), "D1": (1, "Spy")})
    b = env.board
    assert move_error(b, 0, sq("C2"), sq("B2")) == "Player 0 cannot move a bomb or flag."
    assert move_error(b, 0, sq("G3"), sq("F3")) == "Player 0 must move one of their own pieces."
    assert move_error(b, 0, sq("E2"), sq("E1")) == "Player 0 must move one of their own pieces."  # a lake square
    assert move_error(b, 0, sq("D2"), sq("D5")) == "Player 0 cannot move a scout through other pieces."
    assert move_error(b, 0, sq("D2"), sq("F2")) == "Player 0 cannot move into the lake."
    assert move_error(b, 0, sq("D2"), sq("E3")) == "Player 0 cannot move a scout diagonally."
    assert move_error(b, 0, sq("D4"), sq("F4")).startswith("Pieces move one square")
    assert move_error(b, 0, sq("D2"), sq("C2")) == "Player 0 cannot move onto their own piece."
    assert move_error(b, 0, sq("D2"), sq("D1")) is None  # attack


def test_parse_accepts_both_textarena_spellings():
    assert parse_move("I advance: [d0 E0] to probe.") == ((3, 0), (4, 0))
    assert parse_move("  D0 E0 ") == ((3, 0), (4, 0))  # the current bare form, as the whole reply
    assert parse_move("move D0 E0 now") is None and parse_move("[K0 A1]") is None


def test_battles_and_their_messages():
    assert battle("Spy", "Marshal") == "win" and battle("Marshal", "Spy") == "win"
    assert battle("Spy", "Scout") == "lose" and battle("Miner", "Bomb") == "win" and battle("Marshal", "Bomb") == "lose"
    assert battle("Major", "Major") == "tie" and battle("Scout", "Flag") == "win"
    assert battle("Captain", "General") == "lose" and battle("General", "Captain") == "win"
    env = blank({"D0": (0, "Spy"), "E0": (1, "Marshal"), "D9": (0, "Miner"), "E9": (1, "Bomb"), "D5": (0, "Major"),
                 "E5": (1, "Major"), "A0": (0, "Flag"), "J0": (1, "Flag"), "J5": (1, "Scout"), "H5": (1, "Scout"),
                 "J9": (1, "Scout")})
    env.step("[D0 E0]")
    assert env.board[4][0].rank == "Spy" and env.board[3][0] is None
    theirs = ("Player 0 has moved a piece from D0 to E0. The attacking piece was Spy and the destination piece was "
              "Marshal. As the attacker is a spy and the destination is a marshal, you lost the battle.")
    assert theirs in env.observation_of(1) and "you won the battle" in env.observation_of(0)
    assert env.board[4][0].revealed and env.removed[1] == ["Marshal"]
    env.step("[J5 I5]")
    env.step("[D9 E9]")  # the miner defuses the bomb and takes the square
    assert env.board[4][9].rank == "Miner" and "As miners can defuse bombs" in env.observation_of(1)
    env.step("[I5 J5]")
    env.step("[D5 E5]")  # equal ranks: both go
    assert env.board[3][5] is None and env.board[4][5] is None
    assert env.removed == {0: ["Major"], 1: ["Marshal", "Bomb", "Major"]}
    env.step("[H5 E5]")  # a scout run over G5 and F5
    assert env.board[4][5].rank == "Scout" and env.board[7][5] is None
    env.step("[E0 F0]")
    env.step("[J9 E9]")  # a scout attacks from afar and loses to the miner (3 > 2)
    assert env.board[4][9].rank == "Miner" and env.board[9][9] is None and env.removed[1][-1] == "Scout"
    assert "As the attacker is a lower rank than the destination, you won the battle." in env.observation_of(0)
    assert not env.done


def test_two_square_rule():
    env = blank({"D0": (0, "Captain"), "D9": (0, "Sergeant"), "A0": (0, "Flag"), "G0": (1, "Captain"),
                 "G9": (1, "Sergeant"), "J9": (1, "Flag")})
    for a, b in (("[D0 E0]", "[G0 F0]"), ("[E0 D0]", "[F0 G0]"), ("[D0 E0]", "[G0 F0]")):
        assert env.step(a) == (False, {}) and env.step(b) == (False, {})
    done, info = env.step("[E0 D0]")  # a fourth move between D0 and E0 in a row
    assert not done and info == {"reason": "This move violates Stratego's two-square repetition rule.",
                                 "invalid_move": True}
    assert "[E0 D0]" not in env.legal_actions() and "[E0 E1]" in env.legal_actions()
    env.step("[D9 E9]")  # another of Player 0's pieces moves: the captain's count starts again...
    assert env.step("[F0 G0]")[1]["invalid_move"]  # ...but Player 1's captain is still on its fourth move
    env.step("[G9 F9]")
    assert env.step("[E0 D0]") == (False, {})
    captain = env.board[3][0].ident
    assert env.history[captain] == [((4, 0), (3, 0))] and env.last_moved[0] == captain


def test_flag_capture_and_rewards():
    env = blank({"D0": (0, "Scout"), "A0": (0, "Flag"), "H0": (1, "Flag"), "J9": (1, "Miner")})
    done, info = env.step("I take it: [D0 H0]")
    assert done and info == {"reason": "Player 0 has captured the opponent's flag!"}
    assert env.close() == {0: 1.0, 1: -1.0} and outcome_of(env.close()) == "Player 0 won"
    assert "Player 0 has captured the opponent's flag!" in env.observation_of(1)


def test_no_movable_piece_no_legal_move_and_both_immobile():
    # The mover's last movable piece dies on a bomb: the mover loses.
    env = blank({"D0": (0, "General"), "E0": (1, "Bomb"), "A0": (0, "Flag"), "J0": (1, "Flag"), "J5": (1, "Scout")})
    done, info = env.step("[D0 E0]")
    assert done and env.close() == {0: -1.0, 1: 1.0} and "Player 0 has no movable pieces" in env.reason
    # The opponent's only movable piece is boxed in by its own bomb and flag and the board edge: it has no move.
    env = blank({"J0": (1, "Sergeant"), "I0": (1, "Bomb"), "J1": (1, "Flag"), "D5": (0, "Scout"), "A0": (0, "Flag")})
    done, _ = env.step("[D5 D6]")
    assert done and env.close() == {0: 1.0, 1: -1.0} and "Player 1 has no legal moves left" in env.reason
    # The last two movable pieces trade (equal ranks): neither side can move, a draw.
    env = blank({"D0": (0, "Major"), "E0": (1, "Major"), "A0": (0, "Flag"), "J0": (1, "Flag")})
    done, _ = env.step("[D0 E0]")
    assert done and env.close() == {0: 0.0, 1: 0.0} and "Neither player" in env.reason
    assert not has_movable_piece(env.board, 0) and not has_movable_piece(env.board, 1)


def test_turn_limit_draw_and_invalid_move_allowance():
    env = Stratego(seed=1, max_turns=4)
    env.reset()
    for _ in range(4):
        assert not env.done
        env.step(env.legal_actions()[0])
    assert env.done and env.turn == 4 and env.close() == {0: 0.0, 1: 0.0} and "turn limit" in env.reason
    env = Stratego(seed=1)
    env.reset()
    done, info = env.step("[A0 A1]")
    assert not done and info["invalid_move"] and env.current_player == 0
    assert "Player 0 attempted an invalid move" in env.observation_of(1)
    done, info = env.step("no move at all")
    assert done and info["invalid_move"] and env.close() == {0: -1.0, 1: 0.0}


def test_observations_hide_the_opponent():
    env = Stratego(seed=2)
    env.reset()
    _, obs0 = env.get_observation()
    assert "Available Moves: [D" in obs0 and "[GAME] Current Board:" in obs0
    rows = {line[0]: line for line in obs0.splitlines() if line[:1] in "ABCDEFGHIJ" and line[1:3] == "  "}
    assert all(rows[r].split()[1:] == ["?"] * 10 for r in "GHIJ") and "?" not in rows["A"]
    assert "Current Board" not in env.observation_of(1)  # the board goes to the player to move only
    move = env.legal_actions()[0]
    env.step(f"My secret plan: {move}")
    obs1 = env.observation_of(1)
    assert "My secret plan" not in obs1 and "My secret plan" in env.observation_of(0)
    assert f"Player 0 has moved a piece from {move[1:3]} to {move[4:6]}." in obs1
    rows1 = {line[0]: line for line in obs1.splitlines() if line[:1] in "ABCDEFGHIJ" and line[1:3] == "  "}
    assert all(set(rows1[r].split()[1:]) <= {"?", ".", "~"} for r in "ABCDE") and "?" not in rows1["J"]
    assert obs1.count("Current Board") == 1 and env.observation_of(0).count("Current Board") == 1


def test_heuristic_sees_only_public_information():
    env = Stratego(seed=5)
    env.reset()
    rng = np.random.default_rng(5)
    for _ in range(80):
        env.step(str(rng.choice(env.legal_actions())))
    pid = env.current_player
    move = stratego_move(env, pid)
    hidden = [p for row in env.board for p in row if p and p.owner != pid and not p.revealed]
    ranks = [p.rank for p in hidden]
    for p, rank in zip(hidden, np.random.default_rng(0).permutation(ranks)):
        p.rank = str(rank)
    assert stratego_move(env, pid) == move  # shuffling the enemy's hidden ranks changes nothing
    view, unseen = public_view(env, pid)
    assert sum(unseen.values()) == len(hidden)


def heuristic_vs_random(env: Stratego, seat: int, rng: np.random.Generator) -> dict:
    return {seat: lambda obs: stratego_move(env, env.current_player),
            1 - seat: lambda obs: str(rng.choice(env.legal_actions()))}


def test_heuristic_beats_random_through_the_loop():
    record = {1.0: 0, 0.0: 0, -1.0: 0}
    for seed in range(20):
        env = Stratego(seed=seed)
        seat = seed % 2  # both seats
        players = heuristic_vs_random(env, seat, np.random.default_rng(seed))
        moves, rewards = play_game(env, players, max_steps=2 * env.max_turns + 2)
        assert all(m["action"] in m["observation"].rsplit("Available Moves:", 1)[1] for m in moves)
        record[rewards[seat]] += 1
    assert record[1.0] >= 16 and record[-1.0] <= 1, record  # measured: 20-0-0 (100 games: 93-6-1)


def test_offline_scripted_backend_reads_the_available_moves():
    agent = RoleAgent(scripted_move_backend(), "system", GenConfig(), "learnarena.player0")
    env = Stratego(seed=4, max_turns=60)
    moves, rewards = play_game(env, {0: agent, 1: lambda obs: stratego_move(env, 1)}, max_steps=200)
    assert len(moves) == env.turn and moves[0]["action"] == env.observation_of(0).split("Available Moves: ")[1][:7]
    assert outcome_of(rewards) in ("Player 0 won", "Player 1 won", "Draw")


def test_random_games_end_by_the_rules():
    for seed in range(30):
        env = Stratego(seed=seed)
        env.reset()
        rng = np.random.default_rng(seed)
        while not env.done:
            legal = env.legal_actions()
            assert legal, "a side to move with no legal move must already have lost"
            assert env.step(str(rng.choice(legal)))[1].get("invalid_move") is None
            for pid in (0, 1):  # every piece is on the board or in the (revealed) removed list
                on_board = sum(p is not None and p.owner == pid for row in env.board for p in row)
                assert on_board + len(env.removed[pid]) == 40
        rewards = env.close()
        assert env.turn <= env.max_turns and rewards[0] + rewards[1] == 0
        if "turn limit" in env.reason:
            assert env.turn == env.max_turns and rewards == {0: 0.0, 1: 0.0}
        elif "Neither player" in env.reason:
            assert rewards == {0: 0.0, 1: 0.0} and not any(has_movable_piece(env.board, p) for p in (0, 1))
        elif "captured the opponent's flag" in env.reason:
            loser = 0 if rewards[0] == -1 else 1
            assert "Flag" in env.removed[loser]
        else:
            loser = 0 if rewards[0] == -1 else 1
            assert not stratego_moves(env.board, loser, env.last_moved, env.history)
