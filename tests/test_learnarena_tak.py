"""Tak (textarena's Tak-v0 rules, 4x4, 15 stones + 1 capstone each): placements, the opening swap, stack moves
and drops, walls and capstones, road wins (mover priority), flat-count wins and draws (full board, no pieces
left, turn cap), the invalid-move allowance, rewards as `loop.play_game` reads them, the legal-move generator
against a brute-force filter of every syntactically possible move, and the heuristic against random."""

import copy

import numpy as np

from humanai_jax.methods.learnarena.games.tak import (
    SIZE,
    Tak,
    first_legal_from_observation,
    flat_counts,
    format_move,
    has_road,
    movement_error,
    parse_move,
    placement_error,
    state_from_observation,
    tak_move,
)
from humanai_jax.methods.learnarena.loop import outcome_of, play_game


def fresh(move_count: int = 2) -> Tak:
    """An env past the opening (by default) on an empty board, Player 0 to move."""
    env = Tak()
    env.reset()
    env.move_count = move_count
    return env


def put(env: Tak, squares: dict) -> None:
    for (r, c), stack in squares.items():
        env.board[r][c] = stack.split("/")


def legal(env: Tak) -> set[str]:
    return set(env.legal_actions())


def test_opening_swap_and_placements_by_hand():
    env = Tak()
    env.reset()
    assert legal(env) == {f"place () {{({r},{c}): [F1]}}" for r in range(4) for c in range(4)}
    assert "Opening: place one of Player 1's flat stones (F1)" in env.get_observation()[1]
    done, info = env.step("place () {(0,0): [F0]}")  # own stone during the opening: invalid, resubmit
    assert not done and info["invalid_move"] and env.current_player == 0
    assert env.step("I start in the corner: PLACE () {(0,0): [f1]}") == (False, {})
    assert env.board[0][0] == ["F1"] and env.reserves[1]["stones"] == 14 and env.reserves[0]["stones"] == 15
    assert env.step("move (0,0) {(0,1): [F1]}")[1]["invalid_move"]  # no stack moves in the opening
    env.step("place () {(3,3): [F0]}")
    # Player 0: 14 empty squares x {F0, W0, C0}, plus the single F0 on (3,3) moved up or left by one square.
    assert len(env.legal_actions()) == 14 * 3 + 2
    assert {"move (3,3) {(2,3): [F0]}", "move (3,3) {(3,2): [F0]}", "place () {(1,1): [C0]}"} <= legal(env)
    env.step("place () {(1,1): [C0]}")
    assert env.reserves[0] == {"stones": 14, "capstones": 0}
    env.step("place () {(2,2): [W1]}")
    assert not any(a.endswith("[C0]}") and a.startswith("place") for a in env.legal_actions())  # capstone used
    assert "place () {(0,1): [F1]}" not in legal(env)  # only your own pieces after the opening


def test_stack_moves_walls_and_capstones_by_hand():
    env = fresh()
    put(env, {(1, 1): "F1/F0", (0, 1): "C1", (1, 3): "W1"})
    from_11 = {a for a in env.legal_actions() if a.startswith("move (1,1)")}
    assert from_11 == {
        "move (1,1) {(2,1): [F0]}", "move (1,1) {(2,1): [F1, F0]}", "move (1,1) {(2,1): [F1], (3,1): [F0]}",
        "move (1,1) {(1,0): [F0]}", "move (1,1) {(1,0): [F1, F0]}",
        "move (1,1) {(1,2): [F0]}", "move (1,1) {(1,2): [F1, F0]}"}  # up: capstone; right past (1,2): wall
    assert env.step("move (1,1) {(2,1): [F1], (3,1): [F0]}") == (False, {})
    assert env.board[1][1] == [] and env.board[2][1] == ["F1"] and env.board[3][1] == ["F0"]

    env = fresh()
    put(env, {(1, 1): "F0/C0", (1, 3): "W1", (3, 3): "F1/F1/F0/F1/F0"})
    assert "move (1,1) {(1,2): [F0], (1,3): [C0]}" in legal(env)
    for bad, why in [("move (1,1) {(1,2): [C0], (1,3): [F0]}", "top pieces"),
                     ("move (1,1) {(1,3): [C0]}", "next to the source"),
                     ("move (1,1) {(1,2): [F0, C0], (1,3): []}", "at least one piece"),
                     ("move (3,3) {(2,3): [F1, F1], (1,3): [F0, F1, F0]}", "at most 4"),
                     ("move (2,2) {(2,3): [F0]}", "no stack")]:
        done, info = env.step(bad)
        assert info["invalid_move"] and why in info["reason"], (bad, info)
        env._invalid_in_turn = 0  # keep testing reasons without spending the allowance
    env.step("move (1,1) {(1,2): [F0], (1,3): [C0]}")
    assert env.board[1][3] == ["F1", "C0"] and env.board[1][2] == ["F0"]  # the wall was flattened
    assert movement_error(env.board, 3, 1, (1, 2), (((1, 3), ("F0",)),)) is not None  # topped by Player 0


