"""One backend test suite, run against `JaxChatBackend` (in-process engine) and `OpenAICompatBackend`
(HTTP, our server on loopback) over the same tiny checkpoint: both must satisfy the ChatBackend rules
(agents/backend.py) and, since they decode with the same keys, give the same texts."""

import json

import pytest

jsonschema = pytest.importorskip("jsonschema")

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from humanai_jax.agents.backend import GenConfig, OpenAICompatBackend
from humanai_jax.agents.jax_backend import JaxChatBackend
from humanai_jax.serving.app import ServerThread, create_app
from humanai_jax.serving.loading import load_model, make_tiny_checkpoint
from humanai_jax.serving.scheduler import Scheduler

CONVS = [
    [{"role": "user", "content": "Recommend three movies like Alien, please."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "The quick brown fox?"}],
    [{"role": "user", "content": "Crème brûlée 🙂"}],
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_model(make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), n_layers=1), name="tiny")


@pytest.fixture(scope="module")
def backends(tiny):
    sched = Scheduler(tiny.params, tiny.config, tiny.tokenizer, tiny.stop_ids, rows=8, max_len=256, chunk=16)
    jax_backend = JaxChatBackend(tiny.params, tiny.config, tiny.tokenizer, max_batch=8, checkpoint_dir=tiny.path)
    with ServerThread(create_app(sched, "tiny")) as srv:
        yield {"jax": jax_backend, "http": OpenAICompatBackend(srv.base_url, "tiny", max_concurrency=4)}
    jax_backend.close()


@pytest.fixture(params=["jax", "http"])
def backend(request, backends):
    return backends[request.param]


def test_greedy_is_deterministic_and_n_copies_agree(backend):
    cfg = GenConfig(temperature=0.0, max_tokens=16, n=3)
    a = backend.chat(CONVS[0], cfg)
    assert len(a.texts) == 3 and len(set(a.texts)) == 1
    assert a.finish_reasons[0] in ("stop", "length")
    assert backend.chat(CONVS[0], cfg).texts == a.texts
    assert a.usage["completion_tokens"] in (3 * 16, ) or a.finish_reasons[0] == "stop"


def test_seed_reproduces_and_changes_samples(backend):
    cfg = GenConfig(temperature=1.0, top_p=0.9, max_tokens=12, n=3, seed=11)
    a, b = backend.chat(CONVS[1], cfg), backend.chat(CONVS[1], cfg)
    assert a.texts == b.texts and len(set(a.texts)) > 1
    assert backend.chat(CONVS[1], cfg.replace(seed=12)).texts != a.texts


def test_stop_string_cuts_before_it(backend):
    full = backend.chat(CONVS[0], GenConfig(temperature=0.0, max_tokens=24)).text
    assert len(full) >= 4
    stop = full[2:4]
    cut = backend.chat(CONVS[0], GenConfig(temperature=0.0, max_tokens=24, stop=(stop,)))
    assert cut.text == full[:full.find(stop)] and cut.finish_reasons == ["stop"]


def test_batch_keeps_order_and_counts_prompt_tokens(backend, tiny):
    from humanai_jax.decoding.text import chat_prompt_ids

    cfg = GenConfig(temperature=0.0, max_tokens=8)
    out = backend.chat_batch(CONVS, cfg)
    assert [r.text for r in out] == [backend.chat(c, cfg).text for c in CONVS]
    assert [r.usage["prompt_tokens"] for r in out] == [len(chat_prompt_ids(tiny.tokenizer, c)) for c in CONVS]


def test_both_backends_give_the_same_texts(backends):
    greedy = GenConfig(temperature=0.0, max_tokens=20)
    sampled = GenConfig(temperature=0.8, max_tokens=20, n=2, seed=3)
    # Both key choice j of every conversation with fold_in(seed, j): a sampled batch equals its calls one by one.
    pairs = [(backends["jax"].chat_batch(CONVS, greedy), backends["http"].chat_batch(CONVS, greedy)),
             (backends["jax"].chat_batch(CONVS, sampled), [backends["http"].chat(c, sampled) for c in CONVS]),
             ([backends["jax"].chat(c, sampled) for c in CONVS], backends["http"].chat_batch(CONVS, sampled))]
    for jax_out, http_out in pairs:
        assert [r.texts for r in jax_out] == [r.texts for r in http_out]
        assert [r.finish_reasons for r in jax_out] == [r.finish_reasons for r in http_out]
        assert [r.usage["completion_tokens"] for r in jax_out] == [r.usage["completion_tokens"] for r in http_out]


