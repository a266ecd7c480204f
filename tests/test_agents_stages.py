"""The core resumable JSONL stage runner (`humanai_jax.agents.stages`) and prompt loader (`agents.prompts`)."""

import json
import string

import pytest

from humanai_jax.agents import PromptLibrary, StageReport, failure_reason, kept, run_stage
from humanai_jax.agents.stages import repair_torn_tail


def _process(calls):
    def process(batch):
        calls.append([u["id"] for u in batch])
        return [dict(u, out=u["x"] * 2, _drop=None if u["x"] % 3 else "multiple_of_3") for u in batch]
    return process


def test_run_stage_batches_counts_and_resumes(tmp_path):
    out = str(tmp_path / "s/out.jsonl")
    units = [{"id": f"u{i}", "x": i} for i in range(7)]
    calls, report = [], StageReport()
    recs = run_stage("double", units[:5], out, "id", _process(calls), report, batch_size=2, progress=False)
    assert calls == [["u0", "u1"], ["u2", "u3"], ["u4"]]
    assert [r["out"] for r in recs] == [0, 2, 4, 6, 8]
    assert report.to_dict() == {"double": {"kept": 3, "dropped": {"multiple_of_3": 2}, "skipped_done": 0}}
    assert [r["id"] for r in kept(recs)] == ["u1", "u2", "u4"]
    # resume with more units: only the new ones are processed; output in input order
    calls2, report2 = [], StageReport()
    recs2 = run_stage("double", list(reversed(units)), out, "id", _process(calls2), report2, batch_size=4,
                      progress=False)
    assert calls2 == [["u6", "u5"]]
    assert [r["id"] for r in recs2] == [f"u{i}" for i in reversed(range(7))]
    assert report2.to_dict()["double"] == {"kept": 1, "dropped": {"multiple_of_3": 1}, "skipped_done": 5}
    lines = open(out).read().splitlines()
    assert len(lines) == 7 and all(json.loads(line)["id"] for line in lines)
    path = tmp_path / "report.json"
    report2.write(str(path))
    assert json.loads(path.read_text())["double"]["skipped_done"] == 5


def test_run_stage_repairs_a_torn_last_line(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "u0", "x": 0, "out": 0, "_drop": "multiple_of_3"}\n{"id": "u1", "x": 1, "ou')
    calls = []
    with pytest.warns(UserWarning, match="torn last line"):
        recs = run_stage("double", [{"id": "u0", "x": 0}, {"id": "u1", "x": 1}], str(out), "id", _process(calls),
                         StageReport(), progress=False)
    assert calls == [["u1"]] and [r["out"] for r in recs] == [0, 2]
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["u0", "u1"]
    assert not repair_torn_tail(str(out)) and not repair_torn_tail(str(tmp_path / "none.jsonl"))
    torn = tmp_path / "only.jsonl"
    torn.write_text('{"id": ')
    with pytest.warns(UserWarning):
        assert repair_torn_tail(str(torn))
    assert torn.read_text() == ""


def test_run_stage_rejects_records_outside_the_batch(tmp_path):
    with pytest.raises(ValueError, match="not a unit of its batch"):
        run_stage("bad", [{"id": "a"}], str(tmp_path / "o.jsonl"), "id", lambda b: [{"id": "zzz"}], StageReport(),
                  progress=False)


def test_failure_reason():
    assert failure_reason("backend: 503", "tag") == "tag_backend_error"
    assert failure_reason("parse: bad", "tag") == "tag_parse_error"


def test_prompt_library_renders_language_tags_and_json(tmp_path, monkeypatch):
    pkg = tmp_path / "promptpkg_for_test"
    (pkg / "prompts" / "zh").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "prompts" / "hello.txt").write_text("Hello $name, $$5", encoding="utf-8")
    (pkg / "prompts" / "zh" / "hello.txt").write_text("你好 $name", encoding="utf-8")
    (pkg / "prompts" / "bye.txt").write_text("Bye $name", encoding="utf-8")
    (pkg / "prompts" / "data.json").write_text('{"a": [1, 2]}', encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    en, zh = PromptLibrary("promptpkg_for_test"), PromptLibrary("promptpkg_for_test", lang="zh")
    assert en.render("hello", name="Ann") == "Hello Ann, $5"
    assert zh.render("hello", name="Ann") == "你好 Ann"
    assert zh.render("bye", name="Ann") == "Bye Ann"  # falls back to the untagged file
    assert isinstance(en.template("hello"), string.Template) and en.fields("hello") == {"name"}
    assert en.json("data") == {"a": [1, 2]}
    with pytest.raises(KeyError, match="name"):
        en.render("hello")
    with pytest.raises(FileNotFoundError, match="no prompt 'nope'"):
        en.text("nope")


def test_humanllm_prompts_through_the_core_loader():
    lib = PromptLibrary("humanai_jax.methods.humanllm")
    assert {"text", "platform"} <= lib.fields("tag_v1")
    assert "dimension_text" in lib.json("judge_rubrics")
    sft = PromptLibrary("humanai_jax.methods.humanllm", "prompts/sft")
    assert isinstance(sft.json("item_selection_scenarios"), list)
