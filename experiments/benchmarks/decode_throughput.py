"""Decode throughput: our jitted KV-cache engine vs transformers `generate`, same checkpoint.

    python -m experiments.benchmarks.decode_throughput [--new_tokens 128] [--prompt_len 32]
        [--batches 1,16] [--items 100000] [--repeats 3] [--parts throughput,constraint]

Model: the platform benchmark's Qwen2-style config (8 layers, hidden 512, 8 heads, 2 KV heads,
intermediate 1408, vocab 8192, float32), random weights made by transformers, saved with
`save_pretrained` and loaded by both sides. Greedy, no stop tokens, every row decodes
`new_tokens` tokens.

Prints, per batch size: tokens/s end to end (prefill included) for both and the ratio; our decode
step time (from runs of 1 and N new tokens); at batch 1 the fraction of the memory-bandwidth bound
(bytes of weights + KV cache read per step / measured bandwidth). Then the RecLM-cgen constraint
with a synthetic `--items` catalogue: trie build time and device memory, and constrained vs
unconstrained sampled decode step time. The CPU may be shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax import host
from humanai_jax.backbone import load_pretrained
from humanai_jax.decoding import ItemConstraint, build_item_trie, engine, generate


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def measure_bandwidth(mb: int = 512, repeats: int = 5) -> dict:
    """Host memory bandwidth in GB/s: read-only (np.sum over float32) and copy (read + write)."""
    a = np.ones(mb * 2**20 // 4, np.float32)
    b = np.empty_like(a)
    read, copy = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        a.sum()
        read.append(a.nbytes / (time.perf_counter() - t) / 1e9)
        t = time.perf_counter()
        np.copyto(b, a)
        copy.append(2 * a.nbytes / (time.perf_counter() - t) / 1e9)
    x = jnp.ones((mb * 2**20 // 4,), jnp.float32)
    f = jax.jit(lambda x: x * 1.0000001)
    f(x).block_until_ready()
    xla = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(x).block_until_ready()
        xla.append(2 * x.nbytes / (time.perf_counter() - t) / 1e9)
    return {"read_GBs": max(read), "copy_GBs": max(copy), "xla_stream_GBs": max(xla)}


def make_checkpoint(path: str, args):
    import torch
    import transformers

    cfg = transformers.Qwen2Config(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=4096, tie_word_embeddings=False, pad_token_id=0, bos_token_id=None, eos_token_id=None,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    model.save_pretrained(path)
    return model


def time_ours(params, config, prompts, new_tokens, repeats, **kw) -> float:
    generate(params, config, prompts, max_new_tokens=new_tokens, **kw)  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        generate(params, config, prompts, max_new_tokens=new_tokens, **kw)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_hf(model, prompts, new_tokens, repeats) -> float:
    import torch

    ids = torch.tensor(prompts, device=model.device)
    mask = torch.ones_like(ids)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=mask, **kw)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=mask, **kw)
            sync()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def bytes_per_step(params, config, batch: int, prompt_len: int, new_tokens: int) -> dict:
    """Bytes a batch-`batch` decode step must read: every weight except the embedding table (one
    row per token), plus the KV cache slots our engine attends over (S_max per row)."""
    leaves = jax.tree.leaves({k: v for k, v in params.items() if k != "embed"})
    weights = sum(x.size * x.dtype.itemsize for x in leaves) + batch * config.d_model * jnp.dtype(config.dtype).itemsize
    s_max = engine.prepare_batch([[1] * prompt_len], config, new_tokens, pad_id=0).s_max
    itemsize = jnp.dtype(config.dtype).itemsize
    cache = 2 * config.n_layers * batch * s_max * config.n_kv_heads * config.head_dim * itemsize
    return {"weights": weights, "cache": cache, "s_max": s_max}


def synthetic_catalogue(n_items: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """Titles of 2-12 tokens drawn so that they share prefixes (a few hundred common first tokens,
    Zipf-like second tokens), like real title catalogues; unique by construction."""
    rng = np.random.default_rng(seed)
    titles: set[tuple[int, ...]] = set()
    firsts = rng.integers(2, vocab, size=300)
    while len(titles) < n_items:
        n = int(rng.integers(2, 13))
        head = [int(rng.choice(firsts)), int(min(vocab - 1, 2 + rng.zipf(1.3)))]
        titles.add(tuple(head + list(rng.integers(2, vocab, size=n - 2))))
    return [list(t) for t in titles]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--new_tokens", type=int, default=128)
    ap.add_argument("--prompt_len", type=int, default=32)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=1408)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--parts", default="throughput,constraint", help="which sections to run")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="weights and compute dtype of both sides (torch runs on CUDA when it sees a GPU)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process may use
    print(f"jax {jax.__version__} devices {jax.devices()} | torch {torch.__version__} threads {torch.get_num_threads()}"
          f" | cpus {os.cpu_count()} | load {_load()}")
    bw = measure_bandwidth()
    print(f"memory bandwidth: read {bw['read_GBs']:.1f} GB/s, numpy copy {bw['copy_GBs']:.1f} GB/s, "
          f"XLA stream {bw['xla_stream_GBs']:.1f} GB/s")
    bound_bw = max(bw.values())

    with tempfile.TemporaryDirectory() as path:
        model = make_checkpoint(path, args)
        config, params = load_pretrained(path, dtype=jnp.dtype(args.dtype))
    model = model.to("cuda" if torch.cuda.is_available() else "cpu", getattr(torch, args.dtype))
    rng = np.random.default_rng(0)
    n = args.new_tokens
    results = {}
    for b in [int(x) for x in args.batches.split(",")] if "throughput" in parts else []:
        prompts = rng.integers(1, config.vocab_size, size=(b, args.prompt_len)).tolist()
        ours = time_ours(params, config, prompts, n, args.repeats)
        ours_1 = time_ours(params, config, prompts, 1, args.repeats)
        hf = time_hf(model, prompts, n, args.repeats)
        step = (ours - ours_1) / (n - 1)
        results[b] = dict(ours_tok_s=b * n / ours, hf_tok_s=b * n / hf, ratio=hf / ours, step_ms=1e3 * step)
        line = (f"batch {b:3d}: ours {b * n / ours:8.1f} tok/s | transformers {b * n / hf:8.1f} tok/s | "
                f"ratio {hf / ours:.2f}x | our decode step {1e3 * step:.2f} ms ({b / step:.1f} tok/s decode-only)")
        if b == 1:
            need = bytes_per_step(params, config, b, args.prompt_len, n)
            total = need["weights"] + need["cache"]
            achieved = total / step / 1e9
            line += (f"\n           bytes/step {total / 1e6:.1f} MB (weights {need['weights'] / 1e6:.1f}, cache "
                     f"{need['cache'] / 1e6:.1f}, S_max {need['s_max']}) -> {achieved:.1f} GB/s = "
                     f"{100 * achieved / bound_bw:.0f}% of the best measured bandwidth ({bound_bw:.1f} GB/s)")
        print(line, f"| load {_load()}", flush=True)

    # ---------------------------------------------------------------- constrained decoding
    if "constraint" not in parts:
        return
    soi, eoi = config.vocab_size - 2, config.vocab_size - 1
    titles = synthetic_catalogue(args.items, soi)
    t = time.perf_counter()
    trie = build_item_trie(titles, soi_id=soi, eoi_id=eoi, vocab_size=config.vocab_size, window=64)
    build_s = time.perf_counter() - t
    sizes = trie.nbytes()
    print(f"catalogue {args.items} items, {trie.num_nodes} nodes, {trie.num_heavy} heavy: build {build_s:.1f} s, "
          f"device memory {sizes['total'] / 2**20:.1f} MiB "
          f"(heavy rows {(sizes['heavy_allowed'] + sizes['heavy_child']) / 2**20:.1f},"
          f" item_path {sizes['item_path'] / 2**20:.1f}, CSR+nodes "
          f"{(sizes['total'] - sizes['heavy_allowed'] - sizes['heavy_child'] - sizes['item_path']) / 2**20:.1f})")
    con = ItemConstraint(trie.to_device(), max_items=32)
    biased = soi_biased(params, config, soi, rng)
    kw = dict(temperature=1.0, rng=jax.random.key(0))
    for b in [int(x) for x in args.batches.split(",")]:
        prompts = rng.integers(1, soi, size=(b, args.prompt_len)).tolist()
        free, cons = interleaved(
            lambda prompts=prompts: generate(biased, config, prompts, max_new_tokens=n, **kw),
            lambda prompts=prompts: generate(biased, config, prompts, max_new_tokens=n, constraint=con, **kw),
            repeats=max(3, args.repeats),
        )
        toks, _ = generate(biased, config, prompts, max_new_tokens=n, constraint=con, **kw)
        in_span = np.mean([_span_share(r, soi, eoi) for r in toks])
        mask_ms = mask_update_ms(con, toks, config.vocab_size)
        print(f"batch {b:3d}: mask + update alone {mask_ms:.3f} ms/step = "
              f"{100 * mask_ms / (1e3 * free / n):.1f}% of a free decode step", flush=True)
        print(f"batch {b:3d}: sampled decode {b * n / free:8.1f} tok/s free vs {b * n / cons:8.1f} tok/s constrained: "
              f"overhead {100 * (cons / free - 1):+.1f}% ({100 * in_span:.0f}% of constrained tokens inside spans) "
              f"| load {_load()}", flush=True)


def soi_biased(params, config, soi, rng):
    """Makes <SOI> win about half of the free steps, so replies are mostly spans (the free and the
    constrained run both use these weights): a constant component in every input embedding
    survives to the final norm as one dominant hidden coordinate, and the <SOI> head column reads
    it with a gain that puts the <SOI> logit at ~ln(V)."""
    from humanai_jax.backbone import forward

    embed = params["embed"].at[:, 0].add(1.0)
    tokens = jnp.asarray(rng.integers(1, soi, size=(4, 64)), jnp.int32)
    biased = dict(params, embed=embed)
    _, hidden = jax.jit(lambda p, t: forward(p, t, config, return_hidden=True))(biased, tokens)
    gain = float(np.log(config.vocab_size)) / float(jnp.mean(hidden[..., 0]))
    head = params["lm_head"].at[:, soi].set(0.0).at[0, soi].set(gain)
    return dict(biased, lm_head=head)


def mask_update_ms(con, replies: np.ndarray, vocab: int, repeats: int = 5) -> float:
    """The constraint's own per-step cost: `allowed` + masking the logits + `update`, replaying
    the given replies [B, N] through a jitted scan (no model)."""
    replies = jnp.asarray(replies, jnp.int32)
    logits = jnp.zeros((replies.shape[0], vocab), jnp.float32)

    @jax.jit
    def replay(con, replies, logits):
        def step(state, tok):
            allowed, _ = con.allowed(state)
            masked = jnp.where(allowed, logits, -1e30)
            state = con.update(state, tok, jnp.ones(tok.shape, bool))
            return state, jnp.argmax(masked, -1)
        return jax.lax.scan(step, con.init_state(replies.shape[0]), replies.T)[1]

    replay(con, replies, logits).block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        replay(con, replies, logits).block_until_ready()
        times.append(time.perf_counter() - t)
    return 1e3 * min(times) / replies.shape[1]


def interleaved(run_a, run_b, repeats: int) -> tuple[float, float]:
    """Best-of-`repeats` wall times of two callables, alternated so load drifts hit both alike."""
    run_a(), run_b()  # compile
    ta, tb = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        run_a()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_b()
        tb.append(time.perf_counter() - t)
    return min(ta), min(tb)


def _span_share(row, soi, eoi) -> float:
    inside, count = False, 0
    for t in row.tolist():
        if t == soi and not inside:
            inside = True
        elif t == eoi and inside:
            inside = False
        count += inside
    return count / len(row)


if __name__ == "__main__":
    host.reexec_with_malloc_tunables()  # before any work: see humanai_jax/host.py
    main()
