"""Rule-based filters of docs/humanllm.md §3, one pure predicate per rule, in the reference order.

Every predicate takes one record (and the thresholds) and returns a drop reason (str) or None.
The `filter_*` drivers apply the predicates in order, record each drop in a `FilterReport`
(`report.dropped[stage][reason] += 1`), and return the kept records. Thresholds live in
`default_thresholds()` (an ml_collections ConfigDict) so a run can override them.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Iterable

import ml_collections
import numpy as np

from humanai_jax.methods.humanllm import kcore


def default_thresholds() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        reddit_min_chars=300,              # len(title) + len(selftext)
        reddit_short_question_words=10,    # selftext < 10 words and ending with "?" is dropped
        reddit_min_submissions=6,          # per user (MIN_SUBMISSION_COUNT=5 is declared but unused)
        reddit_comment_min_chars=200,
        twitter_min_chars=300,
        twitter_min_tweets_exclusive=5,    # users need > 5 tweets
        blog_min_chars_exclusive=300,      # len(text) > 300
        blog_min_date_chars_exclusive=5,   # date strings of <= 5 characters are dropped
        amazon_min_review_words_exclusive=5,
        amazon_item_keep_fraction=0.5,
        amazon_user_min_after_top_items=8,
        amazon_user_core=8,
        amazon_item_core=3,
        amazon_seed=2025,
    ))


@dataclasses.dataclass
class FilterReport:
    """Counts per stage: records seen, kept, and dropped by reason."""

    seen: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    kept: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    dropped: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(collections.Counter))

    def count(self, stage: str, reason: str | None) -> bool:
        self.seen[stage] += 1
        if reason is None:
            self.kept[stage] += 1
            return True
        self.dropped[stage][reason] += 1
        return False

    def to_dict(self) -> dict:
        return {stage: {"seen": self.seen[stage], "kept": self.kept[stage], "dropped": dict(self.dropped[stage])}
                for stage in self.seen}


REMOVED = ("[removed]", "[deleted]")
REMOVAL_NOTICES = ("this comment has been removed", "this submission has been removed")


def _is_removed(text) -> bool:
    text = text or ""
    low = text.lower()
    return text.strip() in REMOVED or any(n in low for n in REMOVAL_NOTICES)


# --------------------------------------------------------------------------------------------------
# Reddit (§3.1, §3.2)

BOT_MARKERS = ("[deleted]", "autotldr", "automoderator")


def reddit_missing_keys(rec) -> str | None:
    return None if all(rec.get(k) not in (None, "") for k in ("author", "created_utc", "id")) else "missing_key_field"


def reddit_bot_author(rec) -> str | None:
    author = str(rec.get("author") or "").lower()
    return "bot_or_deleted_author" if any(b in author for b in BOT_MARKERS) else None


def reddit_not_self_or_distinguished(rec) -> str | None:
    if str(rec.get("is_self")) == "False":  # the reference compares the string form
        return "not_self_post"
    if rec.get("distinguished") in ("moderator", "admin"):
        return "distinguished"
    return None


def reddit_low_engagement(rec) -> str | None:
    return "low_score_and_comments" if (rec.get("score") or 0) < 2 and (rec.get("num_comments") or 0) < 2 else None


def reddit_blank_removed(rec) -> dict:
    """Rule 5 is a transform: blanks a removed/deleted title or selftext."""
    out = dict(rec)
    for k in ("title", "selftext"):
        if _is_removed(out.get(k)):
            out[k] = ""
    return out


def reddit_too_short(rec, t) -> str | None:
    return "too_short" if len(rec.get("title") or "") + len(rec.get("selftext") or "") < t.reddit_min_chars else None


def reddit_short_question(rec, t) -> str | None:
    body = rec.get("selftext") or ""
    return ("short_question" if len(body.split()) < t.reddit_short_question_words and body.rstrip().endswith("?")
            else None)


def reddit_submission_reason(rec, t) -> tuple[str | None, dict]:
    """Rules 1-7 on one submission: (drop reason or None, cleaned record)."""
    for pred in (reddit_missing_keys, reddit_bot_author, reddit_not_self_or_distinguished, reddit_low_engagement):
        reason = pred(rec)
        if reason:
            return reason, rec
    rec = reddit_blank_removed(rec)
    for pred in (reddit_too_short, reddit_short_question):
        reason = pred(rec, t)
        if reason:
            return reason, rec
    return None, rec


def reddit_comment_reason(com, t) -> str | None:
    """Rules 2-3 of §3.2 on one comment (author and parent checks need the kept submissions)."""
    body = com.get("body") or ""
    if not body.strip() or _is_removed(body):
        return "empty_or_removed"
    if len(body) < t.reddit_comment_min_chars:
        return "too_short"
    if com.get("link_id") != com.get("parent_id"):
        return "not_top_level"
    return None


def filter_reddit(submissions: Iterable[dict], comments: Iterable[dict], t, report: FilterReport,
                  split: str = "train") -> dict[str, list[dict]]:
    """Returns `{author: [kept t3 records..., kept t1 records...]}` (§3.1 + §3.2, intended logic)."""
    by_user: dict[str, list[dict]] = collections.defaultdict(list)
    for rec in submissions:
        reason, rec = reddit_submission_reason(rec, t)
        if report.count("reddit.submission", reason):
            by_user[rec["author"]].append(dict(rec, split=split, type="t3"))
    users = {}
    for author, recs in by_user.items():
        ok = len(recs) >= t.reddit_min_submissions
        report.count("reddit.user", None if ok else "too_few_submissions")
        if ok:
            users[author] = recs
    kept_posts = {r["name"] or f"t3_{r['id']}": r for recs in users.values() for r in recs}
    for com in comments:
        reason = None if com.get("author") in users else "author_not_kept"
        reason = reason or reddit_comment_reason(com, t)
        parent = kept_posts.get(com.get("parent_id"))
        if reason is None and parent is None:
            reason = "parent_not_kept"
        if report.count("reddit.comment", reason):
            # stored in the commenter's file: a copy of the parent plus com_<field>
            users[com["author"]].append(dict(parent, **{f"com_{k}": v for k, v in com.items()}, type="t1"))
    return users


# --------------------------------------------------------------------------------------------------
# Twitter (§3.3)

CORPORATE_TOKENS = frozenset({"company", "official", "network", "store", "brand", "business", "shop", "solutions",
                              "digital", "services", "marketing"})
AD_PHRASES = ("buy now", "limited offer", "subscribe", "discount", "sale", "promo", "special deal",
              "click the link", "order now", "get it now")


def tweet_basic_reason(tw, t) -> str | None:
    text = tw.get("tweet") or ""
    if not text.strip() or text.strip() in REMOVED:
        return "empty_or_removed"
    return "too_short" if len(text.strip()) < t.twitter_min_chars else None


def corporate_bio(description) -> bool:
    bio = description or ""
    low = bio.lower()
    return (any(tok in CORPORATE_TOKENS for tok in low.split()) or "service provider" in low
            or any(s in bio for s in ("Inc.", "Ltd.", "LLC")))


def tweet_ad_or_retweet_reason(tw) -> str | None:
    text = tw.get("tweet") or ""
    low = text.lower()
    if any(p in low for p in AD_PHRASES):  # note: "sale" also matches "wholesale", as in the reference
        return "ad"
    return "retweet" if text.startswith("RT @") else None


def filter_twitter(users: Iterable[dict], tweets: Iterable[dict], t, report: FilterReport) -> dict[str, dict]:
    """Returns `{user: {"user": user_record, "tweets": [...]}}` for kept users."""
    by_user = collections.defaultdict(list)
    for tw in tweets:
        if report.count("twitter.tweet", tweet_basic_reason(tw, t)):
            by_user[tw["user"]].append(tw)
    profiles = {u["user"]: u for u in users}
    kept = {}
    for handle, tws in by_user.items():
        if len(tws) <= t.twitter_min_tweets_exclusive:
            report.count("twitter.user", "too_few_tweets")
            continue
        prof = profiles.get(handle)
        if prof is None:
            report.count("twitter.user", "no_user_record")
            continue
        if corporate_bio(prof.get("description")):
            report.count("twitter.user", "corporate_bio")
            continue
        clean = [tw for tw in tws if report.count("twitter.tweet_content", tweet_ad_or_retweet_reason(tw))]
        if report.count("twitter.user", None if len(clean) > t.twitter_min_tweets_exclusive else
                        "too_few_tweets_after_ads"):
            kept[handle] = {"user": prof, "tweets": clean}
    return kept


# --------------------------------------------------------------------------------------------------
# Blogger (§3.4)

def blog_row_reason(row, t) -> str | None:
    if any(not row.get(k) for k in ("id", "date", "text")):
        return "missing_field"
    return None if len(row["text"]) > t.blog_min_chars_exclusive else "too_short"


def parse_blog_date(date: str) -> datetime.datetime:
    """The corpus writes dates like `14,May,2004` (`%d,%B,%Y`). Raises ValueError otherwise."""
    return datetime.datetime.strptime(date, "%d,%B,%Y")


def filter_blogger_user(rows: list[dict], t, report: FilterReport) -> list[dict]:
    """One author's rows -> kept rows sorted by date; an unparsable date drops the whole author."""
    rows = [r for r in rows if report.count("blogger.post", blog_row_reason(r, t))]
    rows = [r for r in rows if report.count("blogger.post_date", None if len(r["date"]) >
                                            t.blog_min_date_chars_exclusive else "short_date")]
    try:
        keyed = [(parse_blog_date(r["date"]), r) for r in rows]
    except ValueError:
        report.count("blogger.user", "unparsable_date")
        return []
    if not keyed:
        report.count("blogger.user", "no_posts_left")
        return []
    report.count("blogger.user", None)
    keyed.sort(key=lambda kr: kr[0])  # stable: same-day posts keep file order
    return [r for _, r in keyed if len(r["text"]) > 100]


