r"""Opt-in download of the tables NAMeGEn's real runs need (nothing is downloaded anywhere else in the project):

  python -m humanai_jax.methods.namegen.fetch_tables --dest /data/namegen --what poems,hanzi,names
  python -m humanai_jax.methods.namegen.fetch_tables --dest /data/namegen --dry-run     # print what it would do

  poems  HF dataset `Audrey33/Chinese_poems` (CPoetry, 17k+ poems; licence unverified)  -> DEST/poems/
  hanzi  HF dataset `Audrey33/Chinese_hanzi_poem` (字, 拼音, 汉字五行, …; licence unverified) -> DEST/hanzi/
  names  ChineseNames data-csv `givenname.csv`, `familyname.csv` (GPL-3 / CC BY-NC-SA: non-commercial use,
         cite Bao 2021) from github.com/psychbruce/ChineseNames -> DEST/names/

After downloading it lists the files whose header has the columns our loaders need and prints the config
options to pass (`poems=…,hanzi=…,names=…,surnames=…`). Check each licence before use. `--revision` pins the HF
dataset revision (recorded with the tables' sha256 in every run's manifest). The download itself needs network
and is not exercised by the tests; `find_tables` (the header scan) is.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import urllib.request

__all__ = ["SOURCES", "find_tables", "main"]

SOURCES = {
    "poems": {"hf": "Audrey33/Chinese_poems", "columns": ("title", "author", "content"), "option": "poems"},
    "hanzi": {"hf": "Audrey33/Chinese_hanzi_poem", "columns": ("字", "汉字五行"), "option": "hanzi"},
    "names": {"urls": {"givenname.csv": "https://raw.githubusercontent.com/psychbruce/ChineseNames/master/"
                                        "data-csv/givenname.csv",
                       "familyname.csv": "https://raw.githubusercontent.com/psychbruce/ChineseNames/master/"
                                         "data-csv/familyname.csv"},
              "columns": ("character", "name.ppm", "corpus.uniqueness"), "option": "names"},
}


def _header(path: str) -> list[str]:
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8-sig") as f:
            first = f.readline()
        try:
            rec = json.loads(first)
        except json.JSONDecodeError:
            return []
        return list(rec) if isinstance(rec, dict) else []
    with open(path, encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f, delimiter="\t" if path.endswith(".tsv") else ","), [])


def find_tables(root: str, columns) -> list[str]:
    """Every .csv / .tsv / .jsonl file under `root` whose header holds all of `columns` (sorted paths)."""
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if name.endswith((".csv", ".tsv", ".jsonl")) and set(columns) <= set(_header(path)):
                found.append(path)
    return sorted(found)


def _fetch(what: str, dest: str, revision: str | None) -> None:
    src = SOURCES[what]
    if "hf" in src:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=src["hf"], repo_type="dataset", local_dir=dest, revision=revision)
    else:
        os.makedirs(dest, exist_ok=True)
        for name, url in src["urls"].items():
            urllib.request.urlretrieve(url, os.path.join(dest, name))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", required=True, help="download folder (outside the repository)")
    ap.add_argument("--what", default="poems,hanzi,names", help="comma list of: " + ", ".join(SOURCES))
    ap.add_argument("--revision", default=None, help="HF dataset revision (commit) to pin")
    ap.add_argument("--dry-run", action="store_true", help="print the sources and targets, download nothing")
    args = ap.parse_args(argv)
    wanted = [w.strip() for w in args.what.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in SOURCES]
    if unknown:
        ap.error(f"--what: unknown {unknown}; valid: {list(SOURCES)}")
    options = []
    for what in wanted:
        dest = os.path.join(args.dest, what)
        src = SOURCES[what]
        origin = src.get("hf") or ", ".join(src["urls"].values())
        print(f"{what}: {origin} -> {dest}")
        if args.dry_run:
            continue
        _fetch(what, dest, args.revision)
        files = find_tables(dest, src["columns"])
        print(f"  files with columns {list(src['columns'])}: {files or 'none found: inspect the folder'}")
        if files:
            options.append(f"{src['option']}={files[0]}")
            if what == "names" and os.path.exists(os.path.join(dest, "familyname.csv")):
                options.append(f"surnames={os.path.join(dest, 'familyname.csv')}")
    if options:
        print("config options: " + ",".join(options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
