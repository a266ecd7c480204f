"""CBNames test set loader (docs/namegen.md §3) and the text helpers shared by the poem store and the Acc metric.

`load_cbnames(data_dir)` reads `test_data_500.csv` (query, user_preference as a Python dict literal, up_w
as a list literal, r_poem) and checks it against `test_up_500.json` (same order and values) and
`up_w == round(s_i / sum s, 4)`; every inconsistency raises naming the file and row.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import re

from humanai_jax.methods.namegen.constants import KEYS

__all__ = ["load_cbnames", "preference_weights", "keep_chinese", "keep_chinese_and_pipe", "normalise_dynasty",
           "parse_r_poem", "default_data_dir", "files_sha256", "csv_records"]

_NON_CJK = re.compile(r"[^\u4e00-\u9fa5]")
_NON_CJK_PIPE = re.compile(r"[^\u4e00-\u9fa5|]")
_R_POEM = re.compile(r"^\s*(?P<dynasty>[^·\n]+)·(?P<author>[^《\n]*)《(?P<title>[^》]*)》\s*\n\s*诗句[：:](?P<lines>.*?)"
                     r"\n\s*赏析[：:](?P<implication>.*)$", re.DOTALL)
_DYNASTY = {"唐": "唐代", "唐朝": "唐代", "初唐": "唐代", "盛唐": "唐代", "中唐": "唐代", "晚唐": "唐代",
            "宋": "宋代", "宋朝": "宋代", "北宋": "宋代", "南宋": "宋代", "元": "元代", "元朝": "元代",
            "明": "明代", "明朝": "明代", "清": "清代", "清朝": "清代", "金": "金朝", "金代": "金朝", "隋": "隋代"}


def default_data_dir() -> str:
    """../shared/data/cbnames next to the repository."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return os.path.join(os.path.dirname(root), "shared", "data", "cbnames")


def files_sha256(paths) -> str:
    """sha256 (first 16 hex digits) over the bytes of `paths` in the given order: names a table's exact version."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def csv_records(path: str, *, delimiter: str = ",", required=()):
    """(line, row dict) for each record of a UTF-8 CSV/TSV with a header; `line` is the 1-based line where the
    record starts (quoted fields may span lines), so errors can name `path:line`. Missing `required` columns
    raise before any record is read."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}:1: missing columns {missing} (header: {reader.fieldnames})")
        start = 2
        for row in reader:
            yield start, row
            start = reader.line_num + 1


def keep_chinese(text: str) -> str:
    return _NON_CJK.sub("", text or "")


def keep_chinese_and_pipe(text: str) -> str:
    return _NON_CJK_PIPE.sub("", text or "")


def normalise_dynasty(dynasty: str) -> str:
    d = (dynasty or "").strip()
    return _DYNASTY.get(d, d)


def preference_weights(scores: dict) -> list[float]:
    """`w_i = round(s_i / sum s, 4)` in KEYS order; all zero -> all zero (no preference expressed)."""
    s = [float(scores.get(k, 0)) for k in KEYS]
    total = sum(s)
    return [round(x / total, 4) if total > 0 else 0.0 for x in s]


def parse_r_poem(text: str, *, where: str = "r_poem") -> dict:
    """`{朝代}·{作者}《{题目}》\\n诗句：a|b|…。\\n赏析：…` -> {dynasty, author, title, content, implication}."""
    m = _R_POEM.match(text or "")
    if m is None:
        raise ValueError(f"{where}: not in the format '朝代·作者《题目》\\n诗句：…\\n赏析：…': {text[:60]!r}")
    lines = m.group("lines").strip().rstrip("。").strip()
    return {"dynasty": normalise_dynasty(m.group("dynasty")), "author": m.group("author").strip(),
            "title": m.group("title").strip(), "content": lines, "implication": m.group("implication").strip()}


def load_cbnames(data_dir: str | None = None) -> list[dict]:
    """The 500 CBNames rows: {id, query, user_preference {key: int}, up_w [5 floats], r_poem, poem}."""
    data_dir = data_dir or default_data_dir()
    csv_path = os.path.join(data_dir, "test_data_500.csv")
    rows = []
    with open(csv_path, encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=1):
            where = f"{csv_path}: row {i}"
            for col in ("query", "user_preference", "up_w", "r_poem"):
                if col not in row or row[col] is None:
                    raise ValueError(f"{where}: missing column {col!r}")
            try:
                pref = ast.literal_eval(row["user_preference"])
                up_w = [float(x) for x in ast.literal_eval(row["up_w"])]
            except (ValueError, SyntaxError) as err:
                raise ValueError(f"{where}: user_preference / up_w is not a Python literal: {err}") from err
            if not isinstance(pref, dict) or sorted(pref) != sorted(KEYS):
                raise ValueError(f"{where}: user_preference keys {sorted(pref)} != the five objective keys")
            if len(up_w) != 5 or up_w != preference_weights(pref):
                raise ValueError(f"{where}: up_w {up_w} != round(s_i / sum s, 4) = {preference_weights(pref)}")
            rows.append({"id": f"cbn{i - 1:03d}", "query": row["query"], "user_preference": pref, "up_w": up_w,
                         "r_poem": row["r_poem"], "poem": parse_r_poem(row["r_poem"], where=f"{where} r_poem")})
    json_path = os.path.join(data_dir, "test_up_500.json")
    if os.path.exists(json_path):
        with open(json_path, encoding="utf-8") as f:
            ups = json.load(f)
        if len(ups) != len(rows):
            raise ValueError(f"{json_path}: {len(ups)} entries, {csv_path} has {len(rows)} rows")
        for i, (u, r) in enumerate(zip(ups, rows)):
            if u.get("query") != r["query"] or u.get("user_preference") != r["user_preference"]:
                raise ValueError(f"{json_path}: entry {i} differs from {csv_path} row {i + 1}")
    return rows
