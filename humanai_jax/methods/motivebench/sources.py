"""Raw-source loaders (docs/motivebench.md §3): `amazon_scenarios_1000.json` and `blog_extracted.json`, the records the
benchmark items were generated from, with their need labels normalised to the five Maslow levels through
an explicit table (unknown, missing and multi-label values -> None). For analysis and item synthesis;
the released question files carry no link back to these records.
"""

from __future__ import annotations

import json
import os

__all__ = ["LEVELS", "normalize_need", "load_amazon_scenarios", "load_blog_extracted"]

LEVELS = ("physiological", "safety", "love_belonging", "esteem", "self_actualization")
_NEED = {
    "physiological": "physiological", "physiological needs": "physiological",
    "safety": "safety", "safety needs": "safety",
    "social": "love_belonging", "love needs": "love_belonging", "love and belonging": "love_belonging",
    "love and belonging needs": "love_belonging", "social needs": "love_belonging",
    "esteem": "esteem", "esteem needs": "esteem", "respect needs": "esteem",
    "self-actualization": "self_actualization", "self-actualization needs": "self_actualization",
}


def normalize_need(label) -> str | None:
    """One of LEVELS, or None for a missing, unknown or multi-label value (e.g. "social', 'esteem")."""
    if not isinstance(label, str):
        return None
    return _NEED.get(label.strip().lower())


def _load(path: str):
    if not os.path.exists(path):
        raise FileNotFoundError(f"MotiveBench raw-source file {path} does not exist")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_amazon_scenarios(path: str) -> list[dict]:
    """Records `{goods_title, ..., motivation_category, analysis}` plus `level` (normalised or None)."""
    data = _load(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of scenario records")
    out = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or "scenario" not in rec:
            raise ValueError(f"{path}: record {i} is not an object with a 'scenario'")
        out.append({**rec, "level": normalize_need(rec.get("motivation_category"))})
    return out


def load_blog_extracted(path: str) -> dict[str, dict]:
    """`{blog id: record}` with `level` from "High-level Need Category" and `score` as an int."""
    data = _load(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by blog id")
    out = {}
    for key, rec in data.items():
        try:
            score = int(rec["score"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: entry {key!r} has no integer 'score' (got {rec.get('score')!r})") from None
        out[key] = {**rec, "score": score, "level": normalize_need(rec.get("High-level Need Category"))}
    return out
