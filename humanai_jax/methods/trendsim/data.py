"""Loaders for the TrendSim data files (docs/trendsim.md §9): `tweets.csv` and `user_1000.csv`, both without a header.

tweets.csv: UTF-8 with BOM, 6 columns `index, title, brief_intro, content, source, publish_time`.
user_1000.csv: UTF-8 (no BOM), CRLF, 6 columns `index, uid, name, followed_num, following_num, description`.
A malformed row raises `TrendSimDataError("path:line: ...")` naming the column.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import os


class TrendSimDataError(ValueError):
    """A malformed data row; the message starts with `path:line:`."""


@dataclasses.dataclass(frozen=True)
class Post:
    index: int
    title: str
    brief_intro: str
    content: str
    source: str
    publish_time: str


@dataclasses.dataclass(frozen=True)
class UserProfile:
    index: int
    uid: int
    name: str
    followed_num: int
    following_num: int
    description: str


def _rows(path: str, encoding: str, n_cols: int):
    if not os.path.exists(path):
        raise FileNotFoundError(f"TrendSim data file {path} does not exist")
    with open(path, encoding=encoding, newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != n_cols:
                raise TrendSimDataError(f"{path}:{line}: expected {n_cols} columns, got {len(row)}")
            yield line, row


def _int(path: str, line: int, column: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise TrendSimDataError(f"{path}:{line}: column {column!r} must be an integer, got {raw!r}") from None


def load_tweets(path: str) -> list[Post]:
    """All posts of `tweets.csv` in file order."""
    posts = []
    for line, row in _rows(path, "utf-8-sig", 6):
        index = _int(path, line, "index", row[0])
        try:
            datetime.datetime.strptime(row[5].strip(), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise TrendSimDataError(f"{path}:{line}: column 'publish_time' must be 'YYYY-MM-DD HH:MM:SS', "
                                    f"got {row[5]!r}") from None
        if not row[1].strip() or not row[3].strip():
            raise TrendSimDataError(f"{path}:{line}: empty 'title' or 'content'")
        posts.append(Post(index, row[1], row[2], row[3], row[4], row[5].strip()))
    return posts


def load_users(path: str) -> list[UserProfile]:
    """All user rows of `user_1000.csv` in file order."""
    users = []
    for line, row in _rows(path, "utf-8", 6):
        index = _int(path, line, "index", row[0])
        uid = _int(path, line, "uid", row[1])
        followed = _int(path, line, "followed_num", row[3])
        following = _int(path, line, "following_num", row[4])
        if followed < 0 or following < 0:
            raise TrendSimDataError(f"{path}:{line}: follower counts must be >= 0")
        if not row[5].strip():
            raise TrendSimDataError(f"{path}:{line}: empty 'description'")
        users.append(UserProfile(index, uid, row[2], followed, following, row[5].strip()))
    return users


def tweet_by_index(posts: list[Post], index: int) -> Post:
    for p in posts:
        if p.index == index:
            return p
    raise KeyError(f"no tweet with index {index}; have {[p.index for p in posts]}")
