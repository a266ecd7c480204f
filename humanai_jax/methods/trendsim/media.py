"""Social-media state (docs/trendsim.md §2): one post, its counters, a hot list of comments sorted by likes and the
replies of each comment. Plain data (JSON round-trip via `to_json` / `from_json`) so a run checkpoints.

Hot-list rule: a new comment goes to the end with 0 likes; a like moves the comment up past every comment
with strictly fewer likes (stable otherwise), so the list stays sorted by likes, descending. Displayed ids
are hot-list positions; `comment_at(position)` resolves one to a stable comment id (cid) when a user opens
it (the reference likes by creation id but replies by position; we use the cid throughout).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Comment:
    cid: int
    aid: int
    author_type: str  # "normal" | "S" | "T" | "F"
    text: str
    time: int
    likes: int = 0
    replies: list[dict] = dataclasses.field(default_factory=list)  # {aid, author_type, text, time}


@dataclasses.dataclass
class SocialMedia:
    view_num: int = 0
    like_num: int = 0
    repost_num: int = 0
    comments: dict[int, Comment] = dataclasses.field(default_factory=dict)  # every comment, hidden included
    hot: list[int] = dataclasses.field(default_factory=list)  # published cids, likes descending
    detect_list: list[int] = dataclasses.field(default_factory=list)  # cids hidden by moderation

    def add_comment(self, aid: int, author_type: str, text: str, time: int, *, hidden: bool = False) -> int:
        """Creates a comment; published ones go to the end of the hot list, hidden ones to `detect_list`."""
        cid = len(self.comments)
        self.comments[cid] = Comment(cid, aid, author_type, text, time)
        (self.detect_list if hidden else self.hot).append(cid)
        return cid

    def like_comment(self, cid: int) -> None:
        """+1 like, then move up past every comment with strictly fewer likes."""
        c = self.comments[cid]
        c.likes += 1
        if cid not in self.hot:
            return
        self.hot.remove(cid)
        pos = next((q for q, other in enumerate(self.hot) if self.comments[other].likes < c.likes), len(self.hot))
        self.hot.insert(pos, cid)

    def add_reply(self, cid: int, aid: int, author_type: str, text: str, time: int) -> None:
        self.comments[cid].replies.append({"aid": aid, "author_type": author_type, "text": text, "time": time})

    def comment_at(self, position: int, order: list[int] | None = None) -> int | None:
        """The cid shown at `position` of `order` (default: the hot list), or None when out of range."""
        order = self.hot if order is None else order
        return order[position] if 0 <= position < len(order) else None

    def page(self, page: int, page_size: int, order: list[int] | None = None) -> list[tuple[int, int]]:
        """[(position, cid)] of one page of `order` (default: the hot list; empty past the end)."""
        order = self.hot if order is None else order
        lo = page * page_size
        return [(p, order[p]) for p in range(lo, min(lo + page_size, len(order)))]

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["comments"] = [dataclasses.asdict(c) for c in self.comments.values()]
        return d

    @classmethod
    def from_json(cls, d: dict) -> SocialMedia:
        comments = {c["cid"]: Comment(**c) for c in d["comments"]}
        return cls(d["view_num"], d["like_num"], d["repost_num"], comments, list(d["hot"]), list(d["detect_list"]))
