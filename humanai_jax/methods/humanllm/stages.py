"""LLM stages of the Cognitive Genome pipeline (docs/humanllm.md §4-§6), each JSONL in -> JSONL out.

  clean_v1        per log: rewrite v1 + quality tag v1                    (§4.1, Blogger §4.3)
  clean_v2        per v1-qualified log of users with >= 3: tag v2 + rewrite v2   (§4.2)
  user_synthesis  per user: persona, profile, stories, writing style      (§5.1)
  post_synthesis  per qualified post: Social QA x4, scenario/story/thoughts, post summary (§5.2)
  judge           per artifact: 1-10 scores and the keep rule             (§6)

Every stage writes one output line per input unit (log or user), kept or not, with `_drop` = None or the
reason; a re-run reads the output file first and skips finished keys (resumable: the runner is
`humanai_jax.agents.stages.run_stage`). Every LLM reply goes
through `batch_structured` (capped repair retries); parse failures and backend errors are counted in the
`StageReport` under their reason and never silently dropped. Prompts are data files in `prompts/`, read by
`humanai_jax.agents.prompts.PromptLibrary`.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import functools
import json
import string
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from humanai_jax.agents import NULL, GenConfig, batch_structured, extract_json, is_null_reply, parse_xml_tags
from humanai_jax.agents.prompts import PromptLibrary
from humanai_jax.agents.stages import StageReport, failure_reason, kept, read_done, run_stage  # noqa: F401
from humanai_jax.eval.judge import Rubric, load_rubrics
from humanai_jax.methods.humanllm import judge as judge_lib

MIN_QUALIFIED_POSTS = {"reddit": 3, "twitter": 5, "blogger": 3, "amazon": 1}
POST_TYPES = {"t3", "tweet", "blog", "review"}
SOCIAL_QA_VARIANTS = ("generic", "emphisize_thoughts", "emphisize_actions", "emphasizereason_v3")
SOCIAL_QA_CAPS = {"generic": 20, "emphisize_thoughts": 20, "emphisize_actions": 20, "emphasizereason_v3": 60}
SCENARIO_VARIANTS = {  # name -> (tags, body tag, per-user cap)
    "long_scenario_from_single_blog": (("characters", "summary", "scenario"), "scenario", 40),
    "single_long_story": (("background", "characters", "plots"), "plots", 40),
    "single_long_story_focusonbehavior": (("background", "characters", "story"), "story", 40),
    "thoughts_single_blog": (("background", "characters", "thoughts"), "thoughts", 40),
}
# Token limits of docs/humanllm.md §1: (max_in_length, max output tokens).
LIMITS = {"rewrite": (10_000, 10_000), "tag": (10_000, 100), "tag_comment": (20_000, 100), "persona": (80_000, 2048),
          "profile": (80_000, 4096), "stories": (80_000, 8192), "per_post": (80_000, 8192),
          "writing_style": (80_000, 10_240), "summary": (10_000, 2048), "judge": (26_213, 2048)}


# --------------------------------------------------------------------------------------------------
# Prompts and truncation


PROMPTS = PromptLibrary("humanai_jax.methods.humanllm")  # prompts/*.txt, prompts/judge_rubrics.json


def load_prompt(name: str) -> string.Template:
    """`prompts/<name>.txt` as a `string.Template` ($placeholders)."""
    return PROMPTS.template(name)


def render(name: str, /, **fields) -> str:
    """Fills a prompt template; a missing field raises KeyError naming it."""
    return PROMPTS.render(name, **fields)


def judge_rubrics() -> dict:
    return PROMPTS.json("judge_rubrics")


def truncate_tokens(text: str, max_tokens: int, tokenizer=None) -> str:
    """Keeps the first `max_tokens` tokens (HF tokenizer) or, without a tokenizer, whitespace words."""
    if tokenizer is None:
        words = text.split(" ")
        return text if len(words) <= max_tokens else " ".join(words[:max_tokens])
    ids = tokenizer.encode(text, add_special_tokens=False)
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def utc_time(ts) -> str:
    return datetime.datetime.fromtimestamp(float(ts), datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------------------------------------
# Reports and the resumable JSONL runner: `humanai_jax.agents.stages` (StageReport, run_stage, kept)


# --------------------------------------------------------------------------------------------------
# Parsers (each raises on a malformed reply; NULL replies return NULL)


def parse_text(text: str) -> Any:
    text = text.strip()
    if is_null_reply(text):
        return NULL
    if not text:
        raise ValueError("empty reply")
    return text


def parse_tag_v1(text: str) -> dict:
    fields = parse_xml_tags(text, ["quality", "harmless"])
    quality, harmless = fields["quality"].lower(), fields["harmless"].lower()
    if quality not in ("high", "medium", "low") or harmless not in ("yes", "no"):
        raise ValueError(f"quality must be high|medium|low and harmless yes|no, got {quality!r}, {harmless!r}")
    return {"quality": quality, "harmless": harmless}


def parse_tag_blogger(text: str) -> dict:
    quality = parse_xml_tags(text, ["quality"])["quality"].lower()
    if quality not in ("high", "medium", "low"):
        raise ValueError(f"quality must be high|medium|low, got {quality!r}")
    return {"quality": quality, "harmless": None}


def parse_tag_v2(text: str) -> dict:
    obj = extract_json(text)
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    out = {}
    for src, dst in (("unsafe content", "unsafe"), ("social event", "social")):
        value = str(obj.get(src, "")).strip().upper()
        if value not in ("YES", "NO"):
            raise ValueError(f"{src!r} must be YES or NO, got {obj.get(src)!r}")
        out[dst] = value == "YES"
    return out


def parse_stories(text: str) -> Any:
    if is_null_reply(text):
        return NULL
    obj = extract_json(text)
    if not isinstance(obj, list) or not all(isinstance(s, dict) and isinstance(s.get("summary"), str)
                                            and isinstance(s.get("content"), str) for s in obj):
        raise ValueError('expected a JSON list of {"summary": str, "content": str}')
    return obj[:20]


def xml_parser(tags: Sequence[str]) -> Callable[[str], Any]:
    def parse(text: str):
        return NULL if is_null_reply(text) else parse_xml_tags(text, tags)
    return parse


# --------------------------------------------------------------------------------------------------
# Qualification rules


def v1_qualified(log: dict, platform: str) -> bool:
    tag = log.get("tag_v1") or {}
    if platform == "blogger":
        return tag.get("quality") == "high"
    return tag.get("quality") in ("high", "medium") and tag.get("harmless") == "yes"


def v2_qualified(log: dict) -> bool:
    tag = log.get("tag_v2") or {}
    return tag.get("unsafe") is False and tag.get("social") is True


def is_post(log: dict) -> bool:
    return log.get("type") in POST_TYPES


def posts_block(logs: Sequence[dict], *, with_dates: bool = True, field: str = "rewrite_v1") -> str:
    parts = []
    for k, log in enumerate(logs, 1):
        date = f"Date: {utc_time(log['timestamp'])}\n" if with_dates and log.get("timestamp") is not None else ""
        parts.append(f"Post {k}:\n{date}{log.get(field) or log.get('raw_text')}")
    return "\n\n".join(parts)


@dataclasses.dataclass(frozen=True)  # frozen: safe as a shared default argument
class LLMSettings:
    """Decoding settings of the reference: generator temperature 0.3 and the token limits of docs/humanllm.md §1."""

    temperature: float = 0.3
    judge_temperature: float = 0.3
    max_attempts: int = 3
    batch_size: int = 32
    tokenizer: Any = None  # HF tokenizer for max_in_length truncation (None: whitespace words)
    limits: dict = dataclasses.field(default_factory=lambda: dict(LIMITS))

    def cfg(self, kind: str, judge: bool = False) -> GenConfig:
        return GenConfig(temperature=self.judge_temperature if judge else self.temperature,
                         max_tokens=self.limits[kind][1])

    def prompt(self, kind: str, template: str, text_field: str, **fields) -> list[dict]:
        fields[text_field] = truncate_tokens(fields[text_field], self.limits[kind][0], self.tokenizer)
        return [{"role": "user", "content": render(template, **fields)}]


def _ask(backend, settings: LLMSettings, kind: str, prompts: list, parse, tag: str, judge: bool = False):
    if not prompts:
        return []
    return batch_structured(backend, prompts, parse, settings.cfg(kind, judge), tags=[tag] * len(prompts),
                            max_attempts=settings.max_attempts)


_reason = failure_reason


# --------------------------------------------------------------------------------------------------
# Stage 1: rewrite + tag v1


def clean_v1(backend, logs: Sequence[dict], out_path: str, platform: str, report: StageReport,
             settings: LLMSettings = LLMSettings()) -> list[dict]:
    def process(batch):
        rewrites = _ask(backend, settings, "rewrite",
                        [settings.prompt("rewrite", "rewrite_v1", "text", text=log["raw_text"]) for log in batch],
                        parse_text, "humanllm.rewrite_v1")
        # Reddit comments: the parent post is rewritten too (one call per distinct parent text in the batch);
        # the tag and the personalized-comment task (docs/humanllm.md §7.2) see the rewritten parent.
        parents = list(dict.fromkeys((g.get("parent") or {}).get("text") or "" for g in batch if g.get("type") == "t1"))
        parents = [p for p in parents if p]
        parent_rw = dict(zip(parents, _ask(backend, settings, "rewrite",
                                           [settings.prompt("rewrite", "rewrite_v1", "text", text=p) for p in parents],
                                           parse_text, "humanllm.rewrite_v1_parent")))
        out, to_tag, prompts = [], [], []
        for log, (text, err) in zip(batch, rewrites):
            if err or text is NULL:
                out.append(dict(log, _drop=_reason(err, "rewrite") if err else "rewrite_null"))
                continue
            if log.get("type") == "t1":
                ptext = (log.get("parent") or {}).get("text") or ""
                if not ptext:
                    out.append(dict(log, _drop="parent_missing"))
                    continue
                prw, perr = parent_rw[ptext]
                if perr or prw is NULL:
                    out.append(dict(log, _drop=_reason(perr, "parent_rewrite") if perr else "parent_rewrite_null"))
                    continue
                log = dict(log, parent=dict(log["parent"], rewrite=prw))
            log = dict(log, rewrite_v1=text)
            if platform == "blogger":
                prompts.append(settings.prompt("tag", "tag_blogger", "text", text=text))
            elif log.get("type") == "t1":
                parent = (log.get("parent") or {})
                prompts.append(settings.prompt("tag_comment", "tag_v1_comment", "text", text=text,
                                               parent=parent.get("rewrite") or parent.get("text") or ""))
            else:
                prompts.append(settings.prompt("tag", "tag_v1", "text", text=text, platform=platform))
            to_tag.append(log)
        parse = parse_tag_blogger if platform == "blogger" else parse_tag_v1
        for log, (tag, err) in zip(to_tag, _ask(backend, settings, "tag", prompts, parse, "humanllm.tag_v1")):
            out.append(dict(log, tag_v1=tag, _drop=_reason(err, "tag_v1") if err else None))
        return out

    return run_stage("clean_v1", list(logs), out_path, "log_id", process, report, batch_size=settings.batch_size)


# --------------------------------------------------------------------------------------------------
# Stage 2: tag v2 + rewrite v2 on v1-qualified items of users with >= 3 of them


def select_for_v2(logs: Sequence[dict], platform: str, report: StageReport, cap: int = 100) -> list[dict]:
    by_user = collections.defaultdict(list)
    for log in kept(logs):
        by_user[log["uid"]].append(log)
    selected = []
    order = {"high": 0, "medium": 1}
    for _uid, user_logs in by_user.items():
        posts = [g for g in user_logs if is_post(g) and v1_qualified(g, platform)]
        comments = [g for g in user_logs if g.get("type") == "t1" and (g.get("tag_v1") or {}).get("quality") == "high"
                    and g["tag_v1"].get("harmless") == "yes"]
        if len(posts) < 3:
            report.count("select_v2", "user_below_3_qualified_posts", len(user_logs))
            continue
        posts.sort(key=lambda g: order[g["tag_v1"]["quality"]])  # stable: time order within a level
        for group in (posts, comments):
            selected += group[:cap]
            report.count("select_v2", "over_cap_100", max(0, len(group) - cap))
        report.count("select_v2", None, min(len(posts), cap) + min(len(comments), cap))
        report.count("select_v2", "not_v1_qualified", len(user_logs) - len(posts) - len(comments))
    return selected


def clean_v2(backend, logs: Sequence[dict], out_path: str, platform: str, report: StageReport,
             settings: LLMSettings = LLMSettings()) -> list[dict]:
    units = select_for_v2(logs, platform, report)

    def process(batch):
        tags = _ask(backend, settings, "tag",
                    [settings.prompt("tag", "tag_v2", "text", text=g["rewrite_v1"]) for g in batch],
                    parse_tag_v2, "humanllm.tag_v2")
        rewrites = _ask(backend, settings, "rewrite",
                        [settings.prompt("rewrite", "rewrite_v2", "text", text=g["rewrite_v1"]) for g in batch],
                        parse_text, "humanllm.rewrite_v2")
        out = []
        for g, (tag, terr), (text, rerr) in zip(batch, tags, rewrites):
            drop = (_reason(terr, "tag_v2") if terr else _reason(rerr, "rewrite_v2") if rerr
                    else "rewrite_v2_null" if text is NULL else None)
            out.append(dict(g, tag_v2=tag, rewrite_v2=None if text is NULL else text, _drop=drop))
        return out

    return run_stage("clean_v2", units, out_path, "log_id", process, report, batch_size=settings.batch_size)


# --------------------------------------------------------------------------------------------------
# Stage 3: per-user synthesis


def group_users(logs: Iterable[dict]) -> dict[str, list[dict]]:
    users = collections.defaultdict(list)
    for log in logs:
        users[log["uid"]].append(log)
    for uid in users:
        users[uid].sort(key=lambda g: (g.get("timestamp") or 0))
    return dict(users)


def amazon_history_block(reviews: Sequence[dict], item_meta: dict | None = None, max_items: int = 30) -> str:
    """§5.1 Amazon rendering of the <= 30 items *before* the item-selection target (never the target)."""
    from humanai_jax.methods.humanllm.tasks import item_selection_target_index

    t = item_selection_target_index(reviews)
    parts = []
    for k, r in enumerate(reviews[max(0, t - max_items):t], 1):
        item = r.get("item") or {}
        lines = [f"History {k}: User bought {item.get('title')} on {utc_time(r['timestamp'])}. "
                 f"The rating is {item.get('rating')}.", r.get("rewrite_v1") or r.get("raw_text") or ""]
        meta = (item_meta or {}).get(item.get("item_id")) or {}
        if meta.get("price") not in (None, "", "None"):
            lines.append(f"Price: {meta['price']}")
        if meta.get("categories"):
            lines.append("Categories: " + ", ".join(map(str, meta["categories"])))
        if meta.get("description"):
            desc = meta["description"]
            lines.append("Description: " + (" ".join(map(str, desc)) if isinstance(desc, list) else str(desc))[:2000])
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def user_synthesis(backend, v1_logs: Sequence[dict], v2_logs: Sequence[dict], out_path: str, platform: str,
                   report: StageReport, settings: LLMSettings = LLMSettings(),
                   user_meta: dict | None = None, item_meta: dict | None = None,
                   all_logs: Sequence[dict] | None = None) -> list[dict]:
    """One UserRecord per user with enough qualified posts (Reddit 3, Twitter 5, Blogger 3 high).

    Amazon: persona/profile/stories are built from the purchase history before the item-selection target
    (`all_logs`: every review of the user in time order, with v1 tags where available; `item_meta`: metadata).
    """
    if platform == "amazon":
        users = group_users(all_logs if all_logs is not None else kept(v1_logs))
    else:
        users = group_users(g for g in kept(v1_logs) if is_post(g) and v1_qualified(g, platform))
    v2_by_user = group_users(g for g in kept(v2_logs) if is_post(g) and v2_qualified(g))
    units = []
    for uid, posts in users.items():
        if len(posts) < MIN_QUALIFIED_POSTS[platform]:
            report.count("user_synthesis", "too_few_qualified_posts")
            continue
        units.append({"uid": uid, "posts": posts, "v2_posts": v2_by_user.get(uid, [])})

    def process(batch):
        if platform == "amazon":
            blocks = [amazon_history_block(u["posts"], item_meta) for u in batch]
        else:
            blocks = [posts_block(u["posts"]) for u in batch]
        asks = {
            "persona": _ask(backend, settings, "persona",
                            [settings.prompt("persona", "persona", "posts", posts=b) for b in blocks],
                            parse_text, "humanllm.persona"),
            "profile": _ask(backend, settings, "profile",
                            [settings.prompt("profile", "profile", "posts", posts=b) for b in blocks],
                            parse_text, "humanllm.profile"),
            "stories": _ask(backend, settings, "stories",
                            [settings.prompt("stories", "stories", "posts", posts=b) for b in blocks],
                            parse_stories, "humanllm.stories"),
        }
        with_style = [i for i, u in enumerate(batch) if u["v2_posts"]]
        style = _ask(backend, settings, "writing_style",
                     [settings.prompt("writing_style", "writing_style", "posts",
                                      posts=posts_block(batch[i]["v2_posts"], with_dates=False, field="rewrite_v2"))
                      for i in with_style], parse_text, "humanllm.writing_style")
        style_by_index = dict(zip(with_style, style))
        out = []
        for i, u in enumerate(batch):
            rec = {"uid": u["uid"], "platform": platform, "category": None, "meta": (user_meta or {}).get(u["uid"], {}),
                   "judge": {}, "errors": {}}
            for field, results in asks.items():
                value, err = results[i]
                if err:
                    rec["errors"][field] = err
                    report.count(f"user_synthesis.{field}", _reason(err, field))
                else:
                    report.count(f"user_synthesis.{field}", "null" if value is NULL else None)
                rec[field] = None if (err or value is NULL) else value
            rec["stories"] = rec["stories"] or []
            value, err = style_by_index.get(i, (None, "no v2-qualified posts"))
            rec["writing_style"] = None if (err or value is NULL) else value
            any_artifact = rec["persona"] or rec["profile"] or rec["stories"] or rec["writing_style"]
            rec["_drop"] = None if any_artifact else "no_artifact"
            out.append(rec)
        return out

    return run_stage("user_synthesis", units, out_path, "uid", process, report, batch_size=settings.batch_size)


# --------------------------------------------------------------------------------------------------
# Stage 4: per-post synthesis


def _capped_posts(logs: Sequence[dict], platform: str, cap: int) -> list[dict]:
    order = {"high": 0, "medium": 1}
    posts = sorted((g for g in logs if is_post(g) and v1_qualified(g, platform)),
                   key=lambda g: order.get(g["tag_v1"]["quality"], 2))
    return posts[:cap]


def post_synthesis(backend, v1_logs: Sequence[dict], v2_logs: Sequence[dict], out_path: str, platform: str,
                   report: StageReport, settings: LLMSettings = LLMSettings()) -> list[dict]:
    """Per qualified post: Social QA (4 variants), scenario/story/thoughts (4 variants), summary (v2 items).

    Per-user caps (high first, then medium): Social QA generic/thoughts/actions 20, reason 60,
    scenario/story/thoughts 40. The two long-story variants on Blogger need >= 1,800 characters.
    """
    users = group_users(kept(v1_logs))
    v2_ids = {g["log_id"]: g for g in kept(v2_logs) if v2_qualified(g)}
    jobs: dict[str, list[str]] = collections.defaultdict(list)
    units = {}
    for _uid, logs in users.items():
        qualified = [g for g in logs if is_post(g) and v1_qualified(g, platform)]
        if len(qualified) < MIN_QUALIFIED_POSTS[platform]:
            report.count("post_synthesis", "user_too_few_qualified_posts", len(qualified))
            continue
        # Amazon reviews only get the review summary (used as the writing-imitation topic)
        for variant, cap in (SOCIAL_QA_CAPS.items() if platform != "amazon" else ()):
            for g in _capped_posts(logs, platform, cap):
                jobs[g["log_id"]].append(f"socialqa_{variant}")
        for variant, (_, _, cap) in (SCENARIO_VARIANTS.items() if platform != "amazon" else ()):
            for g in _capped_posts(logs, platform, cap):
                long_story = variant in ("single_long_story", "single_long_story_focusonbehavior")
                if platform == "blogger" and long_story and len(g["rewrite_v1"]) < 1800:
                    continue
                jobs[g["log_id"]].append(variant)
        for g in qualified:
            units[g["log_id"]] = g
            if g["log_id"] in v2_ids:
                v2 = v2_ids[g["log_id"]]
                units[g["log_id"]] = dict(g, tag_v2=v2["tag_v2"], rewrite_v2=v2["rewrite_v2"])
                jobs[g["log_id"]].append("post_summary_v2")

    def process(batch):
        out = {g["log_id"]: dict(g, social_qa=[], scenarios=[], summary=None, errors={}) for g in batch}
        for job in sorted({j for g in batch for j in jobs[g["log_id"]]}):
            members = [g for g in batch if job in jobs[g["log_id"]]]
            if job.startswith("socialqa_"):
                parse = xml_parser(["scenario", "question", "answer"])
            elif job == "post_summary_v2":
                parse = parse_text
            else:
                parse = xml_parser(SCENARIO_VARIANTS[job][0])
            field = "rewrite_v2" if job == "post_summary_v2" else "rewrite_v1"
            kind = "summary" if job == "post_summary_v2" else "per_post"
            results = _ask(backend, settings, kind, [settings.prompt(kind, job, "text", text=g[field]) for g in members],
                           parse, f"humanllm.{job}")
            for g, (value, err) in zip(members, results):
                rec = out[g["log_id"]]
                report.count(f"post_synthesis.{job}", _reason(err, job) if err else ("null" if value is NULL else None))
                if err:
                    rec["errors"][job] = err
                elif value is NULL:
                    continue
                elif job.startswith("socialqa_"):
                    rec["social_qa"].append(dict(variant=job[len("socialqa_"):], **value, judge=None))
                elif job == "post_summary_v2":
                    rec["summary"] = value
                else:
                    body_tag = SCENARIO_VARIANTS[job][1]
                    rec["scenarios"].append({"variant": job, "summary": value.get("summary"),
                                             "background": value.get("background"),
                                             "characters": value.get("characters"), "body": value[body_tag],
                                             "judge": None})
        for rec in out.values():
            rec["_drop"] = None if (rec["social_qa"] or rec["scenarios"] or rec["summary"]) else "no_artifact"
        return [out[g["log_id"]] for g in batch]

    return run_stage("post_synthesis", list(units.values()), out_path, "log_id", process, report,
                     batch_size=settings.batch_size)


# --------------------------------------------------------------------------------------------------
# Stage 5: judge


@functools.cache
def rubrics() -> dict[str, Rubric]:
    """The §6 rubric per judged artifact (`prompts/judge_rubrics.json` with the `prompts/judge.txt` template)."""
    return load_rubrics(judge_rubrics(), template=PROMPTS.text("judge"))


def judge_prompt(artifact: str, source: str, generated: str, settings: LLMSettings) -> list[dict]:
    source = truncate_tokens(source, settings.limits["judge"][0], settings.tokenizer)
    return rubrics()[artifact].messages(source=source, artifact=artifact, generated=generated)


def _parse_judgment(text: str) -> dict[str, int]:
    scores = judge_lib.parse_scores(text)
    if not scores:
        raise ValueError("no <dimension>N</dimension> scores found")
    return scores


def judge_users(backend, users: Sequence[dict], v1_logs: Sequence[dict], out_path: str, platform: str,
                report: StageReport, settings: LLMSettings = LLMSettings()) -> list[dict]:
    """Scores persona, profile and stories; a failed or missing judgment means reject (field set to None)."""
    posts = group_users(g for g in kept(v1_logs) if is_post(g) and v1_qualified(g, platform))

    def process(batch):
        out = [dict(u, judge=dict(u.get("judge") or {})) for u in batch]
        for field in ("persona", "profile", "stories"):
            members = [u for u in out if u.get(field)]
            prompts = [judge_prompt(field, posts_block(posts.get(u["uid"], [])),
                                    json.dumps(u[field], ensure_ascii=False) if field == "stories" else u[field],
                                    settings) for u in members]
            results = _ask(backend, settings, "judge", prompts, _parse_judgment, f"humanllm.judge.{field}", judge=True)
            for u, (scores, err) in zip(members, results):
                ok = err is None and judge_lib.check_quality(scores, judge_lib.thresholds_for(field))
                report.count(f"judge.{field}", None if ok else (_reason(err, "judge") if err else "below_threshold"))
                u["judge"][field] = scores
                if not ok:
                    u[field] = [] if field == "stories" else None
        for u in out:
            u["_drop"] = None if (u.get("persona") or u.get("profile") or u.get("stories")) else "no_judged_artifact"
        return out

    return run_stage("judge_users", kept(users), out_path, "uid", process, report, batch_size=settings.batch_size)


def judge_posts(backend, post_records: Sequence[dict], out_path: str, platform: str, report: StageReport,
                settings: LLMSettings = LLMSettings()) -> list[dict]:
    """Scores each Social QA pair and scenario; keeps only those passing their thresholds."""
    def process(batch):
        out = [dict(p, social_qa=[dict(q) for q in p["social_qa"]], scenarios=[dict(s) for s in p["scenarios"]])
               for p in batch]
        items = [(p, "social_qa", q) for p in out for q in p["social_qa"]] + \
                [(p, "scenario", s) for p in out for s in p["scenarios"]]
        prompts = []
        for p, artifact, a in items:
            generated = (f"Scenario: {a['scenario']}\nQuestion: {a['question']}\nAnswer: {a['answer']}"
                         if artifact == "social_qa" else a["body"])
            prompts.append(judge_prompt(artifact, p["rewrite_v1"], generated, settings))
        results = _ask(backend, settings, "judge", prompts, _parse_judgment, "humanllm.judge.post", judge=True)
        for (_p, artifact, a), (scores, err) in zip(items, results):
            metrics = judge_lib.thresholds_for(artifact, a.get("variant"), platform)
            a["judge"] = scores
            a["keep"] = err is None and judge_lib.check_quality(scores, metrics)
            name = f"judge.{artifact}.{a['variant']}"
            report.count(name, None if a["keep"] else (_reason(err, "judge") if err else "below_threshold"))
        for p in out:
            p["social_qa"] = [q for q in p["social_qa"] if q["keep"]]
            p["scenarios"] = [s for s in p["scenarios"] if s["keep"]]
            p["_drop"] = None if (p["social_qa"] or p["scenarios"] or p.get("summary")) else "no_judged_artifact"
        return out

    return run_stage("judge_posts", kept(post_records), out_path, "log_id", process, report,
                     batch_size=settings.batch_size)
