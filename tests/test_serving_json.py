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
    ({"type": "array", "prefixItems": [{"type": "integer"}]}, "closed tuple"),  # further items allowed
    ({"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "string"}}, "closed tuple"),
    ({"type": "array", "prefixItems": [{"type": "integer"}], "items": False, "minItems": 0}, "closed tuple"),
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
    nulls = set()
    # slack up to 80 tokens: the budget counts the skeleton in tokens, so optional values need room beyond it
    for doc in _walk_docs(tokenizer, schema, 40, seed=1, slack=80):
        jsonschema.validate(doc, schema)  # jsonschema resolves the $refs itself: an independent check
        model.model_validate(doc)
        nulls |= {(key, doc[key] is None) for key in ("backup", "hours", "note")}
    assert len(nulls) == 6  # every optional field was both null and a value in some walk


def test_vocab_without_ascii_bytes_is_refused():
    index = VocabIndex([b"a", b"{", None])
    assert 0x7D in index.missing_ascii


def _ascii_vocab(*extra: bytes) -> list[bytes | None]:
    """Every printable ASCII byte as a token, plus `extra` multi-byte tokens and a stop token (None bytes)."""
    return [bytes([b]) for b in range(0x20, 0x7F)] + list(extra) + [None]


def _fewest_tokens(text: bytes, tokens: list[bytes | None]) -> int:
    """Brute force: the fewest vocabulary tokens that spell `text` (dynamic programming over prefixes)."""
    best = [0] + [10 ** 9] * len(text)
    for i in range(1, len(text) + 1):
        for t in tokens:
            if t and len(t) <= i and text[i - len(t):i] == t:
                best[i] = min(best[i], best[i - len(t)] + 1)
    return best[-1]


def test_token_budget_is_the_greedy_tokenization():
    tokens = _ascii_vocab(b'{"name":', b'"beginner"', b"name", b'":"')
    index = VocabIndex(tokens)
    # hand values: '{"name":' + '"' + 'a' + '"' + '}' and '"beginner"' + ',' + '"' + 'name' + '":"'
    assert index.count_tokens(b'{"name":"a"}') == 5
    assert index.count_tokens(b'"beginner","name":"') == 5
    rng = np.random.default_rng(0)
    pieces = [b'{"name":', b'"beginner"', b"name", b'":"', b"a", b"}", b'"', b","]
    for _ in range(200):  # never below the fewest tokens, never above one per byte
        text = b"".join(pieces[int(k)] for k in rng.integers(0, len(pieces), int(rng.integers(1, 12))))
        assert _fewest_tokens(text, tokens) <= index.count_tokens(text) <= len(text)


def test_budget_in_tokens_leaves_room_and_still_closes_every_document():
    schema = {"type": "object", "properties": {
        "learner_information": {"type": "string"}, "level": {"enum": ["beginner", "advanced"]},
        "skills": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 2}}}
    extra = [b'{"learner_information":"', b'","level":', b'"beginner"', b'"advanced"', b',"skills":["', b'"]}',
             b'","', b"ab", b"abc"]
    tokens = _ascii_vocab(*extra)
    stop = len(tokens) - 1
    g = compile_schema(schema)
    automaton, vocab = Automaton(g), VocabIndex(tokens)
    from humanai_jax.decoding.json_constraint import Tracker

    need = Tracker(automaton, vocab, [stop], {}).min_tokens()
    # by hand: '{"learner_information":"' '","level":' '"beginner"' ',"skills":["' 'a' '","' 'a' '"]}'
    assert need == _fewest_tokens(g.min_text(g.root), tokens) == 8 < len(g.min_text(g.root)) == 64
    rng = np.random.default_rng(0)
    for trial in range(100):  # random walks: every budget from the minimum up ends in a valid document
        tr = Tracker(automaton, vocab, [stop], {})
        budget = need + int(rng.integers(0, 12))
        ids = []
        for left in range(budget, 0, -1):
            if tr.state == ():
                break
            allowed = np.flatnonzero(tr.allowed(left))
            if trial % 2:  # half the walks take the longest token, to squeeze the budget
                tid = int(allowed[-1]) if allowed[-1] != stop or len(allowed) == 1 else int(allowed[-2])
            else:
                tid = int(rng.choice(allowed))
            if tid == stop:
                break
            tr.advance(tid)
            ids.append(tid)
        doc = json.loads(b"".join(tokens[i] for i in ids))
        jsonschema.validate(doc, schema)
        assert len(ids) <= budget


def test_closed_tuples_fix_each_position(tokenizer):
    """`prefixItems` + `items: false`: the document has exactly those positions, each under its own schema (the form
    an agent uses to make a reply cover given items once each, in order)."""
    names = ["SQL", "Data Visualization", "A/B Testing"]
    item = lambda n: {"type": "object", "properties": {"name": {"const": n}, "gap": {"type": "boolean"},
                                                       "level": {"enum": ["beginner", "advanced"]}}}
    schema = {"type": "object", "properties": {"gaps": {"type": "array", "prefixItems": [item(n) for n in names],
                                                         "items": False}}}
    empty = {"type": "array", "prefixItems": [], "items": False}
    assert compile_schema(empty).min_text(compile_schema(empty).root) == b"[]"
    g = compile_schema(schema)
    assert json.loads(g.min_text(g.root)) == {"gaps": [{"name": n, "gap": True, "level": "beginner"} for n in names]}
    seen = set()
    for doc in _walk_docs(tokenizer, schema, 30, seed=2, slack=20):
        jsonschema.validate(doc, schema)  # jsonschema's own prefixItems (draft 2020-12): an independent check
        assert [x["name"] for x in doc["gaps"]] == names
        seen |= {(x["gap"], x["level"]) for x in doc["gaps"]}
    assert len(seen) == 4  # the free fields really vary


def _walk_docs(tokenizer, schema, n, seed=0, slack=40):
    factory = JsonConstraintFactory(tokenizer, len(tokenizer))
    rng = np.random.default_rng(seed)
    eos = tokenizer.eos_token_id
    for _ in range(n):
        tr = factory.tracker(schema, [eos])
        ids = []
        for left in range(tr.min_tokens() + int(rng.integers(0, slack)), 0, -1):
            if tr.state == ():
                break
            tid = int(rng.choice(np.flatnonzero(tr.allowed(left))))
            if tid == eos:
                break
            tr.advance(tid)
            ids.append(tid)
        yield json.loads(tokenizer.decode(ids))


def test_alternatives_that_share_a_start_are_factored(tokenizer):
    """A discriminated union (objects that differ in a const property) and a field whose value decides another's
    (the gap identifier's rule: is_gap is true exactly when current_level is below the required level)."""
    def closed(**props):
        return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}

    union = {"oneOf": [  # closed alternatives: a document matches exactly one (an open oneOf is refused, below)
        closed(kind={"const": "cat"}, lives={"type": "integer"}),
        closed(kind={"const": "car"}, wheels={"type": "array", "maxItems": 2, "items": {"type": "boolean"}}),
        closed(kind={"const": "dog"}, name={"type": "string", "maxLength": 3})]}
    kinds = set()
    for doc in _walk_docs(tokenizer, union, 30):
        jsonschema.validate(doc, union)  # oneOf: exactly one alternative matches
        kinds.add(doc["kind"])
    assert kinds == {"cat", "car", "dog"}
    below = {"unlearned": True, "beginner": True, "intermediate": False, "advanced": False}  # required: intermediate
    gap = {"anyOf": [{"type": "object", "properties": {
        "name": {"const": "SQL"}, "current_level": {"const": level}, "is_gap": {"const": is_gap},
        "reason": {"type": "string", "maxLength": 4}}} for level, is_gap in below.items()]}
    levels = set()
    for doc in _walk_docs(tokenizer, gap, 40, seed=1):
        jsonschema.validate(doc, gap)
        assert doc["is_gap"] == below[doc["current_level"]]
        levels.add(doc["current_level"])
    assert levels == set(below)


