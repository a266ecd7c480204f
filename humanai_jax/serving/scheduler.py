"""Continuous batching: one background thread drives `R` KV-cache rows; requests join and leave
between decode steps.

Loop (one iteration):
  1. drop cancelled sequences (client gone) and free their rows;
  2. admit waiting sequences into free rows (FIFO);
  3. prefill: one chunk of `C` prompt tokens for every prefilling row, in one batched call, while
     others decode (a long prompt never stalls running requests for more than one chunk per step);
     all chunks back to back when nothing is decoding;
  4. decode every active row: `n_steps` tokens per device call (`multi_step` when no row needs a
     host-computed JSON mask and nobody waits for a row, else 1), then hand the tokens to their
     requests (detokenize, stop strings, logprobs, JSON tracker) and retire finished rows.

Per-request randomness: choice j of a request with seed s samples with the engine's key
`fold_in(fold_in(key(s), j), step)`, so its output does not depend on what else is batched.
Back-pressure: at most `max_waiting` requests queue for rows (`QueueFull` -> HTTP 429).
Shutdown: `close(drain_s)` refuses new requests (`ShuttingDown` -> HTTP 503), lets accepted ones
(running or queued) finish for up to `drain_s`, then aborts the rest (finish_reason "abort").
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax.backbone.transformer import unstack_layers
from humanai_jax.decoding.text import IncrementalDetokenizer
from humanai_jax.serving import model as M

MAX_STOP_IDS = 8


def prefill_bucket_max(rows: int) -> int:
    """Most rows one prefill call takes (the largest bucket)."""
    return M.prefill_bucket(rows, rows)


class QueueFull(RuntimeError):
    """Too many requests wait for a row (HTTP 429)."""


class ShuttingDown(RuntimeError):
    """The scheduler no longer admits requests (HTTP 503)."""


def seed_key_data(seed: int) -> np.ndarray:
    """`jax.random.PRNGKey(seed)` (threefry, 32-bit JAX: the seed is taken mod 2**32), on the host."""
    return np.array([0, int(seed) & 0xFFFFFFFF], np.uint32)


@dataclasses.dataclass
class SamplingSpec:
    """One request's decoding settings (validated by the protocol layer)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    json_tracker_factory: Callable[[], object] | None = None  # a new decoding.json_constraint.Tracker


@dataclasses.dataclass
class TokenInfo:
    token: int
    logprob: float
    top: list[tuple[int, float]]


class Seq:
    """One choice of a request: its row, tokens, text and finish state (scheduler thread writes)."""

    def __init__(self, req: Request, index: int, tokenizer):
        self.req = req
        self.index = index
        self.row = -1
        self.prefilled = 0  # prompt tokens (of prompt[:-1]) already in the cache
        self.tokens: list[int] = []
        self.infos: list[TokenInfo] = []
        self.text = ""  # text released so far (after stop-string handling)
        self.finish_reason: str | None = None
        self.detok = IncrementalDetokenizer(tokenizer, skip_special_tokens=True)
        self.pending = ""  # decoded text held back: it might begin a stop string
        self.tracker = req.spec.json_tracker_factory() if req.spec.json_tracker_factory else None


class Request:
    """A submitted request. `emit(events)` is called from the scheduler thread with a list of events,
    ("delta", choice, text, TokenInfo | None) and ("finish", choice, reason), once per device call
    (one wake-up of the consumer per step, not per token); `done` is set when every choice finished.
    `cancel()` may be called from any thread."""

    _ids = itertools.count()

    def __init__(self, prompt: Sequence[int], spec: SamplingSpec, tokenizer, emit: Callable | None = None):
        self.id = next(self._ids)
        self.prompt = [int(t) for t in prompt]
        self.spec = spec
        self.emit = emit or (lambda events: None)
        self.outbox: list[tuple] = []  # events of the current step, flushed by the scheduler
        self.seed = spec.seed
        self.seqs = [Seq(self, j, tokenizer) for j in range(spec.n)]
        self.done = threading.Event()
        self.cancelled = False
        self.created = time.perf_counter()
        self.first_token_at: float | None = None

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def completion_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.seqs)


