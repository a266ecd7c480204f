"""Nov, the optional name-novelty metric of CBNames (docs/namegen.md §4; the reference's `eval_Nov` on its Python port of
the R package ChineseNames, `utils/ChineseNames.py`).

Per given-name character (up to 3), from the ChineseNames `givenname` table (2,614 characters; CSV columns
`character, name.ppm, ppm.1930_1959, …, corpus.uniqueness, name.valence, name.warmth, name.competence`):
  NU  = -log10((ppm + 1) / 10^6)          name uniqueness, ~1-6 (ppm: per-million use in given names)
  CCU = corpus.uniqueness                  character uniqueness in a contemporary corpus, ~1-6
  NV, NW, NC = name.valence / warmth / competence   raters' means, 1-5
each averaged over the characters found in the table (characters not in it are skipped, as the reference's
left join + NaN-skipping mean does). Then
  Nov = mean((NU-1)/5, (CCU-1)/5, (NV-1)/4, (NW-1)/4, (NC-1)/4)       (0-1 scale, as the reference)
A name none of whose given-name characters is in the table has no Nov (counted, not scored).

The given name is the name minus the surname: two characters when the name starts with a compound surname of
the `familyname` table (`surname, compound` columns; optional) and is longer than two, else one.

Frequency column: ours uses `name.ppm` (all birth cohorts 1930-2008; then NU equals the table's own
`name.uniqueness`). The reference calls `compute_name_index(birth=[0]*n)`, which its year recoding maps to the
1930-1959 cohort: `compat=True` uses `ppm.1930_1959` as it does. The reference also rounds each index to 2
decimals before normalising; we do not round.

The tables are not shipped (GPL-3 code, data under CC BY-NC-SA per the package's README-CSV; see docs/namegen.md):
the user passes `names=PATH/givenname.csv` (and optionally `surnames=PATH/familyname.csv`) from
github.com/psychbruce/ChineseNames/tree/master/data-csv or exported from the CRAN package.
"""

from __future__ import annotations

import math
import os

import numpy as np

from humanai_jax.methods.namegen.data import csv_records, files_sha256

__all__ = ["NameTable", "load_name_table", "load_compound_surnames", "given_name", "name_indices", "NOV_INDICES"]

NOV_INDICES = ("NU", "CCU", "NV", "NW", "NC")
_COLUMNS = {"CCU": "corpus.uniqueness", "NV": "name.valence", "NW": "name.warmth", "NC": "name.competence"}
_RANGES = {"NU": (1.0, 6.0), "CCU": (1.0, 6.0), "NV": (1.0, 5.0), "NW": (1.0, 5.0), "NC": (1.0, 5.0)}


class NameTable(dict):
    """{character: {"ppm": float, "CCU": float, "NV": float, "NW": float, "NC": float}} plus `info` (provenance)."""

    info: dict


def _number(row: dict, column: str, where: str) -> float:
    raw = str(row.get(column) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{where}: column {column!r} is not a number: {raw!r}") from None
    if math.isnan(value) or value < 0:
        raise ValueError(f"{where}: column {column!r} must be a non-negative number, got {raw!r}")
    return value


def load_name_table(path: str, *, compat: bool = False) -> NameTable:
    """The ChineseNames `givenname` table; bad cells raise naming `file:line` and the column."""
    ppm_column = "ppm.1930_1959" if compat else "name.ppm"
    required = ("character", ppm_column, *_COLUMNS.values())
    table = NameTable()
    for line, row in csv_records(path, required=required):
        where = f"{path}:{line}"
        char = str(row["character"] or "").strip()
        if len(char) != 1:
            raise ValueError(f"{where}: 'character' must be one character, got {char!r}")
        if char in table:
            raise ValueError(f"{where}: character {char!r} appears twice")
        table[char] = {"ppm": _number(row, ppm_column, where),
                       **{k: _number(row, col, where) for k, col in _COLUMNS.items()}}
    if not table:
        raise ValueError(f"{path}: empty givenname table")
    table.info = {"path": os.path.abspath(path), "sha256": files_sha256([path]), "n_chars": len(table),
                  "ppm_column": ppm_column}
    return table


def load_compound_surnames(path: str) -> set[str]:
    """The compound surnames (`compound == 1`) of the ChineseNames `familyname` table."""
    out = set()
    for line, row in csv_records(path, required=("surname", "compound")):
        flag = str(row["compound"] or "").strip()
        if flag not in ("0", "1"):
            raise ValueError(f"{path}:{line}: 'compound' must be 0 or 1, got {flag!r}")
        if flag == "1":
            out.add(str(row["surname"]).strip())
    return out


def given_name(name: str, compound_surnames=frozenset()) -> str:
    """The name without its surname (two characters for a compound surname when the name is longer than two)."""
    name = (name or "").strip()
    surname_len = 2 if len(name) > 2 and name[:2] in compound_surnames else 1
    return name[surname_len:]


def name_indices(name: str, table: NameTable, compound_surnames=frozenset()) -> dict | None:
    """{NU, CCU, NV, NW, NC, Nov, chars_found} for a full name, or None when no given-name character is in the
    table (see the module docstring for the formulas)."""
    found = [table[c] for c in given_name(name, compound_surnames)[:3] if c in table]
    if not found:
        return None
    out = {"NU": float(np.mean([-math.log10((r["ppm"] + 1.0) / 1e6) for r in found]))}
    out.update({k: float(np.mean([r[k] for r in found])) for k in _COLUMNS})
    out["Nov"] = float(np.mean([(out[k] - lo) / (hi - lo) for k, (lo, hi) in _RANGES.items()]))
    out["chars_found"] = len(found)
    return out
