"""The reference prompts (`client_eval.py`), kept as data in `prompts/`:

  system        "You ara a helpful AI assistant." (the reference's typo, kept for comparability)
  question      lead-in naming the task type, the stem, `Options: ` + Python `str()` of the relabelled
                option list, then the mode's suffix
  suffix_direct answer with one character only
  suffix_cot    think step by step; the last line holds only the chosen letter
  parse_system  the system prompt of the optional parse-mode extractor model
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from humanai_jax.agents import PromptLibrary
from humanai_jax.methods.motivebench.data import Item
from humanai_jax.methods.motivebench.orders import permute_options, permuted_gold

__all__ = ["PROMPTS", "MODES", "question_text", "build_messages", "system_prompt"]

PROMPTS = PromptLibrary("humanai_jax.methods.motivebench")
MODES = ("direct", "cot")


@functools.cache
def _task_names() -> dict[str, str]:
    return PROMPTS.json("task_names")


def system_prompt() -> str:
    return PROMPTS.text("system")


def question_text(item: Item, order: Sequence[int], mode: str) -> str:
    """The user message for `item` with options shown in `order` (reference layout, byte for byte)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {MODES}")
    return PROMPTS.render("question", type_name=_task_names()[item.task], stem=item.stem,
                          options=str(permute_options(item.options, order)), suffix=PROMPTS.text(f"suffix_{mode}"))


def build_messages(item: Item, order: Sequence[int], mode: str, system: str | None = None) -> tuple[list[dict], str]:
    """`(messages, gold letter under order)`; `system=None` uses the reference system prompt, "" drops it."""
    system = system_prompt() if system is None else system
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question_text(item, order, mode)})
    return messages, permuted_gold(item.gold, order)