def test_http_backend_json_schema_is_enforced(backends):
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
              "required": ["title", "year"]}
    res = backends["http"].chat(CONVS[0], GenConfig(temperature=1.0, max_tokens=40, n=4, seed=0,
                                                    response_format=schema))
    for t in res.texts:
        jsonschema.validate(json.loads(t), schema)
    obj = backends["http"].chat(CONVS[0], GenConfig(temperature=1.0, max_tokens=30, seed=1, response_format="json"))
    assert isinstance(json.loads(obj.text), dict)


def test_in_process_backend_enforces_the_schema_like_the_server(backends):
    """JaxChatBackend decodes a `response_format` request on the server's path (an in-process Scheduler with
    JSON masks): every text validates, a pydantic-style schema ($defs/$ref, Optional) included, the call is
    reproducible, and an impossible budget or an unsupported schema is refused."""
    from humanai_jax.decoding.json_constraint import SchemaError

    schema = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 12}, "year": {"type": "integer"},
                                               "alt": {"anyOf": [{"$ref": "#/$defs/Ref"}, {"type": "null"}]}},
              "required": ["title", "year", "alt"],
              "$defs": {"Ref": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}}}
    cfg = GenConfig(temperature=1.0, max_tokens=60, n=3, seed=0, response_format=schema)
    jax_be = backends["jax"]
    first = jax_be.chat_batch(CONVS, cfg)
    assert [r.texts for r in first] == [r.texts for r in jax_be.chat_batch(CONVS, cfg)]
    for result in first:
        for text in result.texts:
            jsonschema.validate(json.loads(text), schema)
    objects = jax_be.chat(CONVS[0], GenConfig(temperature=1.0, max_tokens=20, n=4, seed=1, response_format="json"))
    assert all(isinstance(json.loads(t), dict) for t in objects.texts)
    with pytest.raises(ValueError, match="too small for the shortest valid JSON output"):
        jax_be.chat(CONVS[0], GenConfig(max_tokens=3, response_format=schema))
    with pytest.raises(SchemaError, match="pattern"):
        jax_be.chat(CONVS[0], GenConfig(max_tokens=30, response_format={"type": "string", "pattern": "a+"}))
    assert [r.texts for r in first] == [r.texts for r in backends["http"].chat_batch(CONVS, cfg)]  # the server's texts


def test_in_process_backend_decodes_a_factored_schema(backends):
    """A schema whose alternatives share a start (GenMentor's gap list: one alternative per current level, is_gap
    fixed by it) decodes on the model: at temperature 1 every text covers the items in order and keeps the rule."""
    levels = {"unlearned": 0, "beginner": 1, "intermediate": 2}
    item = lambda name: {"anyOf": [{"type": "object", "properties": {  # noqa: E731
        "name": {"const": name}, "is_gap": {"const": rank < 2}, "current_level": {"const": level}}}
        for level, rank in levels.items()]}
    schema = {"type": "object", "properties": {"gaps": {"type": "array", "prefixItems": [item("SQL"), item("Go")],
                                                        "items": False}}}
    out = backends["jax"].chat(CONVS[0], GenConfig(temperature=1.0, max_tokens=160, n=6, seed=3, response_format=schema))
    seen = set()
    for text in out.texts:
        doc = json.loads(text)
        jsonschema.validate(doc, schema)
        assert [g["name"] for g in doc["gaps"]] == ["SQL", "Go"]
        assert all(g["is_gap"] == (levels[g["current_level"]] < 2) for g in doc["gaps"])
        seen |= {g["current_level"] for g in doc["gaps"]}
    assert len(seen) >= 2
