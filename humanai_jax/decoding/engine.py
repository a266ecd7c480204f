"""Batched KV-cache decoding: bucketed prefill plus one jitted `lax.while_loop`.

Layout (spec decoding-reclm.md §1): prompts are left-padded to a bucketed length `Tb`, so the last
prompt token of every row sits at slot `Tb - 1`; `start[b]` = number of pads; the position of
slot `s` in row `b` is `s - start[b]` (HF's `cumsum(attention_mask) - 1`). All rows share the
cache write index. The batch is padded to a bucketed size with dummy rows that start `done`.
One compile per (prompt bucket, batch bucket, new-token bucket, sampling mode); `max_new_tokens`
itself is traced.

Per step (`_emit`): constraint mask -> sampling -> forced tokens override -> done rows emit pad ->
stop check -> constraint update. The loop body is `decode_step` followed by `_emit`; the same
body, jitted alone, drives `generate_stream`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.transformer import KVCache, forward_cached, init_cache, logits_from_hidden, unstack_layers
from humanai_jax.decoding import sampling
from humanai_jax.decoding.forcing import ForcingState, Retriever, apply_forcing
from humanai_jax.sharding import constrain, is_explicit

PROMPT_BUCKETS = (64, 128, 256, 512, 1024, 2048)
NEW_TOKEN_BUCKETS = (32, 64, 128, 256, 512, 1024, 2048)
MAX_STOP_IDS = 8


def bucket(n: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= n; beyond the last, the next multiple of the last."""
    for b in buckets:
        if n <= b:
            return b
    return -(-n // buckets[-1]) * buckets[-1]


def batch_bucket(n: int) -> int:
    """Next power of two >= n."""
    return 1 << max(0, (n - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """Static sampling mode (`greedy`, `top_k`, `use_top_p`) and traced values."""

    temperature: jax.Array
    top_p: jax.Array
    greedy: bool
    top_k: int | None
    use_top_p: bool


jax.tree_util.register_dataclass(
    SamplingParams, data_fields=["temperature", "top_p"], meta_fields=["greedy", "top_k", "use_top_p"]
)


@dataclasses.dataclass(frozen=True)
class DecodeState:
    """Loop carry. Shapes: B = batch bucket, N = new-token bucket, D = model width.

    step [] i32; start, last_tok, out_len, request_ids [B] i32; done, guard_fired [B] bool;
    out_tok [B, N] i32 (pad-filled); hidden [B, D] (post-norm state that produced the current
    logits); cache KVCache; cstate: the constraint's state or None; forcing: ForcingState or None.
    """

    step: jax.Array
    start: jax.Array
    last_tok: jax.Array
    out_tok: jax.Array
    out_len: jax.Array
    done: jax.Array
    guard_fired: jax.Array
    request_ids: jax.Array
    hidden: jax.Array
    cache: KVCache
    cstate: Any
    forcing: ForcingState | None


jax.tree_util.register_dataclass(
    DecodeState,
    data_fields=[
        "step", "start", "last_tok", "out_tok", "out_len", "done", "guard_fired", "request_ids",
        "hidden", "cache", "cstate", "forcing",
    ],
    meta_fields=[],
)


@dataclasses.dataclass(frozen=True)
class LoopInputs:
    """Everything the loop reads but never changes (a pytree; static fields as meta)."""

    base_key: jax.Array
    stop_ids: jax.Array  # [MAX_STOP_IDS] i32, -1 padded
    max_new: jax.Array  # [] i32
    pad_id: jax.Array  # [] i32
    sampling: SamplingParams
    constraint: Any
    retriever: Retriever | None


jax.tree_util.register_dataclass(
    LoopInputs,
    data_fields=["base_key", "stop_ids", "max_new", "pad_id", "sampling", "constraint", "retriever"],
    meta_fields=[],
)


# ------------------------------------------------------------------------------ model calls
def prefill(params, tokens: jax.Array, start: jax.Array, config: ModelConfig, cache: KVCache, rules=None):
    """Left-padded prompts `tokens [B, Tb]` (`start [B]` pads) into an empty cache.

    Returns (logits [B, V] f32, hidden [B, D], cache), read at slot Tb - 1. Only the last slot's
    logits are computed (the full [B, Tb, V] head is dead code XLA drops).
    """
    b, tb = tokens.shape
    slots = jnp.arange(tb, dtype=jnp.int32)[None, :]
    real = slots >= start[:, None]
    positions = jnp.where(real, slots - start[:, None], 0)
    _, hidden, cache = forward_cached(params, tokens, config, cache, positions=positions, token_mask=real, rules=rules)
    last = hidden[:, -1]
    return _replicated(logits_from_hidden(params, last, config, rules), rules), _replicated(last, rules), cache


def decode_step(params, token: jax.Array, pos: jax.Array, cache: KVCache, config: ModelConfig, rules=None):
    """One token per row: `token [B]` at position `pos [B]` -> (logits [B, V], hidden [B, D], cache)."""
    logits, hidden, cache = forward_cached(params, token[:, None], config, cache, positions=pos[:, None], rules=rules)
    return _replicated(logits[:, 0], rules), _replicated(hidden[:, 0], rules), cache


def _replicated(x: jax.Array, rules) -> jax.Array:
    """`x [B, N]` replicated on Explicit meshes, where the loop state's sampling, forcing and token
    writes need one well-defined sharding; unchanged on Auto meshes (GSPMD picks its own)."""
    return constrain(x, (None, None), rules) if is_explicit(rules) else x


# ------------------------------------------------------------------------------ one step's token
def _emit(state: DecodeState, logits: jax.Array, hidden: jax.Array, inp: LoopInputs) -> DecodeState:
    """Chooses and records one token per row from `logits [B, V]` (see module docstring)."""
    active = ~state.done
    sp = inp.sampling
    allowed, guard = (None, jnp.zeros_like(active))
    if inp.constraint is not None:
        allowed, guard = inp.constraint.allowed(state.cstate)
    if inp.retriever is not None:
        logits = inp.retriever.block_exhausted_trigger(state.forcing, logits)
    keys = sampling.row_keys(inp.base_key, state.request_ids, state.step)
    tok = sampling.select_tokens(
        logits, keys, allowed=allowed, greedy_decode=sp.greedy, temperature=sp.temperature,
        top_k=sp.top_k, top_p=sp.top_p if sp.use_top_p else None,
    )
    forcing = state.forcing
    if inp.retriever is not None:
        tok, forcing = apply_forcing(inp.retriever, state.forcing, tok, hidden, active)
    tok = jnp.where(active, tok, inp.pad_id)
    stopped = active & jnp.any(tok[:, None] == inp.stop_ids[None, :], axis=-1)
    cstate = state.cstate
    if inp.constraint is not None:
        cstate = inp.constraint.update(cstate, tok, active)
    return dataclasses.replace(
        state,
        step=state.step + 1,
        last_tok=tok,
        out_tok=jax.lax.dynamic_update_slice(state.out_tok, tok[:, None], (0, state.step)),
        out_len=state.out_len + active.astype(jnp.int32),
        done=state.done | stopped,
        guard_fired=state.guard_fired | (active & guard),
        hidden=hidden,
        cstate=cstate,
        forcing=forcing,
    )


def _body(params, config: ModelConfig, inp: LoopInputs, state: DecodeState, rules=None) -> DecodeState:
    pos = state.cache.index - state.start
    logits, hidden, cache = decode_step(params, state.last_tok, pos, state.cache, config, rules)
    return _emit(dataclasses.replace(state, cache=cache), logits, hidden, inp)


def _cond(inp: LoopInputs, state: DecodeState) -> jax.Array:
    return (state.step < inp.max_new) & ~jnp.all(state.done) & (state.cache.index < state.cache.max_len)


def _constraint_start(constraint, tokens, start):
    """The constraint's state at the first generated token: from the prompts when it can read them."""
    if constraint is None:
        return None
    if hasattr(constraint, "init_state_from_prompt"):
        return constraint.init_state_from_prompt(tokens, start)
    return constraint.init_state(tokens.shape[0])


def _start(params, config, inp: LoopInputs, tokens, start, live, request_ids, cache, n_cap, rules=None):
    """Prefill and the first token: the state the loop starts from."""
    logits, hidden, cache = prefill(params, tokens, start, config, cache, rules)
    b = tokens.shape[0]
    state = DecodeState(
        step=jnp.zeros((), jnp.int32),
        start=start,
        last_tok=jnp.zeros((b,), jnp.int32),
        out_tok=jnp.full((b, n_cap), inp.pad_id, jnp.int32),
        out_len=jnp.zeros((b,), jnp.int32),
        done=~live,
        guard_fired=jnp.zeros((b,), bool),
        request_ids=request_ids,
        hidden=hidden,
        cache=cache,
        cstate=_constraint_start(inp.constraint, tokens, start),
        forcing=None if inp.retriever is None else inp.retriever.init_state(b),
    )
    return _emit(state, logits, hidden, inp)


def _generate(params, config, inp, tokens, start, live, request_ids, cache, n_cap, rules=None):
    # Per-layer weight buffers made once, before the loop, instead of a slice copy per step.
    params = unstack_layers(params)
    state = _start(params, config, inp, tokens, start, live, request_ids, cache, n_cap, rules)
    return jax.lax.while_loop(
        lambda s: _cond(inp, s), lambda s: _body(params, config, inp, s, rules), state
    )


_generate_jit = jax.jit(_generate, static_argnames=("config", "n_cap", "rules"), donate_argnames=("cache",))
_start_jit = jax.jit(_start, static_argnames=("config", "n_cap", "rules"), donate_argnames=("cache",))
_body_jit = jax.jit(_body, static_argnames=("config", "rules"), donate_argnames=("state",))
_unstack_jit = jax.jit(unstack_layers)


# ------------------------------------------------------------------------------ host side
@dataclasses.dataclass
class PreparedBatch:
    tokens: np.ndarray  # [Bb, Tb] left-padded
    start: np.ndarray  # [Bb]
    live: np.ndarray  # [Bb] bool, False for dummy rows
    request_ids: np.ndarray  # [Bb]
    n_cap: int
    s_max: int


def prepare_batch(prompts, config: ModelConfig, max_new_tokens: int, pad_id: int, request_ids=None) -> PreparedBatch:
    """Validates prompts and left-pads them into (prompt bucket, batch bucket)."""
    if isinstance(prompts, np.ndarray) and prompts.ndim == 2:
        prompts = prompts.tolist()
    prompts = [list(map(int, p)) for p in prompts]
    if not prompts:
        raise ValueError("prompts is empty")
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError(f"prompt {i} is empty (every row needs at least one token)")
        bad = [t for t in p if not 0 <= t < config.vocab_size]
        if bad:
            raise ValueError(f"prompt {i} has token ids outside [0, {config.vocab_size}): {bad[:5]}")
    if int(max_new_tokens) < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    n = len(prompts)
    tb = bucket(max(map(len, prompts)), PROMPT_BUCKETS)
    bb = batch_bucket(n)
    n_cap = bucket(int(max_new_tokens), NEW_TOKEN_BUCKETS)
    tokens = np.full((bb, tb), pad_id, np.int32)
    start = np.full((bb,), tb, np.int32)
    for i, p in enumerate(prompts):
        tokens[i, tb - len(p):] = p
        start[i] = tb - len(p)
    live = np.arange(bb) < n
    if request_ids is None:
        request_ids = np.arange(bb, dtype=np.int32)
    else:
        request_ids = np.asarray(request_ids, np.int32)
        if request_ids.shape != (n,):
            raise ValueError(f"request_ids must have shape ({n},), got {request_ids.shape}")
        request_ids = np.concatenate([request_ids, np.zeros(bb - n, np.int32)])
    # The loop writes at most tb + n_cap - 1 slots; every decode step attends over all S_max slots, so
    # slots no step can fill would only cost bandwidth (rounding 192 up to 256 read a third more cache).
    return PreparedBatch(tokens, start, live, request_ids, n_cap, tb + n_cap)


def _loop_inputs(config, *, max_new_tokens, temperature, top_k, top_p, stop_token_ids, rng, constraint, retriever, pad_id):
    stop = [int(t) for t in stop_token_ids]
    if len(stop) > MAX_STOP_IDS:
        raise ValueError(f"at most {MAX_STOP_IDS} stop_token_ids are supported, got {len(stop)}")
    greedy = float(temperature) == 0.0
    if float(temperature) < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_p is not None and not 0.0 < float(top_p) <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k is not None and int(top_k) < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if not greedy and rng is None:
        raise ValueError("sampling (temperature > 0) needs an rng key")
    if constraint is not None and getattr(constraint, "trie", None) is not None:
        if constraint.trie.vocab_size != config.vocab_size:
            raise ValueError(
                f"constraint vocab_size {constraint.trie.vocab_size} != model vocab_size {config.vocab_size}"
            )
    if constraint is not None and hasattr(constraint, "check_stop_ids"):
        constraint.check_stop_ids(stop)
    return LoopInputs(
        base_key=jax.random.key(0) if rng is None else rng,
        stop_ids=jnp.asarray(stop + [-1] * (MAX_STOP_IDS - len(stop)), jnp.int32),
        max_new=jnp.asarray(int(max_new_tokens), jnp.int32),
        pad_id=jnp.asarray(pad_id, jnp.int32),
        sampling=SamplingParams(
            temperature=jnp.asarray(float(temperature), jnp.float32),
            top_p=jnp.asarray(1.0 if top_p is None else float(top_p), jnp.float32),
            greedy=greedy,
            top_k=None if (greedy or top_k is None) else int(top_k),
            use_top_p=(not greedy) and top_p is not None,
        ),
        constraint=constraint,
        retriever=retriever,
    )


def generate(
    params,
    config: ModelConfig,
    prompts,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop_token_ids: Sequence[int] = (),
    rng: jax.Array | None = None,
    constraint=None,
    retriever: Retriever | None = None,
    request_ids=None,
    pad_id: int | None = None,
    rules=None,
    return_state: bool = False,
):
    """Decodes a batch of prompts of different lengths.

    Args:
      prompts: token-id lists (different lengths allowed).
      max_new_tokens: tokens generated per row at most (traced: changing it within its bucket
        does not recompile).
      temperature: 0 = greedy (then top_k/top_p/rng are ignored); > 0 samples.
      top_k, top_p: optional warpers (top_k is static, top_p traced).
      stop_token_ids: a row stops after emitting one of these (the stop token is kept).
      rng: a `jax.random.key`; row b uses `fold_in(fold_in(rng, request_ids[b]), step)`, so the
        same rng gives the same output on every call, whatever the batch composition.
      constraint: e.g. `ItemConstraint` (RecLM-cgen); None = free decoding.
      retriever: a `Retriever` (RecLM-ret): on its trigger token an item is retrieved from the
        hidden state and its tokens are forced, reusing the KV cache.
      request_ids: per-prompt ids for the RNG (default 0..n-1).
      pad_id: fills output after a row stops (default config.pad_token_id or 0).
      return_state: also return the final `DecodeState` (cache, constraint state, flags).

    Returns:
      tokens [n, max_new_tokens] int32 (generated tokens only, pad after the stop) and
      lengths [n] int32 (valid tokens per row, stop token included); numpy arrays.
    """
    pad_id = (config.pad_token_id or 0) if pad_id is None else int(pad_id)
    batch = prepare_batch(prompts, config, max_new_tokens, pad_id, request_ids)
    inp = _loop_inputs(
        config, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        stop_token_ids=stop_token_ids, rng=rng, constraint=constraint, retriever=retriever, pad_id=pad_id,
    )
    cache = init_cache(config, batch.tokens.shape[0], batch.s_max)
    state = _generate_jit(
        params, config, inp, jnp.asarray(batch.tokens), jnp.asarray(batch.start), jnp.asarray(batch.live),
        jnp.asarray(batch.request_ids), cache, batch.n_cap, rules,
    )
    n = len(batch.live.nonzero()[0])
    tokens = np.asarray(state.out_tok)[:n, :max_new_tokens]
    lengths = np.asarray(state.out_len)[:n]
    return (tokens, lengths, state) if return_state else (tokens, lengths)


def generate_stream(
    params,
    config: ModelConfig,
    prompts,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop_token_ids: Sequence[int] = (),
    rng: jax.Array | None = None,
    constraint=None,
    retriever: Retriever | None = None,
    request_ids=None,
    pad_id: int | None = None,
    rules=None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Same decoding as `generate`, driven step by step from Python (streaming, debugging).

    Yields (tokens [n] int32, emitted [n] bool) per step; `emitted` is False for rows that had
    already stopped. Runs the same jitted loop body as `generate`, so the tokens are identical.
    """
    pad_id = (config.pad_token_id or 0) if pad_id is None else int(pad_id)
    batch = prepare_batch(prompts, config, max_new_tokens, pad_id, request_ids)
    inp = _loop_inputs(
        config, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        stop_token_ids=stop_token_ids, rng=rng, constraint=constraint, retriever=retriever, pad_id=pad_id,
    )
    n = int(batch.live.sum())
    cache = init_cache(config, batch.tokens.shape[0], batch.s_max)
    params = _unstack_jit(params)  # once, not per step (see `_generate`)
    state = _start_jit(
        params, config, inp, jnp.asarray(batch.tokens), jnp.asarray(batch.start), jnp.asarray(batch.live),
        jnp.asarray(batch.request_ids), cache, batch.n_cap, rules,
    )
    prev_done = np.array(~batch.live)
    while True:
        yield np.asarray(state.last_tok)[:n], ~prev_done[:n]
        prev_done = np.asarray(state.done)
        if not bool(_cond(inp, state)):
            return
        state = _body_jit(params, config, inp, state, rules)
