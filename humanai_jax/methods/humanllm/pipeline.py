"""The Cognitive Genome pipeline end to end for one platform: raw dump -> filters -> logs -> LLM stages ->
SFT samples, every step writing JSONL under `workdir` and a run report `report.json`.

  workdir/logs.jsonl             normalized LogRecords after the rule filters (§3, §8)
  workdir/clean_v1.jsonl, clean_v2.jsonl, users.jsonl, posts.jsonl, users_judged.jsonl, posts_judged.jsonl
  workdir/sft/train.jsonl, sft/test.jsonl   chat samples {uid, source, messages}
  workdir/report.json            kept/dropped per filter, per stage and reason, per SFT task

Re-running resumes: every LLM stage skips records already in its output file.
"""

from __future__ import annotations

import json
import os

from humanai_jax.data.jsonl import read_jsonl, write_jsonl
from humanai_jax.methods.humanllm import filters, readers, schema, stages, tasks


def filtered_logs(platform: str, inputs: dict, thresholds, report: filters.FilterReport) -> list[dict]:
    """Reads and filters one platform's raw files. `inputs` keys per platform:
    reddit: submissions, comments; twitter: users, tweets; blogger: blogs (dir or zip);
    amazon: reviews, meta, category."""
    if platform == "reddit":
        users = filters.filter_reddit(readers.read_reddit_submissions(inputs["submissions"]),
                                      readers.read_reddit_comments(inputs["comments"]) if inputs.get("comments")
                                      else [], thresholds, report)
        return schema.reddit_logs(users)
    if platform == "twitter":
        users = filters.filter_twitter(readers.read_twitter_users(inputs["users"]),
                                       readers.read_twitter_tweets(inputs["tweets"]), thresholds, report)
        return schema.twitter_logs(users)
    if platform == "blogger":
        logs = []
        for rows in readers.read_blogger(inputs["blogs"]):
            logs += schema.blogger_logs(filters.filter_blogger_user(rows, thresholds, report))
        return logs
    if platform == "amazon":
        meta = list(readers.read_amazon_meta(inputs["meta"]))
        users = filters.filter_amazon(meta, readers.read_amazon_reviews(inputs["reviews"]), thresholds, report)
        titles = {m["parent_asin"]: m["title"] for m in meta}
        logs = schema.amazon_logs(users, inputs["category"])
        for g in logs:
            g["item"]["title"] = titles.get(g["item"]["item_id"])
        return logs
    raise ValueError(f"unknown platform {platform!r}; valid: reddit, twitter, blogger, amazon")


def _with_tags(logs: list[dict], v1: list[dict]) -> list[dict]:
    tags = {g["log_id"]: g.get("tag_v1") for g in v1}
    return [dict(g, tag_v1=tags.get(g["log_id"])) for g in logs]


def build_samples(platform: str, users: list[dict], posts: list[dict], v2_logs: list[dict],
                  catalog: dict | None = None, category: str | None = None, seed: int = tasks.SEED,
                  all_logs: list[dict] | None = None) -> list[dict]:
    """All SFT task builders that apply to the platform (§7.2). Item selection uses every review of a
    user (`all_logs`, time order, with the v1 tags where the clean stage saw the review)."""
    by_uid: dict[str, list[dict]] = {}
    v2_by_id = {g["log_id"]: g for g in v2_logs}
    for p in posts:  # judged post records carry the QA/scenarios; v2 fields come from clean_v2
        g = dict(p)
        if g["log_id"] in v2_by_id:
            g.update(tag_v2=v2_by_id[g["log_id"]]["tag_v2"], rewrite_v2=v2_by_id[g["log_id"]]["rewrite_v2"])
        by_uid.setdefault(g["uid"], []).append(g)
    for g in v2_logs:  # comments are not posts: add them from clean_v2
        if g.get("type") == "t1":
            by_uid.setdefault(g["uid"], []).append(g)
    prefix = f"amazon.{category}" if platform == "amazon" else platform
    out = tasks.build_persona2profile(users, platform, seed=seed, prefix=prefix)
    if platform == "amazon":
        reviews: dict[str, list[dict]] = {}
        for g in all_logs or []:
            reviews.setdefault(g["uid"], []).append(g)
        out += tasks.build_writing_imitation(users, by_uid, platform, seed=seed, prefix=prefix)
        return out + tasks.build_item_selection(users, reviews, category, catalog or {}, seed=seed)
    out += tasks.build_story_tasks(users, platform, seed=seed)
    out += tasks.build_social_qa(users, by_uid, platform, seed=seed)
    out += tasks.build_scenario_tasks(by_uid, platform, seed=seed)
    out += tasks.build_writing_imitation(users, by_uid, platform, seed=seed)
    if platform == "reddit":
        out += tasks.build_personalized_comment(users, by_uid, seed=seed)
    return out


