"""Chat backends: the OpenAI-compatible client against a real local HTTP server, scripted and
record/replay backends, and the structured-output ladder."""

import http.server
import json
import threading

import pydantic
import pytest

from humanai_jax.agents import (
    BackendError,
    GenConfig,
    OpenAICompatBackend,
    RecordingBackend,
    ReplayBackend,
    ScriptedBackend,
    StructuredOutputError,
    apply_stop,
    chat_json,
    chat_xml,
    extract_fields,
    extract_json,
    parse_xml_tags,
)
from humanai_jax.agents.backend import RetryPolicy


class _Server:
    """A tiny OpenAI-compatible server on 127.0.0.1. `plan` is a list of (status, body) replies served
    in order (the last repeats); every request body is recorded."""

    def __init__(self):
        self.plan: list[tuple[int, dict | str]] = []
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body})
                status, reply = outer.plan[min(len(outer.requests) - 1, len(outer.plan) - 1)]
                if callable(reply):
                    reply = reply(body)
                data = (json.dumps(reply) if isinstance(reply, dict) else reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(texts, finish="stop"):
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": i, "finish_reason": finish, "message": {"role": "assistant", "content": t}}
                        for i, t in enumerate(texts)],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}


def _echo(body):
    return _completion([body["messages"][-1]["content"].upper()])


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _backend(server, sleeps):
    return OpenAICompatBackend(server.url, "tiny", sleep=sleeps.append, timeout_s=10,
                               retry=RetryPolicy(max_tries=5, base_s=1.0, factor=2.0, cap_s=30.0))


def test_http_request_fields_and_stop(server):
    server.plan = [(200, _completion(["hello END world"]))]
    sleeps = []
    be = _backend(server, sleeps)
    cfg = GenConfig(temperature=0.3, top_p=0.9, max_tokens=7, stop=("END",), seed=11, repetition_penalty=1.05,
                    response_format="json")
    res = be.chat([{"role": "user", "content": "hi"}], cfg, tag="t")
    assert res.texts == ["hello "] and res.finish_reasons == ["stop"]
    assert res.usage == {"prompt_tokens": 5, "completion_tokens": 3}
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    body = req["body"]
    assert body["model"] == "tiny" and body["temperature"] == 0.3 and body["top_p"] == 0.9
    assert body["max_tokens"] == 7 and body["stop"] == ["END"] and body["seed"] == 11 and body["n"] == 1
    assert body["repetition_penalty"] == 1.05 and body["response_format"] == {"type": "json_object"}
    assert sleeps == []


def test_http_retries_429_and_5xx_then_succeeds(server):
    server.plan = [(429, {"error": "slow down"}), (503, {"error": "busy"}), (500, "oops"),
                   (200, _completion(["ok"]))]
    sleeps = []
    res = _backend(server, sleeps).chat([{"role": "user", "content": "hi"}], GenConfig())
    assert res.text == "ok"
    assert len(server.requests) == 4
    # full jitter: the k-th sleep lies in [0, min(30, 2**k)]
    assert len(sleeps) == 3 and all(0 <= s <= 2 ** k for k, s in enumerate(sleeps))


def test_http_gives_up_after_max_tries(server):
    server.plan = [(502, {"error": "bad gateway"})]
    sleeps = []
    with pytest.raises(BackendError, match="giving up after 5 tries"):
        _backend(server, sleeps).chat([{"role": "user", "content": "hi"}], GenConfig())
    assert len(server.requests) == 5 and len(sleeps) == 4


def test_http_400_is_not_retried_and_raises_with_body(server):
    server.plan = [(400, {"error": {"message": "max_tokens too large"}})]
    sleeps = []
    with pytest.raises(BackendError, match="max_tokens too large") as info:
        _backend(server, sleeps).chat([{"role": "user", "content": "hi"}], GenConfig())
    assert info.value.status == 400
    assert len(server.requests) == 1 and sleeps == []


def test_http_batch_keeps_order_and_isolates_failures(server):
    def reply(body):
        content = body["messages"][-1]["content"]
        return "{bad json" if content == "boom" else _completion([content.upper()])

    server.plan = [(200, reply)]
    be = _backend(server, [])
    be.max_concurrency = 4
    batch = [[{"role": "user", "content": c}] for c in ["a", "b", "boom", "d", "e", "f"]]
    results = be.chat_batch(batch, GenConfig(), tags=[f"t{i}" for i in range(6)])
    assert [r.texts for r in results if r.ok] == [["A"], ["B"], ["D"], ["E"], ["F"]]
    assert not results[2].ok and results[2].texts == []
    with pytest.raises(BackendError):
        results[2].text  # noqa: B018 (the property access is what raises)


def test_apply_stop_earliest_wins():
    assert apply_stop("abcSTOPdefEND", ("END", "STOP")) == ("abc", True)
    assert apply_stop("abc", ("x",)) == ("abc", False)
    assert apply_stop("abc", None) == ("abc", False)


def test_genconfig_rejects_bad_values():
    with pytest.raises(ValueError, match="temperature"):
        GenConfig(temperature=-1)
    with pytest.raises(ValueError, match="response_format"):
        GenConfig(response_format="xml")


