"""The JSON-schema token-mask compiler (decoding/json_constraint.py), on the host: random walks through
the masks over a real byte-level BPE vocabulary always end in a document that parses and validates,
within the token budget; unsupported schema features are refused by name."""

import json

import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema")

from humanai_jax.decoding.json_constraint import (
    Automaton,
    JsonConstraintFactory,
    SchemaError,
    VocabIndex,
    compile_schema,
    token_bytes,
)

transformers = pytest.importorskip("transformers")

SCHEMAS = [
    None,  # json_object: any object
    {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 6}, "age": {"type": "integer", "minimum": -3, "maximum": 40},
        "x": {"type": "number"}, "ok": {"type": "boolean"}, "nothing": {"type": "null"},
        "kind": {"enum": ["a", "ab", 1, 12, None, True]}, "c": {"const": "fixed"},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 3},
        "nested": {"type": "object", "properties": {"deep": {"type": "array", "items": {
            "type": "object", "properties": {"v": {"type": "integer"}}, "required": ["v"]}}}},
        "empty": {"type": "object", "properties": {}},
    }, "required": ["name", "tags"], "additionalProperties": False},
    {"type": "array", "items": {"type": "number"}, "maxItems": 4},
    {"type": "string"},
    {"type": "integer"},
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from humanai_jax.serving.loading import make_tiny_tokenizer

    return make_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def test_token_bytes_match_the_tokenizers_decode(tokenizer):
    tb = token_bytes(tokenizer, len(tokenizer) + 5)
    assert tb[-5:] == [None] * 5  # ids past the tokenizer (padded embedding rows) are never allowed
    for special in tokenizer.all_special_ids:
        assert tb[special] is None
    checked = 0
    for tid, bs in enumerate(tb):
        if bs is None:
            continue
        try:
            text = bs.decode("utf-8")
        except UnicodeDecodeError:
            continue
        assert tokenizer.decode([tid]) == text
        checked += 1
    assert checked > 150


@pytest.mark.parametrize("schema", SCHEMAS, ids=["json_object", "object", "array", "string", "integer"])
def test_random_walks_always_parse_and_validate(tokenizer, schema):
    factory = JsonConstraintFactory(tokenizer, len(tokenizer))
    eos = tokenizer.eos_token_id
    rng = np.random.default_rng(0)
    tb = factory.vocab.tbytes
    lengths = []
    for trial in range(60):
        tr = factory.tracker(schema, [eos])
        budget = tr.min_tokens() + int(rng.integers(0, 40))
        ids = []
        for left in range(budget, 0, -1):
            if tr.state == ():
                break
            allowed = np.flatnonzero(tr.allowed(left))
            assert allowed.size, (trial, tr.state)
            tid = int(rng.choice(allowed))
            if tid == eos:
                break
            tr.advance(tid)
            ids.append(tid)
        assert len(ids) <= budget
        text = tokenizer.decode(ids)
        assert text == b"".join(tb[i] for i in ids).decode("utf-8", "replace")
        doc = json.loads(text)
        if schema is None:
            assert isinstance(doc, dict)
        else:
            jsonschema.validate(doc, schema)
        lengths.append(len(ids))
    assert len(set(lengths)) > 5  # the walks really differ


def test_forced_closing_at_the_minimum_budget(tokenizer):
    schema = SCHEMAS[1]
    factory = JsonConstraintFactory(tokenizer, len(tokenizer))
    tr = factory.tracker(schema, [tokenizer.eos_token_id])
    need = tr.min_tokens()
    ids = []
    for left in range(need, 0, -1):  # always the longest-id token allowed: multi-byte tokens first
        if tr.state == ():
            break
        tid = int(np.flatnonzero(tr.allowed(left))[-1])
        tr.advance(tid)
        ids.append(tid)
    assert tr.state == () and len(ids) <= need
    jsonschema.validate(json.loads(tokenizer.decode(ids)), schema)


def test_min_text_is_valid_and_minimal_completion_consistent():
    for schema in SCHEMAS[1:]:
        g = compile_schema(schema)
        jsonschema.validate(json.loads(g.min_text(g.root)), schema)
        a = Automaton(g)
        state = a.initial()
        text = a.completion(state)
        for i, b in enumerate(text):  # following the completion shortens it byte by byte
            state = a.step(state, b)
            assert state is not None and a.completion(state) == text[i + 1:]


