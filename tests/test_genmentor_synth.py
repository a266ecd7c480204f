"""Teacher-synthesised goal-to-skill data (docs/genmentor.md §6) on a scripted teacher: validation with capped repair, dropped
goals counted, splits, the dataset round trip, and the experiment's wiring up to the split (fast)."""

import json

import pytest

from humanai_jax.agents import GenConfig, ScriptedBackend
from humanai_jax.methods.genmentor import goal2skill as G, synth
from humanai_jax.methods.genmentor.llm import Tracer


def _reply(track, *skills):
    return json.dumps({"reasoning_track": track,
                       "skill_requirements": [{"name": n, "required_level": lv} for n, lv in skills]})


def test_read_goals_formats_and_errors(tmp_path):
    (tmp_path / "g.txt").write_text("Become a data analyst.\n\n  Learn   Go for APIs \n")
    assert synth.read_goals(str(tmp_path / "g.txt")) == [{"id": "goal-1", "goal": "Become a data analyst."},
                                                         {"id": "goal-3", "goal": "Learn Go for APIs"}]
    (tmp_path / "g.jsonl").write_text('{"goal": "A", "id": "a", "split": "test"}\n{"goal": "B"}\n')
    assert synth.read_goals(str(tmp_path / "g.jsonl"))[0] == {"id": "a", "goal": "A", "split": "test"}
    (tmp_path / "dup.txt").write_text("Learn SQL\nlearn  sql\n")
    with pytest.raises(ValueError, match=r"dup.txt:2: duplicate goal \(first at line 1\)"):
        synth.read_goals(str(tmp_path / "dup.txt"))
    (tmp_path / "bad.jsonl").write_text('{"goal": "A", "split": "dev"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: split must be"):
        synth.read_goals(str(tmp_path / "bad.jsonl"))
    (tmp_path / "nogoal.jsonl").write_text('{"text": "A"}\n')
    with pytest.raises(Exception, match="nogoal.jsonl:1.*'goal'"):
        synth.read_goals(str(tmp_path / "nogoal.jsonl"))


def test_assign_splits_counts_and_fixed_splits():
    goals = [{"id": str(i), "goal": str(i)} for i in range(20)] + [{"id": "x", "goal": "x", "split": "val"}]
    splits = synth.assign_splits(goals, (0.7, 0.15, 0.15), seed=0)
    assert splits[-1] == "val"
    assert [splits[:20].count(s) for s in ("train", "val", "test")] == [14, 3, 3]  # 20 * 0.15 = 3 each
    assert synth.assign_splits(goals, (0.7, 0.15, 0.15), seed=0) == splits
    assert synth.assign_splits(goals, (0.7, 0.15, 0.15), seed=1) != splits
    with pytest.raises(ValueError, match="summing to 1"):
        synth.assign_splits(goals, (0.5, 0.2, 0.2), seed=0)


def test_synthesize_validates_repairs_and_drops(tmp_path):
    goals = [{"id": "a", "goal": "Become a data analyst.", "split": "train"},
             {"id": "b", "goal": "Become a Go developer.", "split": "test"},
             {"id": "c", "goal": "Become a DBA.", "split": "val"}]
    dup = _reply("t", ("SQL", "beginner"), ("sql", "advanced"))  # duplicate names: the validator rejects it
    teacher = ScriptedBackend([
        ("synth.teacher", lambda m: "data analyst" in m[1]["content"], _reply(
            "Objectives: dashboards\nAdditional skills: none", ("SQL", "Intermediate"), ("Tableau", "beginner"))),
        ("synth.teacher", lambda m: "Go developer" in m[1]["content"], [dup, _reply("Objectives: APIs", ("Go", "advanced"))]),
        ("synth.teacher", lambda m: "DBA" in m[1]["content"], "I cannot answer that."),  # never valid: dropped
    ])
    teacher.name = "teacher-x"
    tracer = Tracer(str(tmp_path / "t.jsonl"))
    samples, report = synth.synthesize(teacher, goals, cfg=GenConfig(), max_attempts=3, tracer=tracer)
    assert [s["id"] for s in samples] == ["a", "b"]
    assert samples[0] == {"id": "a", "goal": "Become a data analyst.", "split": "train", "teacher": "teacher-x",
                          "track": "Objectives: dashboards\nAdditional skills: none",
                          "skill_requirements": [{"name": "SQL", "required_level": "intermediate"},
                                                 {"name": "Tableau", "required_level": "beginner"}]}
    assert report["n_kept"] == 2 and report["n_dropped"] == 1 and report["dropped"][0]["id"] == "c"
    assert report["split_counts"] == {"train": 1, "val": 0, "test": 1} and report["teacher"] == "teacher-x"
    assert len(teacher.calls) == 1 + 2 + 3  # a: once; b: one repair; c: the cap
    assert "duplicate skill name" in next(c for c in teacher.calls if "Go developer" in c.messages[1]["content"]
                                          and len(c.messages) == 4).messages[-1]["content"]
    teacher.close()
    # the dataset format: written, read back by the goal-to-skill reader; the track becomes the SFT prefix
    G.write_dataset(str(tmp_path / "d.jsonl"), samples)
    back = G.read_dataset(str(tmp_path / "d.jsonl"))
    assert back == samples
    assert G.completion(back[1], tracks=True).startswith("Objectives: APIs\n{")


def test_experiment_uses_synthesized_data(tmp_path):
    from configs.genmentor import get_config
    from experiments.genmentor import _splits, _synthesize

    goals = tmp_path / "goals.txt"
    goals.write_text("\n".join(f"I want to become a {r} in a {c} company." for r in ("data analyst", "web developer",
                                                                                  "nurse", "accountant")
                               for c in ("small", "large", "public", "remote", "startup")))
    config = get_config("sft")
    config.synth.goals = str(goals)
    with pytest.raises(ValueError, match="synth.teacher.kind must be set"):
        _synthesize(config, str(tmp_path / "w0"))
    config.synth.teacher.kind = "mock"
    samples, report = _synthesize(config, str(tmp_path / "w"))
    assert report["n_kept"] == 20 and report["teacher"] == "mock(plumbing)"
    _, parts = _splits(config, G.load_taxonomy(), samples)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [14, 3, 3]
    assert G.read_dataset(str(tmp_path / "w" / "goal2skill" / "synth_dataset.jsonl")) == samples
    assert json.load(open(tmp_path / "w" / "goal2skill" / "synth_report.json"))["n_goals"] == 20
