"""`python -m humanai_jax.serving --model DIR [--port 8000]`: serve a checkpoint over the OpenAI API.

DIR is a HF checkpoint directory (config.json + safetensors + tokenizer files, e.g. the
`hf_export/` of `experiments.lm` with `--config.ckpt.export_hf=True`); `--tokenizer` points elsewhere
when the tokenizer is not in DIR. `--tiny DIR` first writes a random tiny checkpoint there (offline
smoke tests). See docs/serving.md.
"""

from __future__ import annotations

import argparse
import logging


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m humanai_jax.serving", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF checkpoint directory")
    ap.add_argument("--tokenizer", default=None, help="tokenizer directory (default: DIR, else DIR/../tokenizer)")
    ap.add_argument("--served-model-name", default=None, help="the `model` name clients send (default: DIR's name)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--rows", type=int, default=16, help="batch rows (concurrent sequences) in the KV cache")
    ap.add_argument("--max-model-len", type=int, default=1024, help="context limit: prompt + max_tokens")
    ap.add_argument("--chunk", type=int, default=64, help="prefill chunk length (tokens)")
    ap.add_argument("--multi-step", type=int, default=4, help="decode steps per device call when possible")
    ap.add_argument("--max-waiting", type=int, default=256, help="queued requests before HTTP 429")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--seed", type=int, default=0, help="seeds requests that send no seed")
    ap.add_argument("--drain-s", type=float, default=10.0, help="on shutdown, seconds running requests may finish")
    ap.add_argument("--no-stop", action="store_true",
                    help="never stop at end-of-sequence ids (benchmarks: every request makes max_tokens tokens)")
    ap.add_argument("--no-warmup", action="store_true", help="skip compiling every step variant at start-up")
    ap.add_argument("--tiny", action="store_true", help="write a random tiny checkpoint to --model first")
    args = ap.parse_args(argv)

    import uvicorn

    from humanai_jax.serving.app import create_app
    from humanai_jax.serving.loading import load_model, make_tiny_checkpoint
    from humanai_jax.serving.scheduler import Scheduler

    logging.basicConfig(level=logging.INFO)
    if args.tiny:
        make_tiny_checkpoint(args.model)
    m = load_model(args.model, tokenizer_dir=args.tokenizer, name=args.served_model_name, dtype=args.dtype)
    stops = () if args.no_stop else m.stop_ids
    sched = Scheduler(m.params, m.config, m.tokenizer, stops, rows=args.rows, max_len=args.max_model_len,
                      chunk=args.chunk, multi_step=args.multi_step, max_waiting=args.max_waiting, seed=args.seed,
                      warmup=not args.no_warmup)
    app = create_app(sched, m.name, drain_s=args.drain_s)
    logging.info("serving %s (%s) on http://%s:%d/v1 with %d rows", m.name, m.path, args.host, args.port, args.rows)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=int(args.drain_s) + 5)


if __name__ == "__main__":
    main()
