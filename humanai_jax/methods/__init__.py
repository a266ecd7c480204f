"""Method library code, one folder per seed system (sad, humanllm, plus, reclm, ...).

Methods import the core (`humanai_jax.backbone`, `train`, `decoding`, `rl`, `recsys`, `agents`, ...),
never each other; the core never imports `humanai_jax.methods` (tests/test_layout.py enforces both).
"""