def run_pipeline(platform: str, inputs: dict, workdir: str, backend, *, settings: stages.LLMSettings | None = None,
                 thresholds=None, length_fn=None, seed: int = tasks.SEED) -> dict:
    """Runs every step for one platform; returns (and writes) the run report."""
    settings = settings or stages.LLMSettings()
    thresholds = thresholds or filters.default_thresholds()
    os.makedirs(workdir, exist_ok=True)
    path = lambda name: os.path.join(workdir, name)  # noqa: E731
    freport = filters.FilterReport()
    if os.path.exists(path("logs.jsonl")):  # filters are deterministic: reuse their output on resume
        logs = read_jsonl(path("logs.jsonl"))
        filter_counts = {}
        if os.path.exists(path("report.json")):
            with open(path("report.json")) as f:
                filter_counts = json.load(f)["filters"]
    else:
        logs = filtered_logs(platform, inputs, thresholds, freport)
        write_jsonl(path("logs.jsonl"), logs)
        filter_counts = freport.to_dict()
    sreport = stages.StageReport()
    to_clean = logs
    if platform == "amazon":  # the clean stage sees reviews with >= 150 characters, the first 100 per user
        per_user: dict[str, int] = {}
        to_clean = []
        for g in logs:
            if len(g["raw_text"]) >= 150 and per_user.get(g["uid"], 0) < 100:
                per_user[g["uid"]] = per_user.get(g["uid"], 0) + 1
                to_clean.append(g)
        sreport.count("amazon.clean_selection", "short_or_over_100", len(logs) - len(to_clean))
    v1 = stages.clean_v1(backend, to_clean, path("clean_v1.jsonl"), platform, sreport, settings)
    v2 = stages.clean_v2(backend, v1, path("clean_v2.jsonl"), platform, sreport, settings)
    item_meta = None
    if platform == "amazon":
        item_meta = {m["parent_asin"]: m for m in readers.read_amazon_meta(inputs["meta"])}
    users = stages.user_synthesis(backend, v1, v2, path("users.jsonl"), platform, sreport, settings,
                                  item_meta=item_meta, all_logs=_with_tags(logs, v1))
    posts = stages.post_synthesis(backend, v1, v2, path("posts.jsonl"), platform, sreport, settings)
    if platform == "amazon":  # Amazon artifacts are not judged; only NULL outputs are dropped
        jusers, jposts = stages.kept(users), stages.kept(posts)
    else:
        jusers = stages.judge_users(backend, users, v1, path("users_judged.jsonl"), platform, sreport, settings)
        jposts = stages.judge_posts(backend, posts, path("posts_judged.jsonl"), platform, sreport, settings)
    catalog = None
    if platform == "amazon":  # negatives come from the category's item set (titled, de-duplicated metadata)
        kept_items = filters.dedup_items_by_title(item_meta.values(), filters.FilterReport())
        catalog = {asin: m["title"] for asin, m in kept_items.items()}
    samples = build_samples(platform, stages.kept(jusers), stages.kept(jposts), stages.kept(v2), catalog,
                            inputs.get("category"), seed, all_logs=_with_tags(logs, v1))
    train, test, task_counts = tasks.split_all(samples, length_fn=length_fn, seed=seed)
    tasks.write_samples(path("sft/train.jsonl"), train)
    tasks.write_samples(path("sft/test.jsonl"), test)
    report = {"platform": platform, "filters": filter_counts, "stages": sreport.to_dict(), "sft": task_counts,
              "n_logs": len(logs), "n_train": len(train), "n_test": len(test)}
    with open(path("report.json"), "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    return report
