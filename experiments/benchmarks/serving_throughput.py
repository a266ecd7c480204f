r"""Serving throughput and latency vs concurrency, next to the in-process batch `generate`.

  python -m experiments.benchmarks.serving_throughput --model runs/serving_lm_tiny/hf_export \
      [--concurrency 1,4,16,64] [--max-tokens 64] [--prompt-tokens 32] [--waves 2] [--load-clients 100]

For each concurrency c:
  * server: `python -m humanai_jax.serving` in a subprocess with c batch rows (so the Python clients
    here do not share its GIL); c client threads each stream `--waves` chat-free `/v1/completions`
    requests back to back (token-id prompts of `--prompt-tokens`, greedy, exactly `--max-tokens`
    new tokens: the server runs without stop ids, `--no-stop`). Reported: generated tokens/s over the
    whole run, TTFT p50/p99 and inter-token p50/p99 (gaps between SSE token chunks; with multi-step
    decoding tokens arrive in bursts, which the p99 shows);
  * in-process: `decoding.generate` on a batch of the same c prompts, same max tokens, timed after a
    compile run: tokens/s;
  both take the best of `--repeats` timed runs (the machine is shared; the best run is the least
  disturbed), latency percentiles pool every run;
  * scheduler: the same waves through `serving.Scheduler` in this process (no HTTP, no clients);
  * ratio = server / in-process (and scheduler / in-process).
Then a load test: `--load-clients` concurrent streaming clients, each must receive exactly
`--max-tokens` tokens and a `[DONE]`; none may fail or be lost.
Results go to `--out` (JSON). Record `uptime` load next to the numbers (the machine is shared).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np


def _percentile(xs, q):
    return float(np.percentile(np.asarray(xs, float), q)) if len(xs) else float("nan")


def _stream_once(port: int, prompt: list[int], max_tokens: int, timeout: float = 600.0) -> dict:
    """One streamed /v1/completions request over a raw connection: token count, TTFT, gaps.

    Deliberately light (the clients share the CPUs with the server): the body is read in blocks as
    they arrive, token chunks are counted by their `"finish_reason":null` marker and stamped with
    their block's arrival time, and only the final usage chunk is parsed."""
    body = json.dumps({"model": "bench", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0,
                       "stream": True, "stream_options": {"include_usage": True}})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers={"content-type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    stamps, buf = [], b""
    while True:
        block = resp.read1(65536)
        if not block:
            break
        now = time.perf_counter()
        stamps += [now] * block.count(b'"finish_reason":null')
        buf = (buf + block)[-4096:]  # the tail holds the usage chunk and [DONE]
    conn.close()
    events = [e[6:] for e in buf.decode(errors="replace").split("\n\n") if e.startswith("data: ")]
    done = bool(events) and events[-1] == "[DONE]"
    usage = json.loads(events[-2]).get("usage") if len(events) >= 2 else None
    if any('"error"' in e[:20] for e in events):
        raise RuntimeError(f"error event: {events}")
    return {"tokens": usage["completion_tokens"] if usage else -1, "done": done, "t0": t0, "stamps": stamps,
            "end": time.perf_counter()}


def _prompts(n: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(10, vocab, size=(n, length)).tolist()


def _start_server(args, rows: int, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "humanai_jax.serving", "--model", args.model, "--served-model-name", "bench",
           "--port", str(port), "--rows", str(rows), "--max-model-len", str(args.max_len), "--chunk",
           str(args.chunk), "--multi-step", str(args.multi_step), "--max-waiting", "1024", "--no-stop"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start in 300 s")


def _stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_server(args, c: int, vocab: int) -> dict:
    port = _free_port()
    proc = _start_server(args, rows=c, port=port)
    try:
        warm = _prompts(c, args.prompt_tokens, vocab, seed=99)
        with concurrent.futures.ThreadPoolExecutor(c) as pool:  # compile every shape first
            list(pool.map(lambda p: _stream_once(port, p, args.max_tokens), warm))
        prompts = _prompts(c * args.waves, args.prompt_tokens, vocab, seed=0)

        def client(i):
            return [_stream_once(port, prompts[i * args.waves + w], args.max_tokens) for w in range(args.waves)]

        runs = []  # (wall, results) per repeat; throughput is the best repeat (as for generate)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(c) as pool:
                rs = [r for rs in pool.map(client, range(c)) for r in rs]
            runs.append((time.perf_counter() - t0, rs))
    finally:
        _stop_server(proc)
    wall, _ = min(runs, key=lambda x: x[0])
    results = [r for _, rs in runs for r in rs]  # latency percentiles over every repeat
    tokens = sum(r["tokens"] for r in runs[0][1])
    ttft = [r["stamps"][0] - r["t0"] for r in results if r["stamps"]]
    gaps = [b - a for r in results for a, b in zip(r["stamps"], r["stamps"][1:])]
    return {"requests": len(runs[0][1]), "tokens": tokens, "wall_s": wall, "tok_per_s": tokens / wall,
            "tok_per_s_all": [tokens / w for w, _ in runs],
            "ttft_p50_ms": 1e3 * _percentile(ttft, 50), "ttft_p99_ms": 1e3 * _percentile(ttft, 99),
            "itl_p50_ms": 1e3 * _percentile(gaps, 50), "itl_p99_ms": 1e3 * _percentile(gaps, 99),
            "all_complete": all(r["done"] and r["tokens"] == args.max_tokens for r in results)}


def bench_generate(args, params, config, c: int, vocab: int) -> dict:
    from humanai_jax.decoding import generate

    prompts = _prompts(c, args.prompt_tokens, vocab, seed=0)
    generate(params, config, prompts, max_new_tokens=args.max_tokens)  # compile
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        toks, lens = generate(params, config, prompts, max_new_tokens=args.max_tokens)
        times.append(time.perf_counter() - t0)
    tokens = int(np.asarray(lens).sum())
    return {"tokens": tokens, "wall_s": min(times), "tok_per_s": tokens / min(times),
            "tok_per_s_all": [tokens / t for t in times]}


def bench_scheduler(args, m, c: int, vocab: int) -> dict:
    """The same waves through `serving.Scheduler` in this process, without HTTP: separates the
    continuous-batching engine from the HTTP/SSE layer (and from the clients' CPU)."""
    from humanai_jax.serving.scheduler import Request, SamplingSpec, Scheduler

    sched = Scheduler(m.params, m.config, m.tokenizer, (), rows=c, max_len=args.max_len, chunk=args.chunk,
                      multi_step=args.multi_step, max_waiting=1024, warmup=True)
    try:
        def wave(prompts):
            t0 = time.perf_counter()
            reqs = [sched.submit(Request(p, SamplingSpec(args.max_tokens, temperature=0.0), m.tokenizer))
                    for p in prompts]
            for r in reqs:
                r.done.wait()
            return time.perf_counter() - t0, sum(r.completion_tokens for r in reqs)

        wave(_prompts(c, args.prompt_tokens, vocab, seed=99))
        prompts = _prompts(c * args.waves, args.prompt_tokens, vocab, seed=0)
        runs = [wave(prompts) for _ in range(args.repeats)]
    finally:
        sched.close()
    wall, tokens = min(runs)
    return {"tokens": tokens, "wall_s": wall, "tok_per_s": tokens / wall}


def load_test(args, vocab: int) -> dict:
    port = _free_port()
    proc = _start_server(args, rows=args.load_rows, port=port)
    try:
        prompts = _prompts(args.load_clients, args.prompt_tokens, vocab, seed=7)
        t0 = time.perf_counter()
        errors, results = [], []
        with concurrent.futures.ThreadPoolExecutor(args.load_clients) as pool:
            futs = [pool.submit(_stream_once, port, p, args.max_tokens) for p in prompts]
            for f in futs:
                try:
                    results.append(f.result())
                except Exception as e:  # noqa: BLE001 - counted and reported
                    errors.append(repr(e))
        wall = time.perf_counter() - t0
    finally:
        _stop_server(proc)
    ok = sum(r["done"] and r["tokens"] == args.max_tokens for r in results)
    return {"clients": args.load_clients, "rows": args.load_rows, "ok": ok, "errors": errors[:5],
            "n_errors": len(errors), "wall_s": wall, "passed": ok == args.load_clients and not errors}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/serving_lm_tiny/hf_export")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--waves", type=int, default=2, help="requests each client sends back to back")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per setting; throughput = the best")
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--multi-step", type=int, default=8)
    ap.add_argument("--load-clients", type=int, default=100)
    ap.add_argument("--load-rows", type=int, default=32)
    ap.add_argument("--out", default="runs/serving_bench/results.json")
    args = ap.parse_args(argv)

    import jax

    from humanai_jax.serving.loading import load_model

    m = load_model(args.model)
    vocab = min(len(m.tokenizer), m.config.vocab_size)
    rows = []
    for c in [int(x) for x in args.concurrency.split(",")]:
        gen = bench_generate(args, m.params, m.config, c, vocab)
        sch = bench_scheduler(args, m, c, vocab)
        srv = bench_server(args, c, vocab)
        row = {"concurrency": c, "server": srv, "scheduler": sch, "generate": gen,
               "ratio": srv["tok_per_s"] / gen["tok_per_s"], "scheduler_ratio": sch["tok_per_s"] / gen["tok_per_s"]}
        rows.append(row)
        print(f"c={c:3d}  server {srv['tok_per_s']:8.1f} tok/s  generate {gen['tok_per_s']:8.1f} tok/s  "
              f"ratio {row['ratio']:.2f}  (scheduler w/o HTTP {sch['tok_per_s']:8.1f} tok/s, "
              f"ratio {row['scheduler_ratio']:.2f})  "
              f"TTFT p50/p99 {srv['ttft_p50_ms']:.1f}/{srv['ttft_p99_ms']:.1f} ms  "
              f"ITL p50/p99 {srv['itl_p50_ms']:.2f}/{srv['itl_p99_ms']:.2f} ms  complete={srv['all_complete']}",
              flush=True)
    load = load_test(args, vocab) if args.load_clients else None
    if load:
        print(f"load test: {load['ok']}/{load['clients']} streams complete with {args.max_tokens} tokens, "
              f"{load['n_errors']} errors, {load['wall_s']:.1f} s ({load['rows']} rows) -> "
              f"{'PASS' if load['passed'] else 'FAIL'}", flush=True)
    out = {"model": args.model, "params": int(sum(x.size for x in jax.tree.leaves(m.params))),
           "args": vars(args), "rows": rows, "load_test": load, "loadavg": os.getloadavg(),
           "backend": jax.default_backend()}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"load average {os.getloadavg()}; wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
