"""Debate and sandwiching end to end over the project's OpenAI-compatible server (`kind="openai"`, a tiny
random-weight checkpoint), with the other side (1) a model decoded in-process (`kind="hf"`, JaxChatBackend) and
(2) the scripted lexical agents. Checks plumbing (every call answered and traced, unparseable judges fall back,
metrics computed and recomputable from the traces), not quality."""

import json

import pytest

from conftest import require_shared
from humanai_jax.methods.oversight import debate, sandwich
from humanai_jax.methods.oversight.traces import read_events

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
        server = dict(kind="openai", base_url=srv.base_url, model="tiny", api_key_env="NO_KEY")
        # (strong side, weak side): server + in-process model, then scripted debaters / assistant + server judge
        pairings = {"model": (server, dict(kind="hf", checkpoint=ckpt)),
                    "scripted": (dict(kind="scripted", script="lexical"), server)}
        for protocol in ("debate", "sandwich"):
            for pairing, (strong, weak) in pairings.items():
                c = cfg_mod.get_config(f"{protocol},limit=1")
                c.shared_data = str(require_shared("motivebench").parent)
                c.dialogue.update(rounds=1, turns=1, max_tokens=40, n_resamples=100, tasks=(1,))
                c.backend_strong.update(strong)
                c.backend_weak.update(weak)
                workdir = tmp_path / f"{protocol}_{pairing}"
                r = oversight.run(c, str(workdir))
                assert r["n_items"] == 1 and r["n_calls"] > 0, (protocol, pairing)
                served = r["backend_strong"] if pairing == "model" else r["backend_weak"]
                assert "tiny" in served, (protocol, pairing, served)
                if pairing == "model":
                    assert r["backend_weak"].startswith("hf:")
                events = read_events(str(workdir / "traces.jsonl"), "judgment" if protocol == "debate" else "answer")
                again = (debate if protocol == "debate" else sandwich).metrics_from_events(events, n_resamples=100)
                assert json.dumps(again, sort_keys=True) == json.dumps({k: r[k] for k in again}, sort_keys=True)
                if protocol == "debate":
                    assert r["debate"]["n_runs"] == 2 and 0 <= r["debate"]["accuracy"] <= 1
                else:
                    assert r["assisted"]["n"] == 1 and r["assisted"]["turns_used"] <= 1
