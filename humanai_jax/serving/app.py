"""The HTTP layer: a FastAPI app over a `Scheduler` (OpenAI chat/completions, streaming as SSE).

Every request is validated (`protocol`), turned into a scheduler `Request` whose events (text deltas,
finishes) come back through an asyncio queue, and answered as one JSON body or as `data:` chunks
ending with `data: [DONE]`. A client that disconnects cancels its request (its rows are freed at the
next step). Errors always use OpenAI's body `{"error": {message, type, param, code}}`: 400 for any
invalid request (including malformed JSON and pydantic's 422s), 404 for an unknown model, 429 when
the queue is full, 503 while shutting down, 500 (never a crash) for anything unexpected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from humanai_jax.decoding.json_constraint import JsonConstraintFactory, SchemaError
from humanai_jax.decoding.text import chat_prompt_ids
from humanai_jax.serving import protocol as P
from humanai_jax.serving.scheduler import QueueFull, Request as SchedRequest, SamplingSpec, Scheduler, ShuttingDown


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, type_: str = "invalid_request_error",
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.type_, self.code = status, message, param, type_, code


def _error(status: int, message: str, param=None, type_="invalid_request_error", code=None) -> JSONResponse:
    return JSONResponse(P.error_body(message, type_, param, code), status_code=status)


def create_app(scheduler: Scheduler, model_name: str, *, drain_s: float = 10.0) -> FastAPI:
    tokenizer = scheduler.tokenizer
    json_factory: list[JsonConstraintFactory] = []
    factory_lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.get_running_loop().run_in_executor(None, scheduler.close, drain_s)

    app = FastAPI(title="humanai_jax serving", lifespan=lifespan)
    app.state.scheduler = scheduler

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        if first.get("type") == "json_invalid":
            return _error(400, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}")
        msg = first.get("msg", "invalid request")
        return _error(400, f"{'.'.join(loc) or 'body'}: {msg}", ".".join(loc) or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), type_="invalid_request_error" if exc.status_code < 500
                      else "server_error")

    @app.exception_handler(ApiError)
    async def _api(request, exc: ApiError):
        return _error(exc.status, exc.message, exc.param, exc.type_, exc.code)

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        return _error(500, f"internal error: {type(exc).__name__}: {exc}", type_="server_error")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name, **scheduler.load()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0,
                                            "owned_by": "humanai_jax"}]}

    def _check_model(name: str) -> None:
        if name != model_name:
            raise ApiError(404, f"The model `{name}` does not exist (this server serves `{model_name}`)", "model",
                           code="model_not_found")

    def _tracker_factory(rf: P.ResponseFormat | None, max_tokens: int):
        if rf is None or rf.type == "text":
            return None
        schema = rf.json_schema.schema_ if rf.type == "json_schema" else None
        with factory_lock:
            if not json_factory:
                json_factory.append(JsonConstraintFactory(tokenizer, scheduler.config.vocab_size))
            try:
                probe = json_factory[0].tracker(schema, scheduler.stop_ids)
            except SchemaError as e:
                raise ApiError(400, f"response_format: {e}", "response_format") from e
        if probe.min_tokens() > max_tokens:
            raise ApiError(400, f"max_tokens={max_tokens} is too small for the shortest valid JSON output "
                                f"({probe.min_tokens()} tokens)", "max_tokens")
        factory = json_factory[0]
        return lambda: factory.tracker(schema, scheduler.stop_ids)

    def _spec(body, prompt: list[int], logprobs: bool, top: int, rf=None) -> SamplingSpec:
        limit = scheduler.max_len
        if len(prompt) >= limit:
            raise ApiError(400, f"This model's maximum context length is {limit} tokens; the prompt has "
                                f"{len(prompt)} tokens", "messages" if hasattr(body, "messages") else "prompt",
                           code="context_length_exceeded")
        max_tokens = body.budget if body.budget is not None else limit - len(prompt)
        if len(prompt) + max_tokens > limit:
            raise ApiError(400, f"This model's maximum context length is {limit} tokens; the prompt has "
                                f"{len(prompt)} tokens and max_tokens is {max_tokens}", "max_tokens",
                           code="context_length_exceeded")
        return SamplingSpec(max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, seed=body.seed,
                            stop=body.stop or (), n=body.n, logprobs=logprobs, top_logprobs=top,
                            json_tracker_factory=_tracker_factory(rf, max_tokens))

    def _submit(prompt, spec, loop, queue) -> SchedRequest:
        emit = lambda events: loop.call_soon_threadsafe(queue.put_nowait, events)  # noqa: E731
        try:
            return scheduler.submit(SchedRequest(prompt, spec, tokenizer, emit))
        except QueueFull as e:
            raise ApiError(429, str(e), type_="rate_limit_error", code="queue_full") from e
        except ShuttingDown as e:
            raise ApiError(503, str(e), type_="server_error") from e
        except ValueError as e:
            raise ApiError(400, str(e)) from e

    def _token_text(tid: int) -> str:
        return tokenizer.decode([tid])

    def _chat_logprobs(infos):
        return {"content": [
            {"token": _token_text(i.token), "logprob": i.logprob, "bytes": list(_token_text(i.token).encode()),
             "top_logprobs": [{"token": _token_text(t), "logprob": v, "bytes": list(_token_text(t).encode())}
                              for t, v in i.top]} for i in infos]}

    def _completion_logprobs(infos):
        return {"tokens": [_token_text(i.token) for i in infos], "token_logprobs": [i.logprob for i in infos],
                "top_logprobs": [{_token_text(t): v for t, v in i.top} for i in infos], "text_offset": []}

    def _usage(req: SchedRequest) -> dict:
        c = req.completion_tokens
        return {"prompt_tokens": len(req.prompt), "completion_tokens": c, "total_tokens": len(req.prompt) + c}

    async def _run(http: Request, prompt, spec, chat: bool, stream: bool, include_usage: bool):
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        req = _submit(prompt, spec, loop, queue)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not stream:
            try:
                finished = 0
                while finished < spec.n:
                    try:
                        events = await asyncio.wait_for(queue.get(), timeout=1.0)
                    except TimeoutError:
                        if await http.is_disconnected():  # nobody will read the answer: free the rows
                            raise ApiError(499, "client disconnected") from None
                        continue
                    finished += sum(ev[0] == "finish" for ev in events)
            finally:
                if not req.done.is_set():
                    req.cancel()
            return _final_body(req, rid, created, chat)
        return StreamingResponse(_sse(http, req, queue, rid, created, chat, include_usage),
                                 media_type="text/event-stream")

    def _final_body(req: SchedRequest, rid: str, created: int, chat: bool) -> JSONResponse:
        bad = [s.finish_reason for s in req.seqs if s.finish_reason in ("error", "abort")]
        if bad:
            raise ApiError(503 if "abort" in bad else 500, f"generation ended with {bad[0]}", type_="server_error")
        choices = []
        for s in req.seqs:
            lp = None
            if req.spec.logprobs:
                lp = _chat_logprobs(s.infos) if chat else _completion_logprobs(s.infos)
            if chat:
                choices.append({"index": s.index, "message": {"role": "assistant", "content": s.text},
                                "logprobs": lp, "finish_reason": s.finish_reason})
            else:
                choices.append({"index": s.index, "text": s.text, "logprobs": lp, "finish_reason": s.finish_reason})
        return JSONResponse({"id": rid, "object": "chat.completion" if chat else "text_completion", "created": created,
                             "model": model_name, "choices": choices, "usage": _usage(req),
                             "system_fingerprint": f"seed-{req.seed}"})

    async def _sse(http: Request, req: SchedRequest, queue: asyncio.Queue, rid, created, chat, include_usage):
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices, usage=None):
            body = {"id": rid, "object": obj, "created": created, "model": model_name, "choices": choices}
            if usage is not None:
                body["usage"] = usage
            return f"data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n"

        try:
            if chat:
                yield chunk([{"index": j, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None} for j in range(req.spec.n)])
            finished = 0
            while finished < req.spec.n:
                try:
                    events = await asyncio.wait_for(queue.get(), timeout=1.0)
                except TimeoutError:
                    if await http.is_disconnected():
                        return
                    continue
                out = []  # one SSE chunk per token, written together
                for ev in events:
                    if ev[0] == "delta":
                        _, j, text, info = ev
                        lp = None
                        if info is not None:
                            lp = _chat_logprobs([info]) if chat else _completion_logprobs([info])
                        if chat:
                            out.append(chunk([{"index": j, "delta": {"content": text}, "logprobs": lp,
                                               "finish_reason": None}]))
                        else:
                            out.append(chunk([{"index": j, "text": text, "logprobs": lp, "finish_reason": None}]))
                        continue
                    _, j, reason = ev
                    finished += 1
                    if reason in ("error", "abort"):
                        err = P.error_body(f"generation ended with {reason}", "server_error")
                        out.append(f"data: {json.dumps(err)}\n\n")
                    elif chat:
                        out.append(chunk([{"index": j, "delta": {}, "logprobs": None, "finish_reason": reason}]))
                    else:
                        out.append(chunk([{"index": j, "text": "", "logprobs": None, "finish_reason": reason}]))
                if out:
                    yield "".join(out)
            if include_usage:
                yield chunk([], usage=_usage(req))
            yield "data: [DONE]\n\n"
        finally:
            if not req.done.is_set():
                req.cancel()

    @app.post("/v1/chat/completions")
    async def chat_completions(body: P.ChatCompletionRequest, http: Request):
        _check_model(body.model)
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
        try:
            prompt = chat_prompt_ids(tokenizer, messages)
        except Exception as e:  # noqa: BLE001 - a template error is the request's fault
            raise ApiError(400, f"messages: cannot apply the chat template: {e}", "messages") from e
        spec = _spec(body, prompt, body.logprobs, body.top_logprobs or 0, body.response_format)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await _run(http, prompt, spec, True, body.stream, include_usage)

    @app.post("/v1/completions")
    async def completions(body: P.CompletionRequest, http: Request):
        _check_model(body.model)
        if isinstance(body.prompt, str):
            prompt = list(tokenizer(body.prompt)["input_ids"])
        else:
            prompt = list(body.prompt)
            bad = [t for t in prompt if not 0 <= t < scheduler.config.vocab_size]
            if bad:
                raise ApiError(400, f"prompt: token ids outside [0, {scheduler.config.vocab_size}): {bad[:5]}",
                               "prompt")
        if not prompt:
            raise ApiError(400, "prompt: the prompt tokenizes to nothing", "prompt")
        logprobs = body.logprobs is not None
        spec = _spec(body, prompt, logprobs, body.logprobs or 0)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await _run(http, prompt, spec, False, body.stream, include_usage)

    return app


class ServerThread:
    """uvicorn serving `app` on host:port from a background thread (tests, benchmarks, notebooks).
    `with ServerThread(app) as s: s.base_url`; leaving the block shuts it down gracefully."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
        self.host, self.port = host, port
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=60)
