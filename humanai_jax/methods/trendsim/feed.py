"""Feed ordering for the Main page (issue item 5, behind `SimConfig.feed`).

  feed = "hot"       the reference: the hot list (likes, descending; docs/trendsim.md §2)
  feed = "persona"   a content-based recommender: every published comment is scored by the cosine similarity
                     of character-bigram counts (CJK has no spaces; bigrams are the usual dictionary-free
                     unit) between the viewer's persona + memory and the comment text; higher first, ties
                     (e.g. all zero) in hot-list order, so with no overlap the feed IS the hot list.

Why content-based and not SaD / RecLM: those are other methods (a method never imports another,
tests/test_layout.py), and comments are new items with no interactions yet (cold start), which a
collaborative model cannot rank. The order is computed when a page is rendered and kept in the visit, so the
positions a user sees resolve to the comments shown when they open one.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter

from humanai_jax.methods.trendsim.media import SocialMedia

FEEDS = ("hot", "persona")


def bigrams(text: str) -> Counter:
    """Counts of adjacent character pairs of `text` with whitespace and punctuation (ASCII and full-width, Unicode
    category P*) removed, lowercased (a one-character text counts as its single character)."""
    chars = [c for c in text.lower() if not c.isspace() and not unicodedata.category(c).startswith("P")]
    if len(chars) == 1:
        return Counter(chars)
    return Counter(a + b for a, b in zip(chars[:-1], chars[1:]))


def cosine(a: Counter, b: Counter) -> float:
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    if not dot:
        return 0.0
    return dot / math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))


def feed_order(media: SocialMedia, feed: str, query: str = "") -> list[int]:
    """The published cids in the order the Main page shows them to a viewer described by `query`."""
    if feed == "hot":
        return list(media.hot)
    if feed != "persona":
        raise ValueError(f"feed must be one of {FEEDS}, got {feed!r}")
    q = bigrams(query)
    scored = [(-cosine(q, bigrams(media.comments[cid].text)), pos, cid) for pos, cid in enumerate(media.hot)]
    return [cid for _, _, cid in sorted(scored)]
