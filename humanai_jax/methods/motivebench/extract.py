"""Answer-letter extraction from a model reply: the reference rule and a robust rule.

`reference_letter(text, mode)` reproduces `client_eval.py`:
    text.strip('assistant\\n\\n').strip()               # a character-set strip of a,s,i,t,n and newlines
        .strip('.').strip("'").strip('"').strip('*').strip('*')
    then the first (direct) or last (cot) character, uppercased.
It returns that character whatever it is (a letter outside A-F simply never matches the gold); an empty
reply, where the reference would crash with IndexError, returns None (invalid).

`robust_letter(text, mode)` (ours): the region is the whole reply (direct) or its last non-empty line
(cot); `<think>...</think>` blocks are removed first. Candidates in the region, in priority order:
  1. the region is one letter A-F apart from punctuation / markup (`**C**`, `(C)`, `C.`);
  2. an explicit statement: `answer is C`, `Answer: C`, `option C`, `choice: (C)`;
  3. a standalone capital A-F that is not the English article "A" (an "A" followed by a lowercase word);
Direct takes the first candidate of the highest class found, cot the last. No candidate -> None
(invalid, counted as wrong; the invalid rate is reported per model and mode).
"""

from __future__ import annotations

import re

__all__ = ["reference_letter", "robust_letter", "extract", "RULES"]

RULES = ("reference", "robust")
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_ONLY = re.compile(r"^[\s*_`'\"(\[{<]*([A-F])[\s*_`'\".):\]}>]*$")
_STATED = re.compile(r"(?i:answer|option|choice)\s*(?i:is|:|=)?\s*[*_`'\"(\[]*([A-F])(?![A-Za-z0-9])")
_STANDALONE = re.compile(r"(?<![A-Za-z0-9])([A-F])(?![A-Za-z0-9])")
_ARTICLE = re.compile(r"\s+[a-z]")


def reference_letter(text: str, mode: str) -> str | None:
    s = text.strip("assistant\n\n").strip()  # noqa: B005 - the reference's character-set strip, on purpose
    s = s.strip(".").strip("'").strip('"').strip("*").strip("*")
    if not s:
        return None
    return (s[0] if mode == "direct" else s[-1]).upper()


def robust_letter(text: str, mode: str) -> str | None:
    text = _THINK.sub("", text or "")
    if mode == "cot":
        lines = [ln for ln in text.splitlines() if ln.strip()]
        region = lines[-1] if lines else ""
    else:
        region = text
    region = region.strip()
    m = _ONLY.match(region)
    if m:
        return m.group(1)
    for pattern in (_STATED, _STANDALONE):
        found = [m.group(1) for m in pattern.finditer(region)
                 if not (m.group(1) == "A" and _ARTICLE.match(region, m.end()))]
        if found:
            return found[0] if mode == "direct" else found[-1]
    return None


def extract(text: str, mode: str, rule: str) -> str | None:
    if rule == "reference":
        return reference_letter(text, mode)
    if rule == "robust":
        return robust_letter(text, mode)
    raise ValueError(f"unknown extraction rule {rule!r}; valid: {', '.join(RULES)}")