def test_road_wins_with_capstone_and_mover_priority():
    env = fresh()
    put(env, {(0, 0): "F0", (1, 0): "C0", (2, 0): "F0", (3, 1): "F0"})
    assert not has_road(env.board, 0)
    done, _ = env.step("move (3,1) {(3,0): [F0]}")
    assert done and env.close() == {0: 1.0, 1: -1.0} and "connected two opposite edges" in env.reason

    env = fresh()
    put(env, {(0, 0): "F0", (1, 0): "W0", (2, 0): "F0", (3, 3): "F1"})
    done, _ = env.step("place () {(3,0): [F0]}")
    assert not done  # a wall is not part of a road

    # Player 0 uncovers Player 1's road and completes no road of its own: Player 1 wins.
    env = fresh()
    put(env, {(0, 3): "F1", (1, 3): "F1", (2, 3): "F1/F0", (3, 3): "F1", (0, 0): "F0"})
    done, _ = env.step("move (2,3) {(2,2): [F0]}")
    assert done and env.close() == {0: -1.0, 1: 1.0}
    # The same move completing Player 0's column 2 as well: the mover wins.
    env = fresh()
    put(env, {(0, 3): "F1", (1, 3): "F1", (2, 3): "F1/F0", (3, 3): "F1", (0, 2): "F0", (1, 2): "F0", (3, 2): "F0"})
    done, _ = env.step("move (2,3) {(2,2): [F0]}")
    assert has_road(env.board, 0) and has_road(env.board, 1)
    assert done and env.close() == {0: 1.0, 1: -1.0}


def full_board_but_one(env: Tak, tops: list[str]) -> None:
    """Fills every square except (3,3) with the given top pieces (row-major), no road for anyone."""
    squares = [(r, c) for r in range(SIZE) for c in range(SIZE)][:-1]
    put(env, dict(zip(squares, tops)))


def test_flat_count_on_full_board_win_and_draw():
    # Checkerboard-ish tops with walls breaking every line; 15 squares filled, Player 0 fills the last one.
    tops = ["F0", "W1", "F0", "W1",
            "W0", "F1", "W0", "F1",
            "F0", "W1", "F0", "W1",
            "W0", "F1", "W0"]
    env = fresh()
    full_board_but_one(env, tops)
    assert flat_counts(env.board) == {0: 4, 1: 3}
    done, _ = env.step("place () {(3,3): [W0]}")
    assert done and env.close() == {0: 1.0, 1: -1.0} and "board is full" in env.reason and "4-3" in env.reason
    env = fresh()
    full_board_but_one(env, tops)
    env.current_player = 1
    done, _ = env.step("place () {(3,3): [F1]}")
    assert not has_road(env.board, 1)
    assert done and env.close() == {0: 0.0, 1: 0.0} and "tied 4-4" in env.reason


def test_flat_count_when_a_player_runs_out_and_at_the_turn_cap():
    env = fresh()
    put(env, {(0, 0): "F1", (2, 2): "F1", (1, 1): "F0"})
    env.reserves[0] = {"stones": 1, "capstones": 0}
    done, _ = env.step("place () {(3,3): [W0]}")  # Player 0's last piece: flats 1-2
    assert done and env.close() == {0: -1.0, 1: 1.0} and "Player 0 has no pieces left" in env.reason

    env = fresh()
    put(env, {(0, 0): "F0", (2, 2): "F1"})
    env.turn = 98
    assert not env.step("place () {(3,3): [F0]}")[0]  # move 99 of 100
    done, _ = env.step("place () {(3,0): [W1]}")  # move 100: the cap, flats 2-1
    assert done and env.turn == 100 and env.close() == {0: 1.0, 1: -1.0} and "turn limit" in env.reason


def test_invalid_move_allowance_and_parse_errors():
    env = fresh()
    assert isinstance(parse_move("place () {(1,1): [X0]}"), str)
    assert isinstance(parse_move("place () {(1,1): [F0], (1,1): [F0]}"), str)
    assert parse_move("Old textarena style: [place () {(0,1): [F0]}]") == ("place", None, (((0, 1), ("F0",)),))
    assert parse_move("move (1, 2) {(1,3): ['F0', \"f1\"]}") == ("move", (1, 2), (((1, 3), ("F0", "F1")),))
    done, info = env.step("I pass")
    assert not done and info["invalid_move"] and env.current_player == 0
    done, info = env.step("place () {(9,9): [F0]}")
    assert done and info["invalid_move"] and env.close() == {0: -1.0, 1: 0.0}


