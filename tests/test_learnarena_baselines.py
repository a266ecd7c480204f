"""Deliver 3: the LLM-free floors (random legal move, heuristic player) appear in every LearnArena game table,
for every default game and pooled, in every game dimension."""

import pytest


@pytest.mark.parametrize("dimension", ["benchmark", "lfc", "lfe"])
def test_every_game_table_reports_both_floors(tmp_path, dimension):
    from configs.learnarena import get_config
    from experiments import learnarena as exp
    from humanai_jax.methods.learnarena.games import GAMES

    c = get_config("scripted")
    c.dimension = dimension
    c.num_rounds = 1
    games = c.games.split(",")
    assert set(games) == set(GAMES)  # the default list runs every native game
    res = exp.run(c, str(tmp_path))
    table = (tmp_path / "table.txt").read_text().splitlines()
    for game in [*games, "overall"]:
        arms = res["games"][game] if game != "overall" else res["overall"]
        assert {"baseline_random", "baseline_heuristic"} <= set(arms), game
        for arm in ("baseline_random", "baseline_heuristic"):
            assert arms[arm]["rounds"] == (len(games) if game == "overall" else 1)
            assert any(line.split()[:2] == [game, arm] for line in table), (game, arm)
    # the heuristic never loses to the scripted first-legal-move Player-0 on a game without chance (a card
    # game's deal can beat any player)
    for game in games:
        if game != "SpiteAndMalice-v0":
            assert res["games"][game]["baseline_heuristic"]["losses"] == 0, game
