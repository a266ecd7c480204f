"""`humanai_jax.data.jsonl`: streaming reads, file:line errors, the validation hook, writers."""

import gzip
import json

import pytest

from humanai_jax.data.jsonl import (
    JsonlError,
    JsonlReader,
    JsonlWriter,
    append_jsonl,
    iter_jsonl,
    read_jsonl,
    require_fields,
    write_jsonl,
)


def test_round_trip_plain_and_gz_with_unicode(tmp_path):
    records = [{"a": 1, "t": "héllo ✓"}, {"a": 2, "t": "x\ny"}]
    for name in ("r.jsonl", "sub/r.jsonl.gz"):
        path = tmp_path / name
        assert write_jsonl(str(path), iter(records)) == 2
        assert read_jsonl(str(path)) == records
        assert [n for n, _ in iter_jsonl(str(path))] == [1, 2]
    raw = (tmp_path / "r.jsonl").read_text(encoding="utf-8")
    assert "héllo ✓" in raw and raw.count("\n") == 2  # ensure_ascii=False, one line per record
    with gzip.open(tmp_path / "sub/r.jsonl.gz", "rt") as f:
        assert json.loads(f.readline()) == records[0]
    assert not list(tmp_path.glob("**/*.tmp*"))  # the atomic writer cleans up


def test_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{not json\n')
    it = iter_jsonl(str(path))
    assert next(it) == (1, {"a": 1})  # streaming: the good line comes before the error
    with pytest.raises(JsonlError, match=r"bad.jsonl:3: invalid JSON"):
        next(it)
    path.write_text('[1, 2]\n')
    with pytest.raises(JsonlError, match=r"bad.jsonl:1: expected a JSON object, got list"):
        read_jsonl(str(path))
    assert read_jsonl(str(path), objects_only=False) == [[1, 2]]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_jsonl(str(tmp_path / "missing.jsonl"))


def test_validation_hook_and_custom_error_class(tmp_path):
    path = tmp_path / "v.jsonl"
    write_jsonl(str(path), [{"prompt": "p", "n": 1}, {"prompt": 3}])
    with pytest.raises(JsonlError, match=r"v.jsonl:2: field 'prompt' must be str, found int"):
        read_jsonl(str(path), validate=require_fields(["prompt"], str))
    with pytest.raises(JsonlError, match=r"v.jsonl:2: missing field 'n' \(has \['prompt'\]\)"):
        read_jsonl(str(path), validate=require_fields(["n"]))

    class MyError(ValueError):
        pass

    with pytest.raises(MyError, match=r"v.jsonl:2: missing key 'n'"):  # a KeyError in the hook names the key
        read_jsonl(str(path), validate=lambda r: r["n"], error=MyError)
    assert read_jsonl(str(path), validate=lambda r: {"p": r["prompt"]}) == [{"p": "p"}, {"p": 3}]  # converts
    reader = JsonlReader(str(path), error=MyError)
    for line, rec in reader:
        if line == 2:
            with pytest.raises(MyError, match=r"v.jsonl:2: missing field 'n'"):
                reader.require(line, rec, ["n"], kind=None)
            assert str(reader.error(line, "custom")).endswith("v.jsonl:2: custom")


def test_writer_appends_and_flushes_per_record(tmp_path):
    path = tmp_path / "a/log.jsonl"
    with JsonlWriter(str(path)) as w:
        w.write({"i": 0})
        assert path.read_text() == '{"i": 0}\n'  # flushed before close
    assert append_jsonl(str(path), [{"i": 1}, {"i": 2}]) == 2
    assert [r["i"] for r in read_jsonl(str(path))] == [0, 1, 2]
