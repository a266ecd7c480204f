"""Poem store for NAMeGEn: a poem table, semi-exact lookup of named poems, and two-stage BM25 retrieval.

A poem is a dict with `id, title, dynasty, author, content` (lines joined by `|`) and optional
`implication` (赏析), `topics` (`|`- or `;`-separated), `type` (诗/词/…). Sources:
  * `load_poems(path)`: a user-supplied corpus, a file or a directory: CPoetry columns (the reference's
    `poems_All*.csv` / HF `Audrey33/Chinese_poems`) as .jsonl / .csv / .tsv / .json array, or the
    chinese-poetry JSON files (`poet.tang.*.json`, `ci.song.*.json`: title / rhythmic, author, paragraphs);
  * `sample_poems()`: 10 public-domain Tang/Song poems shipped with the package (tests);
  * `poems_from_cbnames(rows)`: the distinct gold `r_poem`s of CBNames (smoke runs only: they are the
    answers of the same queries, so numbers on them are never reported).

Retrieval (docs/namegen.md §2 step 6, "ours"): filter by type and by excluded ids; pre-filter poems whose topics name
the festival / solar term / season (skipped when it leaves nothing, and by the caller from round 5 on);
BM25 of the meanings (寓意) over `topics` keeps the top min(300, n/2); BM25 of the description over
`implication` ranks those; poems containing characters of a missing element come first (stable), annotated
with those characters. BM25 is `rank_bm25.BM25Okapi` (k1 1.5, b 0.75) over character unigrams + bigrams of
CJK runs; ties break by table order. A poem without topics is matched on title + text in the first stage,
one without an appreciation on its text in the second (chinese-poetry records carry neither).
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re

import numpy as np

from humanai_jax.methods.namegen.data import (
    csv_records,
    files_sha256,
    keep_chinese,
    keep_chinese_and_pipe,
    normalise_dynasty,
    parse_r_poem,
)

__all__ = ["PoemStore", "load_poems", "poem_files", "corpus_info", "sample_poems", "poems_from_cbnames", "cjk_tokens",
           "format_poem"]

_CJK_RUN = re.compile(r"[\u4e00-\u9fa5]+")


def cjk_tokens(text: str) -> list[str]:
    """Character unigrams plus bigrams inside each CJK run (no dictionary)."""
    out: list[str] = []
    for run in _CJK_RUN.findall(text or ""):
        out.extend(run)
        out.extend(run[i:i + 2] for i in range(len(run) - 1))
    return out


def _text(value) -> str:
    """A field as text: lists (JSON topics / tags / paragraphs) joined with `|`; None / NaN -> ""."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, (list, tuple)):
        return "|".join(_text(v) for v in value if _text(v))
    return str(value).strip()


def _normalise(p: dict, where: str) -> dict:
    for field in ("title", "author", "content"):
        if not _text(p.get(field)):
            raise ValueError(f"{where}: poem has no {field!r} (fields: {sorted(p)[:12]})")
    return {"id": _text(p.get("id")) or where, "title": _text(p["title"]), "author": _text(p["author"]),
            "dynasty": normalise_dynasty(_text(p.get("dynasty"))), "content": _text(p["content"]),
            "implication": _text(p.get("implication")), "topics": _text(p.get("topics")), "type": _text(p.get("type"))}


# chinese-poetry (github.com/chinese-poetry/chinese-poetry) file names -> dynasty / type
_CP_DYNASTY = {"tang": "唐代", "song": "宋代", "yuan": "元代", "ming": "明代", "qing": "清代", "wudai": "五代"}


def _chinese_poetry(rec: dict, source: str, index: int) -> dict:
    """A chinese-poetry record `{title | rhythmic, author, paragraphs: [...], id?}` in our poem shape. The
    dynasty and type come from the file name (`poet.tang.0.json` -> 唐代 诗, `ci.song.0.json` -> 宋代 词) unless
    the record has them. Such records carry no appreciation or topics."""
    name = os.path.basename(source).lower()
    parts = name.split(".")
    dynasty = next((_CP_DYNASTY[x] for x in parts if x in _CP_DYNASTY), "")
    kind = "词" if parts[0] == "ci" or "rhythmic" in rec else ("诗" if parts[0] == "poet" else "")
    title = rec.get("title") or rec.get("rhythmic")
    if rec.get("title") and rec.get("rhythmic"):
        title = f"{rec['rhythmic']}·{rec['title']}"
    return {"id": _text(rec.get("id")) or f"{os.path.basename(source)}#{index}", "title": title,
            "author": rec.get("author"), "dynasty": rec.get("dynasty") or dynasty,
            "content": "|".join(_text(x) for x in rec.get("paragraphs") or [] if _text(x)),
            "implication": rec.get("implication") or "", "topics": rec.get("topics") or rec.get("tags") or "",
            "type": rec.get("type") or kind}