def test_scripted_backend_rules_queue_strict_and_log():
    be = ScriptedBackend([
        ("judge", None, ["first", "second"]),
        ("gen.*", lambda m: "name" in m[-1]["content"], lambda m: m[-1]["content"][::-1]),
        ("gen.*", None, "default STOP tail"),
    ])
    msgs = lambda c: [{"role": "user", "content": c}]  # noqa: E731
    assert be.chat(msgs("x"), GenConfig(), tag="judge").text == "first"
    assert be.chat(msgs("my name"), GenConfig(), tag="gen.a").text == "eman ym"
    assert be.chat(msgs("x"), GenConfig(stop=("STOP",), n=2), tag="gen.b").texts == ["default ", "default "]
    assert [c.tag for c in be.calls] == ["judge", "gen.a", "gen.b"]
    with pytest.raises(BackendError, match="unused queued"):
        be.close()
    assert be.chat(msgs("x"), GenConfig(), tag="judge").text == "second"
    with pytest.raises(BackendError, match="no rule matches tag 'other'.*hello"):
        be.chat(msgs("hello"), GenConfig(), tag="other")
    be.close()


def test_record_then_replay(tmp_path):
    cassette = str(tmp_path / "c.jsonl")
    rec = RecordingBackend(ScriptedBackend([(".*", None, lambda m: "re:" + m[-1]["content"])]), cassette)
    cfg = GenConfig(temperature=0.5, seed=3)
    a = rec.chat([{"role": "user", "content": "one"}], cfg, tag="x")
    rec.chat_batch([[{"role": "user", "content": "two"}]], cfg)
    rep = ReplayBackend(cassette)
    assert rep.chat([{"role": "user", "content": "one"}], cfg).texts == a.texts == ["re:one"]
    assert rep.chat([{"role": "user", "content": "two"}], cfg).text == "re:two"
    with pytest.raises(BackendError, match="not in cassette"):
        rep.chat([{"role": "user", "content": "one"}], cfg.replace(seed=4))


@pytest.mark.parametrize("text,expected", [
    ('{"a": 1}', {"a": 1}),
    ('<think>{"no": 0}</think>```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
    ('json {"a": true}', {"a": True}),
    ('Sure! Here it is: {"a": "x"} hope that helps', {"a": "x"}),
    ("{'a': None, 'b': True}", {"a": None, "b": True}),
    ('{“结果”： “好”， “n”: 2}', {"结果": "好", "n": 2}),
    ('[{"summary": "s", "content": "c"}]', [{"summary": "s", "content": "c"}]),
])
def test_extract_json_ladder(text, expected):
    assert extract_json(text) == expected


def test_extract_json_fails_clearly_and_never_evals():
    with pytest.raises(ValueError, match="no JSON"):
        extract_json("no structure here")
    with pytest.raises(ValueError):
        extract_json("{__import__('os').getcwd(): 1}")


def test_extract_fields_fullwidth():
    text = '结果：{“结果”： “通过”， "score": 7, "解释": "ok\\"q"}'
    assert extract_fields(text, ["结果", "score", "解释", "missing"]) == {"结果": "通过", "score": "7",
                                                                       "解释": 'ok\\"q'}


def test_parse_xml_tags():
    text = "<data>\n<scenario> A walk. </scenario><QUESTION>Why?</QUESTION><answer>Because"
    assert parse_xml_tags(text, ["scenario", "question", "answer"]) == {
        "scenario": "A walk.", "question": "Why?", "answer": "Because"}
    with pytest.raises(ValueError, match="missing or empty tags \\['answer'\\]"):
        parse_xml_tags("<scenario>x</scenario><answer> </answer>", ["scenario", "answer"])


class _Skills(pydantic.BaseModel):
    skills: list[str]

    @pydantic.field_validator("skills")
    @classmethod
    def one_to_three(cls, v):
        if not 1 <= len(v) <= 3:
            raise ValueError("need 1-3 skills")
        return v


def test_chat_json_repairs_then_succeeds():
    be = ScriptedBackend([("sk", None, ["not json at all", '{"skills": []}', '{"skills": ["a"]}'])])
    obj, raws = chat_json(be, [{"role": "user", "content": "list skills"}], _Skills, tag="sk")
    assert obj.skills == ["a"] and len(raws) == 3
    # the second request quotes the parse error; the third quotes the validation error
    assert "no JSON value" in be.calls[1].messages[-1]["content"]
    assert "need 1-3 skills" in be.calls[2].messages[-1]["content"]
    assert be.calls[0].cfg.response_format["properties"]["skills"]["type"] == "array"
    be.close()


def test_chat_json_caps_attempts():
    be = ScriptedBackend([("sk", None, "nope")])
    with pytest.raises(StructuredOutputError) as info:
        chat_json(be, [{"role": "user", "content": "x"}], None, max_attempts=2, tag="sk")
    assert len(info.value.attempts) == 2 and len(be.calls) == 2 and info.value.tag == "sk"


def test_chat_xml_retries_on_missing_tag():
    be = ScriptedBackend([("q", None, ["<question>q</question>", "<question>q</question><answer>a</answer>"])])
    fields, raws = chat_xml(be, [{"role": "user", "content": "x"}], ["question", "answer"], tag="q")
    assert fields == {"question": "q", "answer": "a"} and len(raws) == 2
    be.close()
