"""LearnArena and MotiveBench over HTTP against our own OpenAI-compatible server (humanai_jax.serving,
a random tiny checkpoint, no network): the full loops complete and every call goes through the server."""

from __future__ import annotations

import json

import pytest

serving = pytest.importorskip("humanai_jax.serving.app", reason="humanai_jax.serving is not available")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from humanai_jax.serving.loading import load_model, make_tiny_checkpoint
    from humanai_jax.serving.scheduler import Scheduler

    m = load_model(make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), n_layers=1), name="tiny")
    sched = Scheduler(m.params, m.config, m.tokenizer, m.stop_ids, rows=8, max_len=4096, chunk=256, multi_step=4,
                      max_waiting=64)
    with serving.ServerThread(serving.create_app(sched, "tiny")) as srv:
        yield srv


def test_learnarena_benchmark_over_the_server(server, tmp_path):
    from configs.learnarena import get_config
    from experiments import learnarena as exp

    c = get_config(f"benchmark,base_url={server.base_url},model=tiny,rounds=2,games=TicTacToe-v0")
    c.baselines = "random"
    c.game_gen.max_tokens = c.judge_gen.max_tokens = 8
    res = exp.run(c, str(tmp_path))
    model = res["games"]["TicTacToe-v0"]["model"]
    assert model["rounds"] == 2 and model["errors"] == 0  # every call answered by the server
    traces = [json.loads(x) for x in (tmp_path / "traces.jsonl").read_text().splitlines()]
    calls = [t for t in traces if t["type"] == "llm_call"]
    assert calls and all(t["model"] == "openai:tiny" and t["parse_error"] is None for t in calls)
    assert {t["agent"] for t in calls} >= {"learnarena.concept", "learnarena.player0", "learnarena.judge",
                                            "learnarena.instructor"}


def test_motivebench_over_the_server(server, tmp_path):
    from configs.motivebench import get_config
    from experiments import motivebench as exp

    c = get_config(f"direct,base_url={server.base_url},model=tiny,limit=1")
    c.sources = "Amazon"
    c.gen.max_tokens = 4
    c.gen.repetition_penalty = 0.0  # our server accepts no penalties
    try:
        res = exp.run(c, str(tmp_path))
    except FileNotFoundError as e:
        pytest.skip(f"MotiveBench data absent: {e}")
    assert res["n_calls"] == 18 and res["n_errors"] == 0 and res["model"] == "openai:tiny"