@pytest.mark.parametrize("alternatives, why", [
    ([{"const": 1}, {"const": 12}], "one is a prefix of the other"),
    ([{"type": "object", "properties": {"a": {"const": "x"}}}] * 2, "are identical"),
    ([{"type": "object", "properties": {"a": {"type": "string"}}},
      {"type": "object", "properties": {"a": {"type": "string", "maxLength": 2}}}], "not at a literal byte"),
])
def test_alternatives_that_cannot_be_told_apart_at_a_byte_are_refused(alternatives, why):
    with pytest.raises(SchemaError, match=f"alternatives 0 and 1 can both start with .*{why}"):
        compile_schema({"anyOf": alternatives})


def test_canonical_document_is_what_the_automaton_writes():
    """`canonical_document`: a valid document rewritten in the decoder's form (compact, declared key order, absent
    optional properties filled) is accepted byte by byte and means the same; a document outside the schema: None."""
    from humanai_jax.decoding.json_constraint import canonical_document

    model, schema = _pydantic_nested_schema()
    doc = {"skills": [{"level": "advanced", "name": "Go"}], "goal": "ship", "best": {"name": "SQL", "level": "beginner"},
           "extra": 1}
    text = canonical_document(doc, schema)
    assert text == ('{"goal":"ship","skills":[{"name":"Go","level":"advanced"}],"best":{"name":"SQL","level":"beginner"},'
                    '"backup":null,"hours":null,"note":null}')
    assert _accepts(schema, text) and model.model_validate_json(text) == model.model_validate(doc)
    assert canonical_document({**doc, "best": {"name": "SQL", "level": "expert"}}, schema) is None
    assert canonical_document({"goal": "ship"}, schema) is None  # required properties missing