@pytest.mark.parametrize("schema, word", [
    ({"type": "string", "pattern": "a+"}, "pattern"),
    ({"type": "string", "format": "date"}, "format"),
    ({"anyOf": [{"type": "integer"}, {"type": "number"}]}, r"anyOf: alternatives 0 and 1 can both start with"),
    ({"oneOf": [{"type": "string"}, {"enum": ["a", 1]}]}, "oneOf: alternatives 0 and 1 can both start with '\"'"),
    ({"anyOf": []}, "non-empty list"),
    ({"$ref": "#/defs/x"}, "does not name a schema under"),
    ({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {
        "next": {"$ref": "#/$defs/Node"}}}}}, "recursive"),
    ({"type": ["string", "null"]}, "unsupported type"),
    ({"type": "integer", "minimum": 0}, "integer bounds"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, "required"),
    ({"type": "array"}, "items"),
    ({"type": "object", "properties": {"a": {"type": "tuple"}}}, "properties.a"),
])
def test_unsupported_schemas_are_refused_by_name(schema, word):
    with pytest.raises(SchemaError, match=word.replace("$", r"\$")):
        compile_schema(schema)


def test_a_keyword_beside_a_ref_is_refused():
    with pytest.raises(SchemaError, match=r"\['minLength'\] \(supported: \['\$ref'\]\)"):
        compile_schema({"$ref": "#/$defs/A", "minLength": 1, "$defs": {"A": {"type": "string"}}})
    g = compile_schema({"$ref": "#/$defs/A", "$defs": {"A": {"type": "string", "maxLength": 2}}})  # a root $ref
    assert g.nodes[g.root] == ("str", 0, 2, True)


def _pydantic_nested_schema():
    """What pydantic writes for nested models and optional fields: `$defs` + `$ref`, `anyOf: [X, null]`
    (the form OpenAI clients send)."""
    from typing import Literal

    import pydantic

    class Skill(pydantic.BaseModel):
        name: str = pydantic.Field(max_length=8)
        level: Literal["beginner", "advanced"]

    class Plan(pydantic.BaseModel):
        goal: str = pydantic.Field(max_length=10)
        skills: list[Skill] = pydantic.Field(min_length=1, max_length=3)
        best: Skill
        backup: Skill | None = None
        hours: int | None = None
        note: str | None = pydantic.Field(default=None, max_length=5)

    return Plan, Plan.model_json_schema()


def test_local_refs_compile_once_and_walks_validate(tokenizer):
    model, schema = _pydantic_nested_schema()
    assert "$defs" in schema and "$ref" in json.dumps(schema["properties"]) and "anyOf" in json.dumps(schema)
    g = compile_schema(schema)
    kinds = [node[0] for node in g.nodes]
    assert kinds.count("obj") == 2  # Plan and one shared Skill node, though Skill is referenced three times
    assert kinds.count("alt") == 3  # backup, hours, note: X or null
    for sch in (schema, {"anyOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "null"}]}):
        g2 = compile_schema(sch)
        jsonschema.validate(json.loads(g2.min_text(g2.root)), sch)  # the shortest alternative, valid
        a = Automaton(g2)
        state = a.initial()
        text = a.completion(state)
        for i, b in enumerate(text):  # following the completion shortens it byte by byte, through the choice
            state = a.step(state, b)
            assert state is not None and a.completion(state) == text[i + 1:]
    factory = JsonConstraintFactory(tokenizer, len(tokenizer))
    rng = np.random.default_rng(1)
    eos = tokenizer.eos_token_id
    nulls = set()
    for _ in range(40):
        tr = factory.tracker(schema, [eos])
        ids = []
        for left in range(tr.min_tokens() + int(rng.integers(0, 30)), 0, -1):
            if tr.state == ():
                break
            tid = int(rng.choice(np.flatnonzero(tr.allowed(left))))
            if tid == eos:
                break
            tr.advance(tid)
            ids.append(tid)
        doc = json.loads(tokenizer.decode(ids))
        jsonschema.validate(doc, schema)  # jsonschema resolves the $refs itself: an independent check
        model.model_validate(doc)
        nulls |= {(key, doc[key] is None) for key in ("backup", "hours", "note")}
    assert len(nulls) == 6  # every optional field was both null and a value in some walk


def test_vocab_without_ascii_bytes_is_refused():
    index = VocabIndex([b"a", b"{", None])
    assert 0x7D in index.missing_ascii