class Scheduler:
    """Args: params, ModelConfig, tokenizer, stop_ids (end-of-sequence ids); rows R; max_len (context
    limit: prompt + max_tokens); chunk C (prefill chunk); multi_step (decode steps per device call when
    possible); max_waiting (queued requests before QueueFull); seed (for requests without one)."""

    def __init__(self, params, config, tokenizer, stop_ids: Sequence[int], *, rows: int = 16, max_len: int = 1024,
                 chunk: int = 64, multi_step: int = 4, max_waiting: int = 256, seed: int = 0, warmup: bool = False):
        if len(stop_ids) > MAX_STOP_IDS:
            raise ValueError(f"at most {MAX_STOP_IDS} stop ids, got {list(stop_ids)}")
        self.params = jax.jit(unstack_layers)(params)  # once: per-step slices of stacked layers are copies
        self.config, self.tokenizer = config, tokenizer
        self.stop_ids = [int(s) for s in stop_ids]
        self.rows, self.max_len, self.chunk, self.multi_step = rows, max_len, chunk, max(1, multi_step)
        self.max_waiting = max_waiting
        self.slots = max_len + chunk  # a chunk is written whole: headroom for its padded tail
        self.cache = M.new_cache(config, rows, self.slots)
        self._stop_arr = jnp.asarray(self.stop_ids + [-1] * (MAX_STOP_IDS - len(self.stop_ids)), jnp.int32)
        self._seed_rng = np.random.default_rng(seed)
        # Host copies of per-row state; uploaded each call (a few [R] arrays).
        self.h_tok = np.zeros(rows, np.int32)
        self.h_len = np.zeros(rows, np.int32)
        self.h_active = np.zeros(rows, bool)
        self.h_step = np.zeros(rows, np.int32)
        self.h_budget = np.zeros(rows, np.int32)
        self.h_temp = np.zeros(rows, np.float32)
        self.h_top_p = np.ones(rows, np.float32)
        self.h_key = np.zeros((rows, 2), np.uint32)
        self.h_choice = np.zeros(rows, np.int32)
        self.row_seq: list[Seq | None] = [None] * rows
        self.waiting: deque[Seq] = deque()
        self.prefilling: deque[Seq] = deque()
        self._lock = threading.Condition()
        self._dirty: list[Request] = []  # requests with events not yet handed over
        self._accepting = True
        self._paused = False
        self._stop = False
        self._error: BaseException | None = None
        self.stats = {"steps": 0, "device_calls": 0, "prefill_calls": 0, "prefill_chunks": 0, "tokens": 0,
                      "requests": 0}
        if warmup:
            self.warmup()
        self._thread = threading.Thread(target=self._run, name="serving-scheduler", daemon=True)
        self._thread.start()

    def warmup(self) -> None:
        """Compiles every step variant now (prefill for each row bucket; decode with 1 and `multi_step`
        steps, with and without JSON masks), so no request ever waits for a compile. All rows are idle:
        the calls write only masked slots."""
        p = 1
        while True:
            p = M.prefill_bucket(p, self.rows)
            self.cache = M.prefill_rows(
                self.params, self.cache, jnp.arange(p, dtype=jnp.int32), jnp.zeros((p, self.chunk), jnp.int32),
                jnp.full((p,), self.slots - self.chunk, jnp.int32), jnp.zeros((p,), jnp.int32), config=self.config)
            if p >= self.rows:
                break
            p += 1
        zeros = jnp.zeros((self.rows,), jnp.int32)
        rp = M.RowParams(jnp.zeros((self.rows,)), jnp.ones((self.rows,)), jnp.zeros((self.rows, 2), jnp.uint32), zeros)
        for n_steps, allowed in ((1, None), (self.multi_step, None), (1, jnp.ones((self.rows, self.config.vocab_size),
                                                                                  bool))):
            self.cache, out, *_ = M.decode(self.params, self.cache, zeros, zeros, jnp.zeros((self.rows,), bool), zeros,
                                           zeros, self._stop_arr, rp, allowed, jnp.asarray(False), config=self.config,
                                           n_steps=n_steps)
        jax.block_until_ready(out)

    # ------------------------------------------------------------------ public API (any thread)
    def submit(self, req: Request) -> Request:
        if len(req.prompt) < 1:
            raise ValueError("the prompt is empty")
        if len(req.prompt) + req.spec.max_tokens > self.max_len:
            raise ValueError(f"prompt ({len(req.prompt)} tokens) + max_tokens ({req.spec.max_tokens}) exceeds the "
                             f"context length {self.max_len}")
        if req.seed is None:
            req.seed = int(self._seed_rng.integers(0, 2**31 - 1))
        with self._lock:
            if not self._accepting:
                raise ShuttingDown("the server is shutting down")
            if self._error is not None:
                raise RuntimeError(f"the scheduler failed: {self._error!r}")
            if len({id(s.req) for s in self.waiting}) >= self.max_waiting:
                raise QueueFull(f"{self.max_waiting} requests already wait for a batch row")
            self.waiting.extend(req.seqs)
            self.stats["requests"] += 1
            self._lock.notify()
        return req

    def generate(self, prompt: Sequence[int], spec: SamplingSpec, timeout: float | None = None) -> Request:
        """Blocking helper: submit and wait (tests, benchmarks, in-process use)."""
        req = self.submit(Request(prompt, spec, self.tokenizer))
        if not req.done.wait(timeout):
            req.cancel()
            raise TimeoutError(f"request {req.id} did not finish in {timeout} s")
        return req

    def load(self) -> dict:
        with self._lock:
            return {"rows": self.rows, "busy_rows": sum(s is not None for s in self.row_seq),
                    "waiting": len(self.waiting), **self.stats}

    def pause(self, paused: bool = True) -> None:
        """Holds (or resumes) the loop between steps: nothing is admitted or decoded while paused.
        Requests are still accepted up to `max_waiting` (tests of back-pressure; maintenance)."""
        with self._lock:
            self._paused = paused
            self._lock.notify()

    def close(self, drain_s: float = 10.0) -> None:
        """Refuses new requests; accepted ones get `drain_s` seconds to finish, then are aborted."""
        with self._lock:
            self._accepting = False
            self._paused = False
            self._lock.notify()
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and self._thread.is_alive():
            with self._lock:
                busy = any(s is not None for s in self.row_seq) or self.waiting
            if not busy:
                break
            time.sleep(0.01)
        with self._lock:
            self._stop = True
            self._lock.notify()
        self._thread.join(timeout=30)
        for seq in list(self.waiting) + [s for s in self.row_seq if s is not None]:
            self._finish(seq, "abort")
        self._flush()

    # ------------------------------------------------------------------ scheduler thread
    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._stop and (self._paused or not self._has_work()):
                        self._lock.wait(timeout=0.5)
                    if self._stop:
                        return
                    self._drop_cancelled()
                    self._admit()
                self._prefill()
                if self.h_active.any():
                    self._decode()
                self._flush()
        except BaseException as e:  # noqa: BLE001 - reported to every waiting request, never silent
            self._error = e
            with self._lock:
                seqs = list(self.waiting) + [s for s in self.row_seq if s is not None]
                self._accepting = False
            for seq in seqs:
                self._finish(seq, "error")
            self._flush()
            raise

    def _has_work(self) -> bool:
        return bool(self.waiting) or any(s is not None for s in self.row_seq)

    def _drop_cancelled(self) -> None:
        for seq in [s for s in self.waiting if s.req.cancelled]:
            self.waiting.remove(seq)
            self._finish(seq, "cancelled")
        for seq in self.row_seq:
            if seq is not None and seq.req.cancelled:
                self._finish(seq, "cancelled")

    def _admit(self) -> None:
        free = [r for r in range(self.rows) if self.row_seq[r] is None]
        while free and self.waiting:  # also while draining: accepted requests still get their rows
            seq = self.waiting.popleft()
            r = free.pop(0)
            seq.row = r
            self.row_seq[r] = seq
            self.h_active[r] = False
            self.h_len[r] = 0
            self.prefilling.append(seq)

    def _prefill(self) -> None:
        """One chunk for every prefilling row (one batched call); repeated while no row decodes."""
        while self.prefilling:
            seqs = [s for s in self.prefilling if s.finish_reason is None]
            self.prefilling = deque()
            todo = [s for s in seqs if s.prefilled < len(s.req.prompt) - 1]
            for s in seqs:
                if s not in todo:
                    self._activate(s)
            if todo:
                self._prefill_call(todo)
            for s in todo:
                (self._activate if s.prefilled >= len(s.req.prompt) - 1 else self.prefilling.append)(s)
            if self.h_active.any():
                return

    def _prefill_call(self, todo: list[Seq]) -> None:
        todo = todo[:prefill_bucket_max(self.rows)]
        p = M.prefill_bucket(len(todo), self.rows)
        used = {s.row for s in todo}
        spare = [r for r in range(self.rows) if r not in used][:p - len(todo)]
        rows = np.array([s.row for s in todo] + spare, np.int32)
        tokens = np.zeros((p, self.chunk), np.int32)
        start = np.full(p, self.slots - self.chunk, np.int32)
        n_valid = np.zeros(p, np.int32)
        for i, s in enumerate(todo):
            part = s.req.prompt[:-1][s.prefilled:s.prefilled + self.chunk]
            tokens[i, :len(part)] = part
            start[i], n_valid[i] = s.prefilled, len(part)
        self.cache = M.prefill_rows(self.params, self.cache, jnp.asarray(rows), jnp.asarray(tokens), jnp.asarray(start),
                                    jnp.asarray(n_valid), config=self.config)
        for i, s in enumerate(todo):
            s.prefilled += int(n_valid[i])
            self.h_len[s.row] = s.prefilled  # an idle row's decode write lands on the next chunk's slot
        self.stats["prefill_chunks"] += len(todo)
        self.stats["prefill_calls"] += 1

    def _activate(self, seq: Seq) -> None:
        r, spec = seq.row, seq.req.spec
        self.h_tok[r] = seq.req.prompt[-1]
        self.h_len[r] = len(seq.req.prompt) - 1
        self.h_step[r] = 0
        self.h_budget[r] = spec.max_tokens
        self.h_temp[r] = spec.temperature
        self.h_top_p[r] = spec.top_p
        self.h_key[r] = seed_key_data(seq.req.seed)
        self.h_choice[r] = seq.index
        self.h_active[r] = True

    def _decode(self) -> None:
        rows = [s for s in self.row_seq if s is not None and self.h_active[s.row]]
        masked = any(s.tracker is not None for s in rows)
        # One step at a time when a host mask changes per token or a prompt waits to be prefilled or
        # admitted into a free row; otherwise several (a row that ends mid-call idles until it returns).
        admissible = self.waiting and any(x is None for x in self.row_seq)
        n_steps = 1 if masked or self.prefilling or admissible else self.multi_step
        allowed = None
        if masked:
            allowed = np.ones((self.rows, self.config.vocab_size), bool)
            for s in rows:
                if s.tracker is not None:
                    allowed[s.row] = s.tracker.allowed(int(self.h_budget[s.row]))
            allowed = jnp.asarray(allowed)
        rp = M.RowParams(jnp.asarray(self.h_temp), jnp.asarray(self.h_top_p), jnp.asarray(self.h_key),
                         jnp.asarray(self.h_choice))
        self.cache, out, tok, lens, active, step, budget = M.decode(
            self.params, self.cache, jnp.asarray(self.h_tok), jnp.asarray(self.h_len), jnp.asarray(self.h_active),
            jnp.asarray(self.h_step), jnp.asarray(self.h_budget), self._stop_arr, rp, allowed,
            jnp.asarray(any(s.req.spec.logprobs for s in rows)), config=self.config, n_steps=n_steps)
        out = jax.device_get(out)
        self.h_tok, self.h_len, self.h_step, self.h_budget = (np.array(x) for x in jax.device_get(
            (tok, lens, step, budget)))
        self.h_active = np.array(jax.device_get(active))
        self.stats["device_calls"] += 1
        self.stats["steps"] += n_steps
        want_top = {s.row: s.req.spec.top_logprobs for s in rows}
        for j in range(n_steps):
            for s in rows:
                r = s.row
                if s.finish_reason is not None or not out.emitted[j, r]:
                    continue
                info = None
                if s.req.spec.logprobs:
                    k = want_top[r]
                    top = zip(out.top_ids[j, r, :k].tolist(), out.top_logprobs[j, r, :k].tolist())
                    info = TokenInfo(int(out.token[j, r]), float(out.logprob[j, r]), list(top))
                self._on_token(s, int(out.token[j, r]), info)
        for s in rows:
            if s.finish_reason is None and not self.h_active[s.row]:
                self._finish(s, "length" if self.h_budget[s.row] <= 0 and not self._ends_with_stop(s) else "stop")

    def _ends_with_stop(self, s: Seq) -> bool:
        return bool(s.tokens) and s.tokens[-1] in self.stop_ids

    def _on_token(self, s: Seq, token: int, info: TokenInfo | None) -> None:
        req = s.req
        if req.first_token_at is None:
            req.first_token_at = time.perf_counter()
        s.tokens.append(token)
        if info is not None:
            s.infos.append(info)
        self.stats["tokens"] += 1
        if token in self.stop_ids:
            self._release(s, final=True)
            self._finish(s, "stop")
            return
        if s.tracker is not None:
            s.tracker.advance(token)
        s.pending += s.detok.add(token)
        stops = req.spec.stop
        if stops:
            cut = min((i for i in (s.pending.find(x) for x in stops) if i >= 0), default=-1)
            if cut >= 0:
                s.pending = s.pending[:cut]
                self._release(s, final=True, info=info)
                self._finish(s, "stop")
                return
        self._release(s, final=False, info=info)
        if s.tracker is not None and s.tracker.state == ():  # the document is complete
            self._release(s, final=True)
            self._finish(s, "stop")

    def _release(self, s: Seq, final: bool, info: TokenInfo | None = None) -> None:
        """Emits the text that can no longer begin a stop string (all of it when final)."""
        if final:
            s.pending += s.detok.flush() if not s.finish_reason else ""
        hold = 0 if final or not s.req.spec.stop else max(len(x) for x in s.req.spec.stop) - 1
        n = len(s.pending) - hold
        text = s.pending[:n] if n > 0 else ""
        s.pending = s.pending[len(text):]
        if text or info is not None:
            s.text += text
            self._post(s.req, ("delta", s.index, text, info))

    def _post(self, req: Request, event: tuple) -> None:
        if not req.outbox:
            self._dirty.append(req)
        req.outbox.append(event)

    def _flush(self) -> None:
        """Hands each request the events of this step (one call per request)."""
        dirty, self._dirty = self._dirty, []
        for req in dirty:
            events, req.outbox = req.outbox, []
            req.emit(events)
        for req in dirty:
            if all(x.finish_reason is not None for x in req.seqs):
                req.done.set()

    def _finish(self, s: Seq, reason: str) -> None:
        if s.finish_reason is not None:
            return
        if reason in ("length",):
            self._release(s, final=True)
        s.finish_reason = reason
        if 0 <= s.row < self.rows and self.row_seq[s.row] is s:
            self.row_seq[s.row] = None
            self.h_active[s.row] = False
            self.h_len[s.row] = 0
        s.row = -1
        self._post(s.req, ("finish", s.index, reason))