# --------------------------------------------------------------------------------------------------
# Amazon (§3.5)

def dedup_items_by_title(items: Iterable[dict], report: FilterReport) -> dict[str, dict]:
    """First item per case-insensitive title wins; items without a title are dropped."""
    seen_titles, kept = set(), {}
    for it in items:
        title = (it.get("title") or "").strip()
        reason = "no_title" if not title else ("duplicate_title" if title.lower() in seen_titles else None)
        if report.count("amazon.item", reason):
            seen_titles.add(title.lower())
            kept[it["parent_asin"]] = it
    return kept


def amazon_review_reason(rev, items: dict, seen_pairs: set, t) -> str | None:
    if rev.get("rating") is None or not rev["rating"] > -1:
        return "no_rating"
    if rev.get("parent_asin") not in items:
        return "item_without_title"
    if (rev["user_id"], rev["parent_asin"]) in seen_pairs:
        return "repeat_review"
    if len((rev.get("text") or "").split()) <= t.amazon_min_review_words_exclusive:
        return "too_few_words"
    return None


def filter_amazon(items: Iterable[dict], reviews: Iterable[dict], t, report: FilterReport) -> list[dict]:
    """Returns `[{"user_id", "reviews": [{item_id, timestamp, rating, title, text}, ...]}]`, users shuffled."""
    kept_items = dedup_items_by_title(items, report)
    seen_pairs, by_user = set(), collections.defaultdict(list)
    for rev in reviews:
        if report.count("amazon.review", amazon_review_reason(rev, kept_items, seen_pairs, t)):
            seen_pairs.add((rev["user_id"], rev["parent_asin"]))
            by_user[rev["user_id"]].append(rev)
    user_ids = sorted(by_user)
    item_ids = sorted({r["parent_asin"] for rs in by_user.values() for r in rs})
    uidx = {u: i for i, u in enumerate(user_ids)}
    iidx = {a: i for i, a in enumerate(item_ids)}
    pairs = np.array([(uidx[u], iidx[r["parent_asin"]]) for u, rs in by_user.items() for r in rs],
                     dtype=np.int64).reshape(-1, 2)
    keep = kcore.top_items_mask(pairs, len(item_ids), t.amazon_item_keep_fraction)
    report.dropped["amazon.interaction"]["not_top_items"] += int((~keep).sum())
    pairs = pairs[keep]
    keep = kcore.min_user_count_mask(pairs, len(user_ids), t.amazon_user_min_after_top_items)
    report.dropped["amazon.interaction"]["user_below_min_after_top_items"] += int((~keep).sum())
    pairs = pairs[keep]
    keep = kcore.kcore_mask(pairs, len(user_ids), len(item_ids), t.amazon_user_core, t.amazon_item_core)
    report.dropped["amazon.interaction"]["kcore"] += int((~keep).sum())
    pairs = pairs[keep]
    report.kept["amazon.interaction"] += len(pairs)
    report.seen["amazon.interaction"] += sum(len(rs) for rs in by_user.values())
    allowed = collections.defaultdict(set)
    for u, i in pairs:
        allowed[user_ids[u]].add(item_ids[i])
    out = []
    for u in sorted(allowed):
        revs = sorted((r for r in by_user[u] if r["parent_asin"] in allowed[u]), key=lambda r: r["timestamp"])
        out.append({"user_id": u, "reviews": [{"item_id": r["parent_asin"], "timestamp": r["timestamp"],
                                                 "rating": r["rating"], "title": r.get("title"),
                                                 "text": r.get("text")} for r in revs]})
    np.random.default_rng(t.amazon_seed).shuffle(out)
    return out
