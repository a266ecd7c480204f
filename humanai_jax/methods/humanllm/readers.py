"""Streaming readers for the four raw sources, with the field names of the public dumps (docs/humanllm.md §2).

Every reader is a generator that reads one line (or one XML file) at a time, so dumps of any size
stream in constant memory. A malformed record raises `RecordError` naming the file and line number.

| reader                    | file format (public dump)                                   |
|---------------------------|-------------------------------------------------------------|
| read_reddit_submissions   | JSONL(.gz) rows of HuggingFaceGECLM/REDDIT_submissions      |
| read_reddit_comments      | JSONL(.gz) rows of HuggingFaceGECLM/REDDIT_comments         |
| read_twitter_users        | JSONL(.gz) rows of enryu43/twitter100m_users                |
| read_twitter_tweets       | JSONL(.gz) rows of enryu43/twitter100m_tweets               |
| read_blogger              | Blog Authorship Corpus: a folder or blogs.zip of            |
|                           | `<id>.<gender>.<age>.<topic>.<sign>.xml` files (Latin-1)    |
| read_amazon_reviews       | Amazon Reviews 2023 `review_categories/<Cat>.jsonl.gz`      |
| read_amazon_meta          | Amazon Reviews 2023 `meta_categories/meta_<Cat>.jsonl.gz`   |
| read_motivebench_blogs    | MotiveBench `blog_extracted.json` ({blog id: {blog_text}})  |

The HF datasets can be exported to JSONL with `datasets.load_dataset(...).to_json(path)`; the Parquet
files can also be streamed directly through `iter_parquet` (uses `datasets`).
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any

from humanai_jax.data import jsonl


class RecordError(jsonl.JsonlError):
    """A malformed input record; the message names the file and line (or XML file)."""


REDDIT_SUBMISSION_FIELDS = ("author", "created_utc", "domain", "id", "is_self", "name", "num_comments", "score",
                            "selftext", "subreddit_id", "title", "distinguished")
REDDIT_COMMENT_FIELDS = ("author", "body", "created_utc", "id", "name", "link_id", "parent_id", "score",
                         "subreddit_id")
TWITTER_USER_FIELDS = ("user", "id", "followers", "description", "location")
TWITTER_TWEET_FIELDS = ("user", "id", "tweet", "date")
AMAZON_REVIEW_FIELDS = ("user_id", "parent_asin", "rating", "timestamp", "title", "text")
AMAZON_META_FIELDS = ("parent_asin", "title", "description", "categories", "features", "details", "price",
                      "average_rating", "rating_number")
AMAZON_CATEGORIES = (
    "Arts_Crafts_and_Sewing", "Automotive", "Baby_Products", "Beauty_and_Personal_Care", "Books", "CDs_and_Vinyl",
    "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry", "Electronics", "Grocery_and_Gourmet_Food",
    "Health_and_Household", "Home_and_Kitchen", "Industrial_and_Scientific", "Sports_and_Outdoors", "Video_Games")


def iter_jsonl(path: str) -> Iterator[tuple[int, dict]]:
    """Yields `(line_number, object)` for each non-blank line; a bad line raises RecordError(file:line).
    (`humanai_jax.data.jsonl.iter_jsonl` with this module's error class.)"""
    return jsonl.iter_jsonl(path, error=RecordError)


write_jsonl = jsonl.write_jsonl


def _select(path: str, lineno: int, obj: dict, fields: Sequence[str], required: Sequence[str]) -> dict:
    missing = [k for k in required if k not in obj]
    if missing:
        raise RecordError(f"{path}:{lineno}: missing field(s) {missing}; present: {sorted(obj)[:20]}")
    return {k: obj.get(k) for k in fields}


def _read_fields(path: str, fields: Sequence[str], required: Sequence[str]) -> Iterator[dict]:
    for lineno, obj in iter_jsonl(path):
        yield _select(path, lineno, obj, fields, required)


def read_reddit_submissions(path: str) -> Iterator[dict]:
    # `distinguished` and `domain` are absent from some dump months; the filters treat absent as empty.
    return _read_fields(path, REDDIT_SUBMISSION_FIELDS, ("author", "created_utc", "id", "title", "selftext"))


def read_reddit_comments(path: str) -> Iterator[dict]:
    return _read_fields(path, REDDIT_COMMENT_FIELDS, ("author", "body", "id", "link_id", "parent_id"))


def read_twitter_users(path: str) -> Iterator[dict]:
    return _read_fields(path, TWITTER_USER_FIELDS, ("user", "description"))


def read_twitter_tweets(path: str) -> Iterator[dict]:
    return _read_fields(path, TWITTER_TWEET_FIELDS, ("user", "id", "tweet"))


def read_amazon_reviews(path: str) -> Iterator[dict]:
    return _read_fields(path, AMAZON_REVIEW_FIELDS, ("user_id", "parent_asin", "timestamp", "text"))


def read_amazon_meta(path: str) -> Iterator[dict]:
    """Item metadata; `details.Pricing` is dropped as in the reference (images/videos are not read)."""
    for rec in _read_fields(path, AMAZON_META_FIELDS, ("parent_asin", "title")):
        if isinstance(rec.get("details"), dict):
            rec["details"] = {k: v for k, v in rec["details"].items() if k != "Pricing"}
        yield rec


def iter_parquet(path: str, fields: Sequence[str]) -> Iterator[dict]:
    """Streams selected columns of a Parquet shard (e.g. the HF dumps) with `datasets`."""
    import datasets

    ds = datasets.load_dataset("parquet", data_files=path, split="train", streaming=True)
    for row in ds:
        yield {k: row.get(k) for k in fields}


# --------------------------------------------------------------------------------------------------
# Blog Authorship Corpus

_BLOG_NAME = re.compile(r"^(?P<id>\d+)\.(?P<gender>[^.]+)\.(?P<age>\d+)\.(?P<topic>[^.]+)\.(?P<sign>[^.]+)\.xml$")
_DATE = re.compile(r"<date>(.*?)</date>", re.DOTALL)
_POST = re.compile(r"<post>(.*?)</post>", re.DOTALL)


def parse_blog_xml(name: str, raw: bytes) -> list[dict]:
    """Rows `{id, gender, age, topic, sign, date, text}` of one author file (docs/humanllm.md §3.4 step 1).

    The corpus files are not well-formed XML (bare `&`, stray markup), so `<date>` and `<post>` elements
    are matched with regexes and paired in order; newlines become spaces. A file name that does not
    follow `<id>.<gender>.<age>.<topic>.<sign>.xml`, or unequal numbers of dates and posts, raise.
    """
    base = os.path.basename(name)
    m = _BLOG_NAME.match(base)
    if m is None:
        raise RecordError(f"{name}: file name does not match <id>.<gender>.<age>.<topic>.<sign>.xml")
    text = raw.decode("latin-1")
    dates, posts = _DATE.findall(text), _POST.findall(text)
    if len(dates) != len(posts):
        raise RecordError(f"{name}: {len(dates)} <date> elements but {len(posts)} <post> elements")
    meta = m.groupdict()
    return [dict(meta, date=d.strip(), text=html.unescape(p.replace("\r", " ").replace("\n", " ")).strip())
            for d, p in zip(dates, posts)]


def read_blogger(path: str) -> Iterator[list[dict]]:
    """Yields one list of rows per author, from a folder of XML files or the corpus' blogs.zip."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                if info.filename.endswith(".xml"):
                    yield parse_blog_xml(info.filename, z.read(info))
        return
    for fname in sorted(os.listdir(path)):
        if fname.endswith(".xml"):
            with open(os.path.join(path, fname), "rb") as f:
                yield parse_blog_xml(fname, f.read())


def read_motivebench_blogs(path: str) -> Iterator[dict]:
    """MotiveBench `blog_extracted.json`: `{blog id: {"blog_text": ..., ...}}` -> `{id, text}` rows.

    These are single posts from the Blog Authorship Corpus without date or author metadata.
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object keyed by blog id, got {type(data).__name__}")
    for key, rec in data.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("blog_text"), str):
            raise RecordError(f"{path}: entry {key!r} has no string field 'blog_text'")
        yield {"id": key, "text": rec["blog_text"].replace("\n", " ")}


def blog_zip_bytes(files: dict[str, str]) -> bytes:
    """Builds a blogs.zip in memory from `{file name: xml text}` (Latin-1), for tests and examples."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text.encode("latin-1"))
    return buf.getvalue()


def as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else ([] if value is None else [value])
