"""OpenAI-compatible serving over the JAX decoding engine, with continuous batching.

  python -m humanai_jax.serving --model DIR [--port 8000]

`model`: row-wise KV-cache steps (fixed shapes, jitted once); `scheduler`: the continuous-batching
thread; `protocol`: request validation; `app`: the FastAPI app (+ `ServerThread` for tests);
`loading`: checkpoint + tokenizer loading and a tiny random checkpoint. See docs/serving.md.
"""

from humanai_jax.serving.scheduler import QueueFull, Request, SamplingSpec, Scheduler, ShuttingDown

__all__ = ["QueueFull", "Request", "SamplingSpec", "Scheduler", "ShuttingDown"]
