"""Reading model replies (docs/trendsim.md §4-§7). Each parser has a reference-compatible mode and a robust mode.

decision (`parse_decision`):
  reference: the first digit of the reply; no digit -> code 0 (biases towards Enter / Like post / Like
             comment); a digit not valid in the state -> Leave (Entry, Main) or Back (Comment).
  robust:    `<think>` blocks dropped first; no digit -> Leave / Back; invalid digit -> Leave / Back.
percentages (`parse_percent`, both modes): the first integer / 100, capped at 1.0; no integer -> 0.5 (a reset,
  not the previous value).
comment index (`parse_index`):
  reference: the stripped reply must be all digits, else 0.  robust: the first integer, else 0.
moderation (`parse_flag`): the first digit is 1 -> malicious; otherwise (or no digit) -> published.
Every parser also returns a status ("ok" | "no_digit" | "invalid") so the invalid-decision rate is measurable.
"""

from __future__ import annotations

import re

ENTRY, MAIN, COMMENT = "Entry", "Main", "Comment"
ACTIONS = {
    ENTRY: {0: "enter", 1: "leave"},
    MAIN: {0: "like_post", 1: "comment", 2: "repost", 3: "more_comments", 4: "open_comment", 5: "leave"},
    COMMENT: {0: "like_comment", 1: "reply", 2: "back"},
}
EXIT_CODE = {ENTRY: 1, MAIN: 5, COMMENT: 2}  # Leave / Leave / Back
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_INT = re.compile(r"\d+")
MODES = ("reference", "robust")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"parse mode must be one of {MODES}, got {mode!r}")


def parse_decision(text: str, state: str, mode: str = "reference") -> tuple[int, str]:
    """(action code, status) for the page state `state`; see the module docstring."""
    _check_mode(mode)
    if state not in ACTIONS:
        raise ValueError(f"unknown page state {state!r}; valid: {list(ACTIONS)}")
    if mode == "robust":
        text = _THINK.sub("", text)
    m = _DIGIT.search(text)
    if m is None:
        return (0 if mode == "reference" else EXIT_CODE[state]), "no_digit"
    code = int(m.group())
    if code not in ACTIONS[state]:
        return EXIT_CODE[state], "invalid"
    return code, "ok"


def parse_percent(text: str) -> tuple[float, str]:
    """(value in [0, 1], status): first integer / 100 capped at 1.0; none -> (0.5, "no_digit")."""
    m = _INT.search(text)
    if m is None:
        return 0.5, "no_digit"
    return min(int(m.group()) / 100.0, 1.0), "ok"


def parse_index(text: str, mode: str = "reference") -> tuple[int, str]:
    """(hot-list position, status); see the module docstring."""
    _check_mode(mode)
    stripped = text.strip()
    if mode == "reference":
        return (int(stripped), "ok") if stripped.isdigit() else (0, "invalid")
    m = _INT.search(_THINK.sub("", text))
    return (int(m.group()), "ok") if m else (0, "no_digit")


def parse_flag(text: str) -> tuple[bool, str]:
    """(hidden, status): first digit 1 -> hidden; 0 or another digit -> published; no digit -> published."""
    m = _DIGIT.search(text)
    if m is None:
        return False, "no_digit"
    return m.group() == "1", "ok" if m.group() in "01" else "invalid"
