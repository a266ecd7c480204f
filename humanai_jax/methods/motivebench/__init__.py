"""MotiveBench (arXiv 2506.13065): human-like motivational reasoning, 600 six-option items over
Persona, Blog and Amazon scenarios, evaluated on any `humanai_jax.agents.ChatBackend`.

Modules, read in this order:
  data.py       loader of `<Source>_questions.json` with `file:line` schema errors; items per task.
  orders.py     the option orders (`base6`, `all18`) and the gold-letter remapping.
  prompting.py  the reference prompts (data files in `prompts/`) for the direct and step-by-step modes.
  extract.py    answer extraction: the reference rule and a robust rule, both always reported.
  baselines.py  LLM-free floors: random option, first option, longest option, lexical overlap.
  metrics.py    per-task and all-three accuracy per order, mean / variance over orders, exact CIs.
  runner.py     sources x orders x items -> chat calls (traced) -> predictions -> results.
  sources.py    raw-source loaders (Amazon scenarios, Blog extractions) with need-level normalisation.
  backends.py   a ChatBackend from a config block (scripted, project run, HF dir, OpenAI-compatible,
                record / replay).

Spec: docs/motivebench.md. See docs/motivebench.md.
"""
