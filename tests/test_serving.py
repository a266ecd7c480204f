"""The OpenAI-compatible server, checked with the real `openai` client over loopback: outputs equal the
engine's `decoding.generate` token for token, streaming, n > 1, stop, seeds, logprobs, JSON schemas,
error bodies, cancellation, chunked prefill, back-pressure, shutdown and a concurrent load test."""

import concurrent.futures
import json
import threading
import time
import urllib.error
import urllib.request

import jax
import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema")

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from humanai_jax.decoding import generate
from humanai_jax.decoding.text import chat_prompt_ids
from humanai_jax.serving.app import ServerThread, create_app
from humanai_jax.serving.loading import load_model, make_tiny_checkpoint
from humanai_jax.serving.scheduler import QueueFull, Request, SamplingSpec, Scheduler, ShuttingDown, seed_key_data

MODEL = "tiny"
USER = [{"role": "user", "content": "Recommend three movies like Alien, please."}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_model(make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), n_layers=1), name=MODEL)


@pytest.fixture(scope="module")
def server(tiny):
    sched = Scheduler(tiny.params, tiny.config, tiny.tokenizer, tiny.stop_ids, rows=8, max_len=256, chunk=16,
                      multi_step=4, max_waiting=128)
    with ServerThread(create_app(sched, MODEL)) as srv:
        srv.scheduler = sched
        srv.client = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="EMPTY", max_retries=0, timeout=120)
        yield srv


def _post(url: str, body: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body.encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _reference(tiny, messages_list, max_tokens, **kw):
    """Engine output (the in-process batch `generate`) per conversation: token lists, stop kept."""
    prompts = [chat_prompt_ids(tiny.tokenizer, m) for m in messages_list]
    toks, lens = generate(tiny.params, tiny.config, prompts, max_new_tokens=max_tokens, stop_token_ids=tiny.stop_ids,
                          **kw)
    return [t[:n].tolist() for t, n in zip(np.asarray(toks), np.asarray(lens))]


def _text(tiny, tokens):
    return tiny.tokenizer.decode([t for t in tokens if t not in tiny.stop_ids], skip_special_tokens=True)


def test_seed_key_data_matches_jax():
    for seed in (0, 7, 2**31 - 1, 2**31, 2**40 + 3, -1):
        assert np.array_equal(seed_key_data(seed), np.asarray(jax.random.PRNGKey(seed)))


def test_greedy_chat_equals_engine_generate_token_for_token(server, tiny):
    convs = [USER, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
             [{"role": "user", "content": "x " * 60}]]  # 120+ tokens: several prefill chunks of 16
    ref = _reference(tiny, convs, 24)
    # Tokens straight from the scheduler, all three batched together.
    reqs = [server.scheduler.submit(Request(chat_prompt_ids(tiny.tokenizer, c), SamplingSpec(24, temperature=0.0),
                                            tiny.tokenizer)) for c in convs]
    for r, want in zip(reqs, ref):
        assert r.done.wait(60)
        assert r.seqs[0].tokens == want
    # And the text and usage through HTTP.
    for conv, want in zip(convs, ref):
        resp = server.client.chat.completions.create(model=MODEL, messages=conv, max_tokens=24, temperature=0)
        assert resp.choices[0].message.content == _text(tiny, want)
        assert resp.usage.completion_tokens == len(want)
        assert resp.usage.prompt_tokens == len(chat_prompt_ids(tiny.tokenizer, conv))
        assert resp.choices[0].finish_reason == ("stop" if want[-1] in tiny.stop_ids else "length")


def test_seeded_sampling_is_reproducible_and_equals_engine(server, tiny):
    kw = dict(model=MODEL, messages=USER, max_tokens=16, temperature=0.9, top_p=0.95, n=3, seed=1234)
    a = server.client.chat.completions.create(**kw)
    # The same seed again, now while other requests share the batch.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        noise = [pool.submit(server.client.chat.completions.create, model=MODEL, messages=USER, max_tokens=16,
                             temperature=1.0, seed=i) for i in range(3)]
        b = server.client.chat.completions.create(**kw)
        [f.result() for f in noise]
    texts = [c.message.content for c in a.choices]
    assert texts == [c.message.content for c in b.choices]
    assert len(set(texts)) > 1  # n choices sample independently
    ref = _reference(tiny, [USER] * 3, 16, temperature=0.9, top_p=0.95, rng=jax.random.PRNGKey(1234))
    assert texts == [_text(tiny, t) for t in ref]
    c = server.client.chat.completions.create(**{**kw, "seed": 99})
    assert [x.message.content for x in c.choices] != texts