def test_generator_equals_brute_force_filter_of_all_moves():
    """`tak_moves` against every syntactically possible placement and straight-line drop pattern, filtered by the
    rule checks (`placement_error` / `movement_error`), on positions from seeded random games."""
    def brute(env):
        pid, out = env.current_player, set()
        for r in range(SIZE):
            for c in range(SIZE):
                for piece in ("F0", "W0", "C0", "F1", "W1", "C1"):
                    if placement_error(env.board, env.reserves, env.move_count, pid, None, (((r, c), (piece,)),)) is None:
                        out.add(format_move(("place", None, (((r, c), (piece,)),))))
                stack = env.board[r][c]
                for n in range(1, len(stack) + 1):
                    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                        for cuts in range(1 << (n - 1)):  # every split of the carried pile into runs
                            sizes, run = [], 1
                            for i in range(n - 1):
                                if cuts >> i & 1:
                                    sizes.append(run)
                                    run = 0
                                run += 1
                            sizes.append(run)
                            drops, i = [], len(stack) - n
                            for k, s in enumerate(sizes, start=1):
                                drops.append(((r + k * dr, c + k * dc), tuple(stack[i:i + s])))
                                i += s
                            if movement_error(env.board, env.move_count, pid, (r, c), tuple(drops)) is None:
                                out.add(format_move(("move", (r, c), tuple(drops))))
        return out

    checked = 0
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        env = Tak()
        env.reset()
        while not env.done:
            moves = env.legal_actions()
            assert len(moves) == len(set(moves))
            if env.turn % 3 == 0:
                assert set(moves) == brute(env), (seed, env.turn)
                checked += 1
            env.step(str(rng.choice(moves)))
    assert checked >= 30


def test_heuristic_completes_a_road_blocks_one_and_beats_random():
    env = fresh()
    put(env, {(0, 0): "F0", (1, 0): "F0", (2, 0): "F0", (0, 3): "F1", (1, 3): "F1", (2, 3): "F1"})
    assert tak_move(env, 0) == "place () {(3,0): [F0]}"
    env.board[2][0] = ["W1"]  # no win for Player 0 now, and Player 1 threatens a road at (3,3)
    env.step(tak_move(env, 0))
    assert not env.done and not any(_wins(env, a) for a in env.legal_actions())  # the threat is blocked

    record = {"win": 0, "draw": 0, "loss": 0}
    for seed in range(20):
        env = Tak()
        me = seed % 2  # the heuristic plays both seats
        players = {me: _heuristic(env), 1 - me: _random(env, np.random.default_rng(seed))}
        moves, rewards = play_game(env, players)
        result = outcome_of(rewards)
        record["draw" if result == "Draw" else "win" if result == f"Player {me} won" else "loss"] += 1
    assert record["win"] >= 18 and record["loss"] == 0, record  # measured: 20-0-0


def _wins(env: Tak, move: str) -> bool:
    """Whether `move` by the player to move ends the game in that player's favour (on a copy)."""
    trial = copy.deepcopy(env)
    pid = trial.current_player
    trial.step(move)
    return trial.done and trial.rewards[pid] == 1.0


def _heuristic(env: Tak):
    def play(observation: str) -> str:
        move = tak_move(env, env.current_player)
        assert move in env.legal_actions(), move
        return move
    return play


def _random(env: Tak, rng: np.random.Generator):
    return lambda observation: str(rng.choice(env.legal_actions()))


def test_random_games_end_by_the_rules():
    reasons = set()
    for seed in range(30):
        rng = np.random.default_rng(seed)
        env = Tak()
        env.reset()
        while not env.done:
            env.step(str(rng.choice(env.legal_actions())))
            on_board = sum(len(s) for row in env.board for s in row)
            in_hand = sum(r["stones"] + r["capstones"] for r in env.reserves.values())
            assert on_board + in_hand == 32 and min(min(r.values()) for r in env.reserves.values()) >= 0
        rewards = env.close()
        assert env.turn <= env.max_turns and rewards[0] + rewards[1] == 0 and set(rewards.values()) <= {-1, 0, 1}
        counts = flat_counts(env.board)
        if "connected" in env.reason:
            winner = 0 if rewards[0] == 1 else 1
            assert has_road(env.board, winner) and env.reason.startswith(f"Player {winner}")
            reasons.add("road")
        else:
            full = all(s for row in env.board for s in row)
            out = any(r["stones"] + r["capstones"] == 0 for r in env.reserves.values())
            assert full or out or env.turn == env.max_turns
            assert not has_road(env.board, 0) and not has_road(env.board, 1)
            expected = {0: 0.0, 1: 0.0} if counts[0] == counts[1] else \
                {0: 1.0, 1: -1.0} if counts[0] > counts[1] else {0: -1.0, 1: 1.0}
            assert rewards == expected
            reasons.add("flat")
    assert reasons == {"road", "flat"}


def test_state_read_back_from_the_observation_text():
    """A text-only player (scripted backend) can rebuild the position from what it is shown."""
    rng = np.random.default_rng(7)
    env = Tak()
    env.reset()
    while not env.done:
        pid, observation = env.get_observation()
        board, reserves, move_count, who = state_from_observation(observation)
        assert (board, reserves, who) == (env.board, env.reserves, pid) and (move_count < 2) == (env.move_count < 2)
        assert first_legal_from_observation(observation) == env.legal_actions()[0]
        env.step(str(rng.choice(env.legal_actions())))
