"""Poem store for NAMeGEn: a poem table, semi-exact lookup of named poems, and two-stage BM25 retrieval.

A poem is a dict with `id, title, dynasty, author, content` (lines joined by `|`) and optional
`implication` (赏析), `topics` (`|`- or `;`-separated), `type` (诗/词/…). Sources:
  * `load_poems(path)`: a user-supplied corpus (JSONL, or CSV with those columns, e.g. the CPoetry export);
  * `sample_poems()`: 10 public-domain Tang/Song poems shipped with the package (tests);
  * `poems_from_cbnames(rows)`: the distinct gold `r_poem`s of CBNames (smoke runs only: they are the
    answers of the same queries, so numbers on them are never reported).

Retrieval (spec §2 step 6, "ours"): filter by type and by excluded ids; pre-filter poems whose topics name
the festival / solar term / season (skipped when it leaves nothing, and by the caller from round 5 on);
BM25 of the meanings (寓意) over `topics` keeps the top min(300, n/2); BM25 of the description over
`implication` ranks those; poems containing characters of a missing element come first (stable), annotated
with those characters. BM25 is `rank_bm25.BM25Okapi` (k1 1.5, b 0.75) over character unigrams + bigrams of
CJK runs; ties break by table order.
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import re

import numpy as np

from humanai_jax.methods.namegen.data import keep_chinese, keep_chinese_and_pipe, normalise_dynasty, parse_r_poem

__all__ = ["PoemStore", "load_poems", "sample_poems", "poems_from_cbnames", "cjk_tokens", "format_poem"]

_CJK_RUN = re.compile(r"[\u4e00-\u9fa5]+")


def cjk_tokens(text: str) -> list[str]:
    """Character unigrams plus bigrams inside each CJK run (no dictionary)."""
    out: list[str] = []
    for run in _CJK_RUN.findall(text or ""):
        out.extend(run)
        out.extend(run[i:i + 2] for i in range(len(run) - 1))
    return out


def _normalise(p: dict, where: str) -> dict:
    for field in ("title", "author", "content"):
        if not str(p.get(field) or "").strip():
            raise ValueError(f"{where}: poem has no {field!r}")
    return {"id": str(p.get("id") or where), "title": str(p["title"]).strip(), "author": str(p["author"]).strip(),
            "dynasty": normalise_dynasty(str(p.get("dynasty") or "")), "content": str(p["content"]).strip(),
            "implication": str(p.get("implication") or ""), "topics": str(p.get("topics") or ""),
            "type": str(p.get("type") or "")}


def load_poems(path: str) -> list[dict]:
    """Poems from a JSONL or CSV file (see the module docstring); errors name the file and line."""
    poems = []
    if path.endswith((".jsonl", ".jsonl.gz")):
        from humanai_jax.data.jsonl import iter_jsonl

        for line, rec in iter_jsonl(path):
            poems.append(_normalise({"id": f"{line}", **rec}, f"{path}:{line}"))
    else:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for line, rec in enumerate(csv.DictReader(f), start=2):
                poems.append(_normalise({"id": f"{line}", **rec}, f"{path}:{line}"))
    if not poems:
        raise ValueError(f"{path}: no poems")
    return poems


def sample_poems() -> list[dict]:
    res = importlib.resources.files("humanai_jax.methods.namegen").joinpath("assets", "poems_sample.jsonl")
    return [_normalise(json.loads(line), f"poems_sample.jsonl:{i}")
            for i, line in enumerate(res.read_text(encoding="utf-8").splitlines(), start=1) if line.strip()]


def poems_from_cbnames(rows: list[dict]) -> list[dict]:
    """The distinct gold poems of CBNames rows; `topics` = the appreciation text (the rows carry no topics)."""
    seen, poems = set(), []
    for row in rows:
        if row["r_poem"] in seen:
            continue
        seen.add(row["r_poem"])
        p = parse_r_poem(row["r_poem"], where=row.get("id", "r_poem"))
        poems.append(_normalise({**p, "id": f"gold{len(poems):03d}", "topics": p["implication"]}, row.get("id", "")))
    return poems


def format_poem(p: dict) -> str:
    """The `{朝代}·{作者}《{题目}》\\n诗句：…。\\n赏析：…` form used in prompts (and in CBNames' r_poem)."""
    text = f"{p['dynasty']}·{p['author']}《{p['title']}》\n诗句：{p['content']}。\n赏析：{p.get('implication', '')}"
    if p.get("element_chars"):
        text += f"\n含缺失五行的字：{'、'.join(p['element_chars'])}"
    return text


class PoemStore:
    """A poem table with BM25 indexes over `topics` and `implication` (built once; rank_bm25)."""

    def __init__(self, poems: list[dict]):
        from rank_bm25 import BM25Okapi

        if not poems:
            raise ValueError("PoemStore needs at least one poem")
        poems = [_normalise(p, f"poem {i}") for i, p in enumerate(poems)]
        ids = [p["id"] for p in poems]
        if len(set(ids)) != len(ids):
            raise ValueError("PoemStore: poem ids are not unique")
        self.poems = poems
        self.by_id = {p["id"]: p for p in poems}
        # rank_bm25 divides by the mean length: an all-empty field gets a placeholder token.
        self._topics = BM25Okapi([cjk_tokens(p["topics"]) or ["∅"] for p in poems])
        self._implication = BM25Okapi([cjk_tokens(p["implication"]) or ["∅"] for p in poems])
        self._text = [keep_chinese(p["content"]) for p in poems]

    def __len__(self) -> int:
        return len(self.poems)

    def lookup(self, title: str = "", author: str = "", lines: str = "") -> list[dict]:
        """Semi-exact lookup of a named poem: title ⊂, author ⊂ and every given line ⊂ text (CJK only)."""
        t, a = keep_chinese(title), keep_chinese(author)
        line_list = [x for x in keep_chinese_and_pipe(lines).split("|") if x]
        if not (t or line_list):
            return []
        return [p for p, text in zip(self.poems, self._text)
                if t in keep_chinese(p["title"]) and a in p["author"] and all(x in text for x in line_list)]

    def search(self, meanings: str, description: str, k: int = 5, *, types=(), prefilter_terms=(),
               exclude_ids=(), element_chars: set[str] | frozenset = frozenset()) -> list[dict]:
        """Top-k poems (copies, with `element_chars` annotated) for a meaning string and a description."""
        exclude = set(exclude_ids)
        types = [t for t in types if t and t != "无"]
        cand = [i for i, p in enumerate(self.poems)
                if p["id"] not in exclude and (not types or any(t in p["type"] for t in types))]
        terms = [t for t in prefilter_terms if t and t != "无"]
        if terms:
            narrowed = [i for i in cand if any(t in self.poems[i]["topics"] for t in terms)]
            cand = narrowed or cand
        if not cand:
            return []
        cand_arr = np.asarray(cand)
        keep = max(k, min(300, len(cand) // 2))
        s1 = self._topics.get_scores(cjk_tokens(meanings))[cand_arr]
        stage1 = cand_arr[np.argsort(-s1, kind="stable")[:keep]]
        stage1.sort()  # back to table order so that ties in stage 2 break by table order
        s2 = self._implication.get_scores(cjk_tokens(description))[stage1]
        ranked = [int(i) for i in stage1[np.argsort(-s2, kind="stable")]]
        out = []
        for i in ranked:
            p = dict(self.poems[i])
            p["element_chars"] = sorted({c for c in keep_chinese(p["content"]) if c in element_chars})
            out.append(p)
        out.sort(key=lambda p: not p["element_chars"])  # stable: missing-element poems first
        return out[:k]
