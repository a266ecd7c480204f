"""Debate and sandwiching end to end with model backends: a tiny random-weight checkpoint decoded in-process
(`kind="hf"`, JaxChatBackend) and served by the project's OpenAI-compatible server (`kind="openai"`). Checks
plumbing (every call answered, unparseable judges fall back, metrics computed), not quality."""

import pytest

from conftest import require_shared

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")


@pytest.mark.slow
def test_debate_and_sandwich_over_the_project_server_and_in_process(tmp_path):
    require_shared("motivebench/Amazon_questions.json")
    import configs.oversight as cfg_mod
    from experiments import oversight
    from humanai_jax.serving.app import ServerThread, create_app
    from humanai_jax.serving.loading import load_model, make_tiny_checkpoint
    from humanai_jax.serving.scheduler import Scheduler

    ckpt = make_tiny_checkpoint(tmp_path / "tiny", n_layers=1)
    tiny = load_model(ckpt, name="tiny")
    sched = Scheduler(tiny.params, tiny.config, tiny.tokenizer, tiny.stop_ids, rows=4, max_len=8192, chunk=256)
    with ServerThread(create_app(sched, "tiny")) as srv:
        for protocol in ("debate", "sandwich"):
            c = cfg_mod.get_config(f"{protocol},limit=1")
            c.shared_data = str(require_shared("motivebench").parent)
            c.dialogue.update(rounds=1, turns=1, max_tokens=40, n_resamples=100, tasks=(1,))
            c.backend_strong.update(kind="openai", base_url=srv.base_url, model="tiny", api_key_env="NO_KEY")
            c.backend_weak.update(kind="hf", checkpoint=ckpt)
            r = oversight.run(c, str(tmp_path / protocol))
            assert r["n_items"] == 1 and r["n_calls"] > 0
            assert r["backend_weak"].startswith("hf:")
            if protocol == "debate":
                assert r["debate"]["n_runs"] == 2 and 0 <= r["debate"]["accuracy"] <= 1
            else:
                assert r["assisted"]["n"] == 1 and r["assisted"]["turns_used"] <= 1
