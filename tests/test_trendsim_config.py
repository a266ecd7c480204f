"""TrendSim configs: the sweep measures the shares the issue asks for, and the unsaturated sweep keeps the
property it was chosen for (a first page larger than the attackers of the largest share)."""

import configs.trendsim as conf
from humanai_jax.methods.trendsim.simulator import population_for_share


def _shares(c):
    return [float(x) for x in c.attack_shares.split(",")]


def test_sweeps_cover_the_acceptance_shares():
    for variant in ("sweep", "sweep_unsaturated", "sweep_persona"):
        c = conf.get_config(variant)
        assert c.n_seeds >= 3 and {0.1, 0.3} <= set(_shares(c))  # share 0 is the clean run every seed gets
        assert not c.share_moderation  # the undefended attack effect
        assert c.backend.kind == "rules"
        assert c.sim.feed == ("persona" if variant == "sweep_persona" else "hot")


def test_unsaturated_page_holds_more_than_the_largest_attack():
    c = conf.get_config("sweep_unsaturated")
    normal, *attackers = population_for_share(c.n_agents, max(_shares(c)))
    assert sum(attackers) < c.sim.page_size <= normal
    ref = conf.get_config("sweep")  # the reference page (4) is full of attackers from 10% on
    assert sum(population_for_share(ref.n_agents, 0.1)[1:]) > ref.sim.page_size
