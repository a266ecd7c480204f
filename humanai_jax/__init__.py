"""humanai_jax: a JAX functional research codebase for human-centred AI methods.

Core modules (methods import these, never the reverse):
  backbone/   HF-compatible decoder-only LLM as pure functions over parameter pytrees
  sharding    meshes and logical-axis rules
  checkpoint  Orbax CheckpointManager wrapper
  train/      generic trainer pieces (state, optimizer, losses, step, loop)
  decoding/   jitted KV-cache generation engine
  experiment  workdir helpers shared by every experiment (metrics.jsonl, results.json)
  configs     helpers for ml-collections experiment configs
"""

__version__ = "0.1.0"