def test_stream_matches_non_stream_and_ends_with_done(server, tiny):
    kw = dict(model=MODEL, messages=USER, max_tokens=20, temperature=0)
    full = server.client.chat.completions.create(**kw)
    chunks = list(server.client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        full.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    many = dict(model=MODEL, messages=USER, max_tokens=12, temperature=1.0, n=3, seed=8)
    texts = [""] * 3
    for c in server.client.chat.completions.create(**many, stream=True):
        for ch in c.choices:
            texts[ch.index] += ch.delta.content or ""
    assert texts == [c.message.content for c in server.client.chat.completions.create(**many).choices]
    req = urllib.request.Request(server.base_url + "/v1/completions", headers={"content-type": "application/json"},
                                 data=json.dumps({"model": MODEL, "prompt": "The quick", "max_tokens": 5,
                                                  "stream": True}).encode())
    with urllib.request.urlopen(req, timeout=60) as r:
        lines = [x for x in r.read().decode().split("\n") if x]
    assert all(x.startswith("data: ") for x in lines) and lines[-1] == "data: [DONE]"
    assert all(json.loads(x[6:])["object"] == "text_completion" for x in lines[:-1])


def test_stop_strings_cut_output(server, tiny):
    base = server.client.completions.create(model=MODEL, prompt="The quick brown", max_tokens=30, temperature=0)
    text = base.choices[0].text
    assert len(text) > 6
    stop = text[3:5]
    cut = server.client.completions.create(model=MODEL, prompt="The quick brown", max_tokens=30, temperature=0,
                                           stop=[stop, "\x00never"])
    assert cut.choices[0].text == text[:text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    chunks = list(server.client.completions.create(model=MODEL, prompt="The quick brown", max_tokens=30,
                                                   temperature=0, stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == cut.choices[0].text


def test_logprobs_are_the_models(server, tiny):
    resp = server.client.chat.completions.create(model=MODEL, messages=USER, max_tokens=8, temperature=0,
                                                 logprobs=True, top_logprobs=3)
    content = resp.choices[0].logprobs.content
    assert len(content) == resp.usage.completion_tokens
    prompt = chat_prompt_ids(tiny.tokenizer, USER)
    toks = _reference(tiny, [USER], 8)[0]
    from humanai_jax.backbone import forward

    logits = forward(tiny.params, jax.numpy.asarray([prompt + toks]), tiny.config)
    logp = np.asarray(jax.nn.log_softmax(logits[0, len(prompt) - 1:-1], axis=-1))
    for i, item in enumerate(content):
        assert item.logprob == pytest.approx(float(logp[i, toks[i]]), abs=1e-3)
        tops = [t.logprob for t in item.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True)
        assert tops[0] == pytest.approx(item.logprob, abs=1e-5)  # greedy: the chosen token is the top one


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "x": {"type": "number"},
        "g": {"enum": ["sci-fi", "drama", None, 3]},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "m": {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": "array", "items": {
            "type": "number"}, "minItems": 1}}, "required": ["id"]},
    },
    "required": ["name", "age", "g"],
    "additionalProperties": False,
}


def test_json_schema_outputs_always_parse_and_validate(server):
    rf = {"type": "json_schema", "json_schema": {"name": "review", "schema": SCHEMA}}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(server.client.chat.completions.create, model=MODEL, messages=USER, temperature=1.0,
                            max_tokens=int(m), n=2, seed=s, response_format=rf)
                for s, m in zip(range(24), np.linspace(75, 120, 24))]
        outs = [c.message.content for f in futs for c in f.result().choices]
    assert len(outs) == 48
    for text in outs:
        jsonschema.validate(json.loads(text), SCHEMA)
    objs = server.client.chat.completions.create(model=MODEL, messages=USER, temperature=1.0, max_tokens=30, n=8,
                                                 seed=5, response_format={"type": "json_object"})
    for c in objs.choices:
        assert isinstance(json.loads(c.message.content), dict)