def test_an_open_oneof_is_not_factored():
    """Factored texts differ, but an open alternative also accepts another's text: jsonschema would see two matches."""
    opened = {"oneOf": [{"type": "object", "properties": {"a": {"type": "null"}}},
                        {"type": "object", "properties": {"a": {"type": "null"}, "t": {"const": 1}}}]}
    with pytest.raises(SchemaError, match="closed object alternatives"):
        compile_schema(opened)
    compile_schema({"anyOf": opened["oneOf"]})  # anyOf has no "exactly one" to keep


def _accepts(schema, text: str) -> bool:
    """Whether our decoder could write `text` byte by byte under `schema`."""
    return Automaton(compile_schema(schema)).accepts(text.encode())


@pytest.mark.parametrize("schema, texts", [  # found by review: one-byte fork branches, numbers or literals at the end
    ({"anyOf": [{"const": "a"}, {"const": "ab"}]}, ['"a"', '"ab"']),
    ({"anyOf": [{"const": ""}, {"const": "ab"}]}, ['""', '"ab"']),
    ({"anyOf": [{"type": "object", "properties": {"k": {"type": "number"}}},
                {"type": "object", "properties": {"k": {"type": "number"}, "m": {"type": "null"}}}]},
     ['{"k":1}', '{"k":1.5,"m":null}']),
    ({"anyOf": [{"type": "object", "properties": {}}, {"type": "object", "properties": {"a": {"type": "null"}}}]},
     ["{}", '{"a":null}']),
    ({"anyOf": [{"type": "array", "items": {"type": "null"}, "maxItems": 0},
                {"type": "array", "prefixItems": [{"const": 1}], "items": False}]}, ["[]", "[1]"]),
    ({"type": "object", "properties": {"n": {"anyOf": [{"enum": [1, 12]}, {"const": "a"}, {"const": "b"}]}}},
     ['{"n":1}', '{"n":12}', '{"n":"b"}']),
    ({"anyOf": [{"type": "number"}, {"const": "a"}, {"const": "b"}]}, ["5", "0.25", '"a"']),
    ({"anyOf": [{"enum": [1, 12]}, {"const": "a"}, {"const": "b"}]}, ["1", "12", '"b"']),
])
def test_factored_forks_accept_every_alternative_and_finish(schema, texts):
    for text in texts:
        jsonschema.validate(json.loads(text), schema)
        assert _accepts(schema, text), text
    tokens = _ascii_vocab(b'"a', b"ab", b'"}', b"12")
    stop = len(tokens) - 1
    automaton, vocab = Automaton(compile_schema(schema)), VocabIndex(tokens)
    from humanai_jax.decoding.json_constraint import Tracker

    rng = np.random.default_rng(0)
    for _ in range(30):  # every walk from the minimum budget up ends in a valid document: no empty mask
        tr = Tracker(automaton, vocab, [stop], {})
        ids, budget = [], tr.min_tokens() + 1 + int(rng.integers(0, 6))
        for left in range(budget, 0, -1):
            allowed = np.flatnonzero(tr.allowed(left))
            assert allowed.size
            tid = int(rng.choice(allowed))
            if tid == stop:
                break
            tr.advance(tid)
            ids.append(tid)
        jsonschema.validate(json.loads(b"".join(tokens[i] for i in ids)), schema)


def test_canonical_document_refuses_what_the_decoder_cannot_write():
    from humanai_jax.decoding.json_constraint import canonical_document

    assert canonical_document(True, {"enum": [1, 2]}) is None  # True == 1 in Python, not in JSON
    assert canonical_document(9, {"type": "integer", "minimum": 0, "maximum": 5}) is None
    assert canonical_document(1e-7, {"type": "number"}) is None  # no exponents
    assert canonical_document('say "hi"', {"type": "string", "maxLength": 20}) is None  # length-limited: no escapes
    assert canonical_document({"a": None}, {"anyOf": [{"type": "object", "properties": {}},
                                                      {"type": "object", "properties": {"a": {"type": "null"}}}]}) \
        == '{"a":null}'  # the alternative that keeps every key
    nested = {"type": "object", "properties": {"a": {"type": "object", "properties": {
        "x": {"type": "integer"}, "y": {"type": "integer"}}, "default": {"y": 1, "x": 2}}}}
    assert canonical_document({}, nested) == '{"a":{"x":2,"y":1}}'  # a default in declared order too


def test_schemas_that_differ_only_in_property_order_are_different_grammars(tokenizer):
    factory = JsonConstraintFactory(tokenizer, len(tokenizer))
    ab = {"type": "object", "properties": {"a": {"const": 1}, "b": {"const": 2}}}
    ba = {"type": "object", "properties": {"b": {"const": 2}, "a": {"const": 1}}}
    texts = []
    for schema in (ab, ba):
        tr = factory.tracker(schema, [tokenizer.eos_token_id])
        ids = []
        while tr.state != ():
            tid = int(np.flatnonzero(tr.allowed(64))[0])
            tr.advance(tid)
            ids.append(tid)
        texts.append(tokenizer.decode(ids))
    assert texts == ['{"a":1,"b":2}', '{"b":2,"a":1}']
