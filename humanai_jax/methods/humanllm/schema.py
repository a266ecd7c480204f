"""Normalized user-log schema of docs/humanllm.md §8: filtered raw records -> LogRecord dicts (one JSONL line each).

LogRecord: uid, log_id, platform, timestamp (UTC seconds), type ("t3"|"t1"|"tweet"|"blog"|"review"),
raw_text, rewrite_v1, rewrite_v2, parent ({title, text, rewrite} | None), item ({item_id, title, rating} | None),
tag_v1, tag_v2, summary, social_qa, scenarios (filled by the LLM stages).
"""

from __future__ import annotations

import datetime

from humanai_jax.methods.humanllm.filters import parse_blog_date


def _log(uid, log_id, platform, timestamp, type_, raw_text, *, parent=None, item=None) -> dict:
    return {"uid": uid, "log_id": log_id, "platform": platform, "timestamp": timestamp, "type": type_,
            "raw_text": raw_text, "rewrite_v1": None, "rewrite_v2": None, "parent": parent, "item": item,
            "tag_v1": None, "tag_v2": None, "summary": None, "social_qa": [], "scenarios": []}


def reddit_logs(users: dict[str, list[dict]]) -> list[dict]:
    """From `filters.filter_reddit` output. A submission's text is `title + "\\n" + selftext`."""
    out = []
    for uid, recs in users.items():
        for r in recs:
            post_text = f"{r.get('title') or ''}\n{r.get('selftext') or ''}".strip()
            if r["type"] == "t3":
                out.append(_log(uid, f"reddit:{r['id']}", "reddit", float(r["created_utc"]), "t3", post_text))
            else:
                out.append(_log(uid, f"reddit:{r['com_id']}", "reddit", float(r["com_created_utc"]), "t1", r["com_body"],
                                parent={"title": r.get("title"), "text": post_text, "rewrite": None}))
    return out


def twitter_logs(users: dict[str, dict]) -> list[dict]:
    out = []
    for uid, rec in users.items():
        for tw in rec["tweets"]:
            ts = _parse_twitter_date(tw.get("date"))
            out.append(_log(uid, f"twitter:{tw['id']}", "twitter", ts, "tweet", tw["tweet"]))
    return out


def _parse_twitter_date(date) -> float | None:
    if date in (None, ""):
        return None
    if isinstance(date, (int, float)):
        return float(date)
    return datetime.datetime.fromisoformat(str(date).replace("Z", "+00:00")).replace(
        tzinfo=datetime.UTC).timestamp()


def blogger_logs(rows: list[dict]) -> list[dict]:
    """One author's filtered rows (already sorted by date)."""
    return [_log(r["id"], f"blogger:{r['id']}:{k}", "blogger",
                 parse_blog_date(r["date"]).replace(tzinfo=datetime.UTC).timestamp(), "blog", r["text"])
            for k, r in enumerate(rows)]


def amazon_logs(users: list[dict], category: str) -> list[dict]:
    """From `filters.filter_amazon` output; Amazon timestamps are milliseconds."""
    out = []
    for u in users:
        for k, r in enumerate(u["reviews"]):
            text = f"{r.get('title') or ''}\n{r.get('text') or ''}".strip()
            rec = _log(u["user_id"], f"amazon:{category}:{u['user_id']}:{k}", "amazon", r["timestamp"] / 1000.0,
                       "review", text, item={"item_id": r["item_id"], "title": None, "rating": r["rating"]})
            rec["category"] = category
            out.append(rec)
    return out
