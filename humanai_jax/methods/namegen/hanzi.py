"""Hanzi -> five-element table (docs/namegen.md §3). The real table is the reference's `hanzi_poems.csv` /
`hanzi_all_simple.csv` (HF `Audrey33/Chinese_hanzi_poem`; columns `字, 拼音, 汉字五行, 吉凶寓意, 基本解释, …`, any
extra columns ignored). Only `字` and `汉字五行` are read. Formats, by extension: `.csv` (comma), `.tsv` / `.txt`
(tab), `.jsonl` (one `{"字": …, "汉字五行": …}` object per line), UTF-8 (a BOM is accepted).

Rules (those of the reference's `SearchHanzi.getWuxingByHanzi`): an empty / `nan` / `无` element means the
character has no element in the table (it is left out: a claim about it cannot be verified, so the Acc check
fails, and the generation-side rule check skips it); a character listed twice keeps its first element
(conflicting duplicates are counted). Any other value (not one of 木火土金水) raises naming `file:line`.

The shipped `assets/hanzi_sample.tsv` is a small self-written table for tests and plumbing runs (elements taken
from the radical; not authoritative). `read_hanzi_table` returns the table and a provenance dict (path, sha256,
counts, `sample`) that the run writes into manifest.json and results.json, so every Acc number says which table
it was checked against.
"""

from __future__ import annotations

import importlib.resources
import os

from humanai_jax.methods.namegen.calendar import ELEMENTS
from humanai_jax.methods.namegen.data import csv_records, files_sha256

__all__ = ["load_hanzi_table", "read_hanzi_table", "sample_hanzi_path", "chars_of_element"]

_NO_ELEMENT = ("", "nan", "none", "null", "无")


def sample_hanzi_path() -> str:
    return str(importlib.resources.files("humanai_jax.methods.namegen").joinpath("assets", "hanzi_sample.tsv"))


def _rows(path: str):
    if path.endswith((".jsonl", ".jsonl.gz")):
        from humanai_jax.data.jsonl import iter_jsonl

        for line, rec in iter_jsonl(path):
            if "字" not in rec or "汉字五行" not in rec:
                raise ValueError(f"{path}:{line}: need the fields '字' and '汉字五行' (has {sorted(rec)[:10]})")
            yield line, rec
        return
    delimiter = "\t" if path.endswith((".tsv", ".txt")) else ","
    yield from csv_records(path, delimiter=delimiter, required=("字", "汉字五行"))


def read_hanzi_table(path: str | None = None) -> tuple[dict[str, str], dict]:
    """({字: 五行}, provenance) from a table file (default: the shipped sample). Bad rows raise naming file:line."""
    sample = path is None
    path = path or sample_hanzi_path()
    table: dict[str, str] = {}
    n_rows = no_element = conflicts = 0
    for line, row in _rows(path):
        n_rows += 1
        char = str(row.get("字") or "").strip()
        raw = row.get("汉字五行")
        element = "" if raw is None else str(raw).strip()
        if len(char) != 1:
            raise ValueError(f"{path}:{line}: '字' must be one character, got {char!r}")
        if element.lower() in _NO_ELEMENT:
            no_element += 1
            continue
        if element not in ELEMENTS:
            raise ValueError(f"{path}:{line}: '汉字五行' must be one of {ELEMENTS} or empty, got {element!r}")
        if char in table:
            conflicts += table[char] != element
            continue
        table[char] = element
    if not table:
        raise ValueError(f"{path}: no character with an element")
    info = {"path": os.path.abspath(path), "sha256": files_sha256([path]), "n_rows": n_rows, "n_chars": len(table),
            "n_no_element": no_element, "n_conflicting_duplicates": conflicts, "sample": sample,
            "source": "shipped self-written sample (not authoritative)" if sample else "user file"}
    return table, info


def load_hanzi_table(path: str | None = None) -> dict[str, str]:
    """{字: 五行} (see `read_hanzi_table`)."""
    return read_hanzi_table(path)[0]


def chars_of_element(table: dict[str, str], elements) -> set[str]:
    wanted = set(elements)
    return {c for c, e in table.items() if e in wanted}
