"""LearnArena (arXiv 2506.13464): general learning ability of a chat model along three dimensions,
Learning from Instructor (LfI), from Concept (LfC) and from Experience (LfE), on offline text games and
math problems, on any `humanai_jax.agents.ChatBackend`.

Modules:
  games/       the `GameEnv` protocol and native games (TicTacToe-v0, ConnectFour-v0); textarena is not used.
  players.py   LLM-free players: random legal move, heuristic (perfect minimax for TicTacToe).
  prompting.py the reference prompts (data files in `prompts/`) and the Player-1 system-prompt composition.
  agents.py    RoleAgent (swappable system prompt, call tag) and the tracing backend wrapper.
  scoring.py   the judge score through `humanai_jax.eval.judge` (`(\\d+)/10` rule), or the outcome score.
  learning.py  experience pool and top-k selection.
  loop.py      the integrated benchmark loop, the LfC and LfE variants, per-game summaries.
  math_lfi.py  LfI on math: the reference no-hint protocol and our passive / interactive tutoring.

Spec: docs/learnarena.md. See docs/learnarena.md.
"""
