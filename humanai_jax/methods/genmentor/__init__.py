"""GenMentor (arXiv 2501.15749): goal-oriented multi-agent tutoring, with a goal-to-skill model trained here.

  schemas.py     pydantic schemas of every agent output, with the spec's domain validators
  llm.py         Tracer (traces.jsonl) + Caller (ChatBackend call, JSON ladder, validation, capped repair)
  agents.py      agents 1-12 (goal refiner ... learner simulation), prompts from prompts/en/*.txt
  content.py     explore -> draft (BM25 context, chat_batch) -> integrate -> markdown -> quiz; baselines
  retrieval.py   BM25 over a local document folder / over the skill taxonomy (rank-bm25)
  metrics.py     skill P/R/F1 with matchers, path and content checks, profile accuracy
  goal2skill.py  taxonomy -> (goal, track, skills) dataset, SFT with the shared Trainer, evaluation vs BM25
  backends.py    ChatBackend from a config block (mock plumbing model, hf, openai, replay, record)
  runner.py      a tutoring run over simulated learners: traces, manifest, results
See docs/genmentor.md.
"""
