"""Hanzi -> five-element table (spec §3: columns 字, 拼音, 汉字五行, 吉凶寓意, 基本解释; only 字 and 汉字五行 are
required). CSV or TSV (by extension), UTF-8. The shipped `assets/hanzi_sample.tsv` is a small self-written
table for tests and plumbing runs (elements taken from the radical; not authoritative): use the real table for numbers.
"""

from __future__ import annotations

import csv
import importlib.resources
import os

from humanai_jax.methods.namegen.calendar import ELEMENTS

__all__ = ["load_hanzi_table", "sample_hanzi_path", "chars_of_element"]


def sample_hanzi_path() -> str:
    return str(importlib.resources.files("humanai_jax.methods.namegen").joinpath("assets", "hanzi_sample.tsv"))


def load_hanzi_table(path: str | None = None) -> dict[str, str]:
    """{字: 五行} from a table file (default: the shipped sample). Bad rows raise naming file and line."""
    path = path or sample_hanzi_path()
    delimiter = "\t" if path.endswith((".tsv", ".txt")) else ","
    table: dict[str, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = {"字", "汉字五行"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)} (have {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            char, element = (row["字"] or "").strip(), (row["汉字五行"] or "").strip()
            if len(char) != 1 or element not in ELEMENTS:
                raise ValueError(f"{path}:{line}: need one character and an element of {ELEMENTS}, got "
                                 f"{char!r}, {element!r}")
            table.setdefault(char, element)
    if not table:
        raise ValueError(f"{path}: empty Hanzi table")
    return table


def chars_of_element(table: dict[str, str], elements) -> set[str]:
    wanted = set(elements)
    return {c for c, e in table.items() if e in wanted}


def table_name(path: str | None) -> str:
    return os.path.basename(path) if path else "hanzi_sample.tsv (shipped, self-written)"
