"""The core backend factory (humanai_jax/agents/factory.py) every benchmark and agent system builds on."""

from __future__ import annotations

import pytest

from humanai_jax.agents import GenConfig, RecordingBackend, ReplayBackend, ScriptedBackend
from humanai_jax.agents.factory import build_backend


def _echo(block, seed):
    return ScriptedBackend([(".*", None, lambda m, s=seed: f"seed {s}: {m[-1]['content']}")])


def test_custom_kind_record_then_replay_gives_the_same_answers(tmp_path):
    cassette = str(tmp_path / "c.jsonl")
    backend = build_backend({"kind": "echo", "record": cassette}, seed=7, custom={"echo": _echo})
    assert isinstance(backend, RecordingBackend)
    msgs = [{"role": "user", "content": "hi"}]
    first = backend.chat(msgs, GenConfig(), tag="t").text
    assert first == "seed 7: hi"
    replay = build_backend({"kind": "replay", "replay": cassette})
    assert isinstance(replay, ReplayBackend) and replay.chat(msgs, GenConfig(), tag="t").text == first


@pytest.mark.parametrize("block, error, match", [
    ({"kind": "vllm"}, ValueError, r"unknown backend.kind 'vllm'; valid: echo, project, hf, openai, replay"),
    ({"kind": "openai", "base_url": "", "model": "m"}, ValueError, "needs backend.base_url and backend.model"),
    ({"kind": "hf", "checkpoint": "/nonexistent"}, FileNotFoundError, "is not a directory"),
    ({"kind": "replay", "replay": "/nonexistent.jsonl"}, FileNotFoundError, "does not exist"),
])
def test_bad_blocks_are_refused_with_the_reason(block, error, match):
    with pytest.raises(error, match=match):
        build_backend(block, custom={"echo": _echo})