def test_pydantic_response_format_with_nested_models(server):
    """The openai client's `parse(response_format=Model)` sends pydantic's strict schema, nested models as
    `$defs` + `$ref` and optional fields as `anyOf: [X, null]`: the server constrains to it and the client
    parses every reply back into the model."""
    from typing import Literal

    import pydantic

    class Skill(pydantic.BaseModel):
        name: str
        level: Literal["beginner", "advanced"]

    class Plan(pydantic.BaseModel):
        skills: list[Skill]
        best: Skill
        backup: Skill | None

    for seed in range(4):
        out = server.client.chat.completions.parse(model=MODEL, messages=USER, temperature=1.0, max_tokens=140,
                                                   seed=seed, response_format=Plan)
        plan = out.choices[0].message.parsed
        assert isinstance(plan, Plan) and isinstance(plan.best, Skill)


@pytest.mark.parametrize("body, status, param", [
    ('{"model": "tiny", "messages": [', 400, None),  # malformed JSON
    ('{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "temprature": 1}', 400, "temprature"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": 5}]}', 400, "messages.0.content"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "n": 0}', 400, "n"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "n": 17}', 400, "n"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "max_tokens": 0}', 400, "max_tokens"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "max_tokens": 250}', 400, "max_tokens"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "' + "word " * 300 + '"}]}', 400, "messages"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "temperature": -1}', 400, "temperature"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "top_logprobs": 2}', 400, None),
    ('{"model": "other", "messages": [{"role": "user", "content": "a"}]}', 404, "model"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "response_format": {"type": "json_schema",'
     ' "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a+"}}}}', 400, "response_format"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "max_tokens": 3, "response_format": '
     '{"type": "json_schema", "json_schema": {"name": "x", "schema": ' + json.dumps(SCHEMA) + '}}}', 400, "max_tokens"),
    ('[1, 2]', 400, None),
])
def test_invalid_requests_get_openai_error_bodies(server, body, status, param):
    code, resp = _post(server.base_url + "/v1/chat/completions", body)
    assert code == status, resp
    assert set(resp) == {"error"} and set(resp["error"]) == {"message", "type", "param", "code"}
    assert resp["error"]["message"]
    if param is not None:
        assert resp["error"]["param"] == param
    assert _post(server.base_url + "/v1/completions", '{"model": "tiny", "prompt": [999999]}')[0] == 400
    ok = server.client.completions.create(model=MODEL, prompt="hi", max_tokens=2)  # still serving
    assert ok.usage.completion_tokens >= 1


def test_openai_client_raises_bad_request(server):
    with pytest.raises(openai.BadRequestError) as e:
        server.client.chat.completions.create(model=MODEL, messages=USER, max_tokens=100000)
    assert e.value.status_code == 400 and "context length" in str(e.value)
    models = server.client.models.list()
    assert [m.id for m in models.data] == [MODEL]


def test_disconnect_cancels_the_row(server):
    sched = server.scheduler
    before = sched.load()["tokens"]
    stream = server.client.chat.completions.create(model=MODEL, messages=USER, max_tokens=200, temperature=0.0,
                                                   stream=True, seed=1)
    got = 0
    for _ in stream:
        got += 1
        if got == 4:
            break
    stream.close()
    deadline = time.monotonic() + 20
    while sched.load()["busy_rows"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sched.load()["busy_rows"] == 0
    assert sched.load()["tokens"] - before < 200  # it did not run to max_tokens


def test_long_prefill_does_not_stall_running_requests(server, tiny):
    sched = server.scheduler
    times: list[float] = []
    runner = sched.submit(Request([5, 6, 7], SamplingSpec(80, temperature=0.0), tiny.tokenizer,
                                  emit=lambda evs: times.extend(time.perf_counter() for e in evs if e[0] == "delta")))
    while len(times) < 3:
        time.sleep(0.005)
    t_submit = time.perf_counter()
    long = sched.generate([9] * 200, SamplingSpec(2, temperature=0.0), timeout=60)  # 13 chunks of 16
    assert runner.done.wait(60)
    during = [t for t in times if t_submit < t < long.first_token_at]
    assert len(during) >= 5, (len(during), sched.load())


def test_queue_full_is_429_and_shutdown_drains(tiny):
    # Same shapes as the module's server, so the jitted steps are reused (no compile).
    sched = Scheduler(tiny.params, tiny.config, tiny.tokenizer, tiny.stop_ids, rows=8, max_len=256, chunk=16,
                      max_waiting=2)
    spec = SamplingSpec(30, temperature=0.0)
    sched.pause()  # nothing is admitted: requests stay queued
    accepted = [sched.submit(Request([5, 6 + i], spec, tiny.tokenizer)) for i in range(2)]
    with pytest.raises(QueueFull):
        sched.submit(Request([5, 6], spec, tiny.tokenizer))
    with ServerThread(create_app(sched, MODEL)) as srv:
        code, body = _post(srv.base_url + "/v1/completions", '{"model": "tiny", "prompt": "a", "max_tokens": 3}')
        assert code == 429 and body["error"]["type"] == "rate_limit_error"
        assert sched.load()["waiting"] == 2
    # Leaving the server ran the lifespan shutdown (which resumes the loop): the accepted requests
    # finished, new ones are refused.
    for r in accepted:
        assert r.done.is_set() and r.seqs[0].finish_reason in ("stop", "length") and r.seqs[0].tokens
    with pytest.raises(ShuttingDown):
        sched.submit(Request([5], SamplingSpec(3), tiny.tokenizer))


def _load_test(server, clients: int, max_tokens: int, timeout_s: float):
    def one(i):
        stream = server.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"request {i}"}], max_tokens=max_tokens,
            temperature=1.0, seed=i, stream=True, stream_options={"include_usage": True})
        text, reason, usage = "", None, None
        for c in stream:
            if c.choices:
                text += c.choices[0].delta.content or ""
                reason = c.choices[0].finish_reason or reason
            if c.usage:
                usage = c.usage
        return i, text, reason, usage.completion_tokens

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(clients)))
    elapsed = time.perf_counter() - t0
    assert elapsed < timeout_s
    assert sorted(r[0] for r in results) == list(range(clients))  # none lost
    # Each stream's token count equals the same request decoded alone, by the scheduler directly.
    for i, text, reason, n in results[:: max(1, clients // 8)]:
        prompt = chat_prompt_ids(server.scheduler.tokenizer, [{"role": "user", "content": f"request {i}"}])
        alone = server.scheduler.generate(prompt, SamplingSpec(max_tokens, temperature=1.0, seed=i), timeout=60)
        assert (n, text, reason) == (len(alone.seqs[0].tokens), alone.seqs[0].text, alone.seqs[0].finish_reason)
    for _, _, reason, n in results:
        assert 1 <= n <= max_tokens and reason in ("stop", "length")
        assert reason == "stop" or n == max_tokens


def test_load_short_32_concurrent_streams(server):
    _load_test(server, clients=32, max_tokens=8, timeout_s=60)


@pytest.mark.slow
def test_load_100_concurrent_streams(server):
    _load_test(server, clients=100, max_tokens=32, timeout_s=300)


def test_concurrent_threads_never_crash_the_server(server):
    """Mixed valid and invalid requests at once; the server answers all and stays healthy."""
    bodies = ['{"model": "tiny", "prompt": "a", "max_tokens": 3}', '{"model": "tiny", "prompt": 3}',
              '{"model": "tiny"', '{"model": "tiny", "prompt": "a", "max_tokens": 3, "n": 2, "logprobs": 2}']
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda b: _post(server.base_url + "/v1/completions", b)[0], bodies * 4))
    assert codes == [200, 400, 400, 200] * 4
    with urllib.request.urlopen(server.base_url + "/health", timeout=10) as r:
        assert json.loads(r.read())["status"] == "ok"
    assert threading.active_count() < 200
