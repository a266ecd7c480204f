"""`python -m experiments.replay_metrics`: an agent-system run's metrics recomputed from its trace directory
equal its results.json, and a changed reported number is caught and named (GenMentor's tutoring run)."""

import json
import os

import pytest

from experiments import replay_metrics


def test_trace_system_and_compare_by_hand(tmp_path):
    trace = tmp_path / "traces.jsonl"
    trace.write_text('{"system": "genmentor", "step": 0}\n\n{"system": "genmentor", "step": 1}\n')
    assert replay_metrics.trace_system(str(trace)) == "genmentor"
    trace.write_text('{"system": "genmentor"}\n{"system": "namegen"}\n')
    with pytest.raises(ValueError, match="one system"):
        replay_metrics.trace_system(str(trace))
    trace.write_text('{"system": "genmentor"}\nnot json\n')
    with pytest.raises(ValueError, match=r"traces.jsonl:2: invalid JSON"):
        replay_metrics.trace_system(str(trace))
    n, diffs = replay_metrics.compare({"a": {"x": 1.0, "y": [2, 3]}, "ok": True},
                                      {"a": {"x": 1.0 + 1e-12, "y": [2, 4]}, "extra": 5})
    assert n == 3 and diffs == ["a.y.1: recomputed 3.0, reported 4.0"]
    assert replay_metrics.compare({"z": 1}, {})[1] == ["z: recomputed 1.0, not in results.json"]


def test_genmentor_tutoring_run_replays_from_its_trace_dir(tmp_path, capsys):
    from configs.genmentor import get_config
    from experiments.run import run_experiment

    config = get_config("smoke")
    config.parts = "tutoring"
    config.tutoring.learners = 2
    run_experiment(config, str(tmp_path))
    trace = str(tmp_path / "tutoring" / "traces.jsonl")
    assert replay_metrics.main(["--trace", trace]) == 0
    assert " 0 differ" in capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    results["tutoring"]["skills"]["genmentor"]["f1"] += 0.25  # a number the trace does not support
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert replay_metrics.main(["--trace", trace]) == 1
    out = capsys.readouterr().out
    assert " 1 differ" in out and "skills.genmentor.f1: recomputed" in out


def test_namegen_run_replays_from_its_trace(tmp_path, capsys):
    """The default NAMeGEn run (plumbing, our distilled model): every method's metrics recomputed from
    traces.jsonl and the inputs config.json names equal results.json's `methods`, however many queries the
    small model got through (with 4 simulated devices it can be none: the empty aggregates must replay too)."""
    from configs.namegen import get_config
    from experiments.run import run_experiment

    run_experiment(get_config(), str(tmp_path))
    assert replay_metrics.main(["--trace", str(tmp_path / "traces.jsonl")]) == 0
    assert " 0 differ" in capsys.readouterr().out


def test_namegen_changed_judge_score_is_caught(tmp_path, capsys):
    """On a scripted-backend run (every query reaches the judges) the trace replays, and one changed CRC score
    in it is caught."""
    from configs.namegen import get_config
    from experiments.run import run_experiment

    run_experiment(get_config("plumbing,kind=mock"), str(tmp_path))
    trace = tmp_path / "traces.jsonl"
    assert replay_metrics.main(["--trace", str(trace)]) == 0
    assert " 0 differ" in capsys.readouterr().out
    lines = trace.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec.get("agent", "").endswith(".judge.crc") and rec.get("parse_error") is None:
            rec["parsed"] = [min(float(v) + 1, 5.0) if v < 5 else 1.0 for v in rec["parsed"]]  # scores 1-5
            lines[i] = json.dumps(rec, ensure_ascii=False)
            break
    else:
        pytest.fail("no CRC judge call in the trace")
    trace.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert replay_metrics.main(["--trace", str(trace)]) == 1


@pytest.mark.parametrize("protocol", ["debate", "sandwich"])
def test_oversight_dialogue_runs_replay_from_their_traces(tmp_path, capsys, protocol):
    from configs.oversight import get_config
    from experiments.run import run_experiment

    config = get_config(protocol)
    config.dialogue.limit = 12
    run_experiment(config, str(tmp_path))
    assert replay_metrics.main(["--trace", str(tmp_path / "traces.jsonl")]) == 0
    assert " 0 differ" in capsys.readouterr().out


def test_motivebench_run_replays_from_its_trace(tmp_path, capsys):
    from configs.motivebench import get_config
    from experiments import motivebench
    from experiments.run import run_experiment

    config = get_config("baselines")
    if not os.path.isdir(motivebench.data_dir(config)):
        pytest.skip("../shared/data/motivebench is absent (../shared/data/README.md)")
    config.limit = 2
    run_experiment(config, str(tmp_path))
    assert replay_metrics.main(["--trace", str(tmp_path / "traces.jsonl")]) == 0
    assert " 0 differ" in capsys.readouterr().out


def test_learnarena_run_replays_from_its_trace(tmp_path, capsys):
    from configs.learnarena import get_config
    from experiments.run import run_experiment

    run_experiment(get_config("scripted"), str(tmp_path))
    assert replay_metrics.main(["--trace", str(tmp_path / "traces.jsonl")]) == 0
    assert " 0 differ" in capsys.readouterr().out