def _iter_json_array(path: str):
    """(line, element) for each element of a top-level JSON array, with the line where the element starts."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    if not text.startswith("[", pos):
        raise ValueError(f"{path}:1: expected a JSON array of poems")
    pos, line, counted = pos + 1, 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise ValueError(f"{path}: unterminated JSON array")
        if text[pos] == "]":
            return
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: {err.msg}") from err
        yield line, value


def _poems_from_file(path: str) -> list[dict]:
    poems = []
    if path.endswith((".jsonl", ".jsonl.gz")):
        from humanai_jax.data.jsonl import iter_jsonl

        for line, rec in iter_jsonl(path):
            poems.append(_normalise({"id": f"{line}", **rec}, f"{path}:{line}"))
    elif path.endswith(".json"):
        for i, (line, rec) in enumerate(_iter_json_array(path)):
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{line}: a poem must be a JSON object, got {type(rec).__name__}")
            if "paragraphs" in rec:
                rec = _chinese_poetry(rec, path, i)
            poems.append(_normalise({"id": f"{os.path.basename(path)}#{i}", **{k: v for k, v in rec.items()
                                                                             if v is not None}}, f"{path}:{line}"))
    elif path.endswith((".csv", ".tsv")):
        for line, rec in csv_records(path, delimiter="\t" if path.endswith(".tsv") else ",",
                                     required=("title", "author", "content")):
            poems.append(_normalise({"id": f"{line}", **rec}, f"{path}:{line}"))
    else:
        raise ValueError(f"{path}: unknown poem file type (use .jsonl, .json, .csv or .tsv)")
    return poems


def poem_files(path: str) -> list[str]:
    """The files a poem source names: the file itself, or every .json / .jsonl / .csv file under a directory
    (sorted; e.g. a checkout of chinese-poetry's 全唐诗/ and 宋词/ folders)."""
    if os.path.isdir(path):
        files = sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names
                       if f.endswith((".json", ".jsonl", ".csv")) and not f.startswith(("author", "authors")))
        if not files:
            raise ValueError(f"{path}: no .json / .jsonl / .csv poem files in this directory")
        return files
    if not os.path.exists(path):
        raise FileNotFoundError(f"poem corpus {path!r} does not exist")
    return [path]


def load_poems(path: str) -> list[dict]:
    """Poems from a user corpus: a file or a directory of files (see `poem_files`). Formats:
    CPoetry columns (`id, title, dynasty, author, content` with `|`-separated lines, `implication, topics, type`)
    as `.jsonl`, `.csv`, `.tsv` or a `.json` array; or chinese-poetry `.json` arrays (`title`/`rhythmic`,
    `author`, `paragraphs`). Errors name `file:line`; ids must be unique across files."""
    poems: list[dict] = []
    for file in poem_files(path):
        poems.extend(_poems_from_file(file))
    if not poems:
        raise ValueError(f"{path}: no poems")
    seen: dict[str, int] = {}
    for p in poems:
        if p["id"] in seen:
            raise ValueError(f"{path}: poem id {p['id']!r} appears twice")
        seen[p["id"]] = 1
    return poems


def corpus_info(source: str, poems: list[dict]) -> dict:
    """Provenance of the poem table for manifest.json / results.json."""
    if source in ("sample", "gold"):
        return {"source": source, "n_poems": len(poems), "sample": True,
                "note": "shipped 10-poem sample" if source == "sample" else "CBNames gold r_poem (smoke only)"}
    files = poem_files(source)
    return {"source": "user file", "path": os.path.abspath(source), "n_files": len(files),
            "sha256": files_sha256(files), "n_poems": len(poems), "sample": False,
            "n_with_implication": sum(bool(p["implication"]) for p in poems),
            "n_with_topics": sum(bool(p["topics"]) for p in poems)}


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
        # A poem without topics / appreciation (e.g. chinese-poetry records) is matched on its title and text.
        self._topics = BM25Okapi([cjk_tokens(p["topics"] or p["title"] + p["content"]) or ["∅"] for p in poems])
        self._implication = BM25Okapi([cjk_tokens(p["implication"] or p["content"]) or ["∅"] for p in poems])
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
