"""NAMeGEn (arXiv 2511.15408): multi-agent Chinese baby naming (MOM / MOG / MOE) and the CBNames metric suite.

Modules: constants (keys, flags, tau), calendar (birth-time parser + cnlunar facts), data (CBNames loader),
hanzi (element table), poems (poem store: CPoetry / chinese-poetry corpora, rank_bm25 retrieval), llm (traced
calls with JSON repair), pipeline (the agent loop and ablations), baselines, metrics, novelty (the optional Nov
metric), fetch_tables (opt-in table download), backends (mock / project / hf / openai / replay), runner
(resumable runs). Prompts: prompts/zh/*.txt; shipped sample data: assets/. See docs/namegen.md.
"""
