"""The CBNames metric suite (docs/namegen.md §4): EMOC_w, EMOC_std, CRC, LR, Acc (8 deterministic fact checks), IMOC
(+std), CMOC (+std). Judge prompts are data files (`prompts/zh/metric_*.txt`); every judge call goes through
the ChatBackend with JSON parsing and capped repair (`llm.Caller`).

Per item, with judge score lists s ∈ {0,1,2,3}^5 in key order and n(s) = 100·s/3:
  EMOC_w   = Σ_i up_w_i · n(emoc_i)         (gold up_w of the dataset)
  EMOC_std = population std (ddof 0) of the 5 n(emoc_i)
  CRC, LR  = mean of the 5 n(crc_i), n(lr_i)
  Acc      = 100 · mean(8 flags)
  IMOC     = (Acc + CRC + LR) / 3;   IMOC_std = sample std (ddof 1) of the three
  CMOC     = (EMOC_w + IMOC) / 2;    CMOC_std = sample std (ddof 1) of the two
A judge list that is not 5 numbers in [0, 3] drops the item from every metric (as the reference does);
the drop is counted. Values are not rounded (the reference rounds to 4 decimals on the way).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from humanai_jax.methods.namegen.calendar import ELEMENTS, calendar_facts, parse_birth_time
from humanai_jax.methods.namegen.constants import KEYS
from humanai_jax.methods.namegen.data import keep_chinese, keep_chinese_and_pipe, normalise_dynasty

__all__ = ["METRICS", "valid_scores", "item_metrics", "check_poems", "check_elements", "check_birth", "acc_flags",
           "aggregate", "judge_item", "format_explanation"]

METRICS = ("EMOC_w", "EMOC_std", "CRC", "LR", "Acc", "IMOC", "IMOC_std", "CMOC", "CMOC_std")
ACC_FLAGS = ("poem", "char_element", "zodiac", "season", "solar_term", "festival", "bazi", "missing")


def valid_scores(scores) -> list[float] | None:
    """A list of exactly 5 numbers in [0, 3] (bools refused), else None."""
    if not isinstance(scores, (list, tuple)) or len(scores) != 5:
        return None
    out = []
    for s in scores:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s <= 3 or math.isnan(s):
            return None
        out.append(float(s))
    return out


def _n(scores: Sequence[float]) -> np.ndarray:
    return 100.0 * np.asarray(scores, dtype=np.float64) / 3.0


def item_metrics(emoc: Sequence[float], crc: Sequence[float], lr: Sequence[float], acc: Sequence[int],
                 up_w: Sequence[float]) -> dict[str, float]:
    """The nine per-item numbers from three judge lists, the 8 Acc flags and the gold weights."""
    if len(up_w) != 5 or len(acc) != 8:
        raise ValueError(f"item_metrics: need 5 weights and 8 Acc flags, got {len(up_w)} and {len(acc)}")
    e = _n(emoc)
    emoc_w = float(np.dot(np.asarray(up_w, dtype=np.float64), e))
    crc_v, lr_v = float(np.mean(_n(crc))), float(np.mean(_n(lr)))
    acc_v = 100.0 * float(np.mean(acc))
    imp = np.array([acc_v, crc_v, lr_v])
    imoc = float(imp.mean())
    cmoc = 0.5 * emoc_w + 0.5 * imoc
    return {"EMOC_w": emoc_w, "EMOC_std": float(np.std(e)), "CRC": crc_v, "LR": lr_v, "Acc": acc_v,
            "IMOC": imoc, "IMOC_std": float(np.std(imp, ddof=1)), "CMOC": cmoc,
            "CMOC_std": float(np.std([emoc_w, imoc], ddof=1))}


# ---------------------------------------------------------------------------------------------------
# Acc: 8 deterministic fact checks of the claims an extractor LLM read from the explanation


def _none(v) -> bool:
    return v is None or (isinstance(v, str) and v.strip() in ("", "无")) or (isinstance(v, (list, dict)) and not v)


def _s(v) -> str:
    return "" if _none(v) else str(v)


def check_poems(claims, poems: Sequence[dict]) -> bool:
    """Every claimed poem matches some poem: title ⊂, author ⊂, dynasty ⊂ (CJK only); one line ⊂ its text,
    several lines (`|`) all in the same poem. A claim with every field 无 (or no claims) passes."""
    if _none(claims):
        return True
    if not isinstance(claims, list):
        claims = [claims]
    table = [(keep_chinese(p["title"]), p["author"], p["dynasty"], keep_chinese(p["content"])) for p in poems]
    for c in claims:
        if not isinstance(c, dict):
            return False
        title, author = keep_chinese(_s(c.get("题目"))), _s(c.get("诗人")).strip()
        dynasty = normalise_dynasty(_s(c.get("朝代")))
        lines = [x for x in keep_chinese_and_pipe(_s(c.get("诗句"))).split("|") if x]
        if not (title or author or dynasty or lines):
            continue
        if not any(title in t and author in a and dynasty in d and all(x in text for x in lines)
                   for t, a, d, text in table):
            return False
    return True


def check_elements(claims, hanzi: dict[str, str]) -> bool:
    """Every claimed {字, 五行} equals the Hanzi table (a character missing from the table fails: the claim
    cannot be verified, as in the reference where the lookup returns None)."""
    if _none(claims):
        return True
    if isinstance(claims, dict):
        claims = [{"字": k, "五行": v} for k, v in claims.items()]
    for c in claims:
        if not isinstance(c, dict) or _none(c.get("字")):
            continue
        claimed = next((ch for ch in _s(c.get("五行")) if ch in ELEMENTS), None)
        if any(hanzi.get(ch) != claimed for ch in keep_chinese(_s(c["字"]))):
            return False
    return True


def _split_elements(v) -> list[str]:
    if isinstance(v, (list, tuple)):
        v = "|".join(str(x) for x in v)
    return [x for x in re.split(r"[|、,，\s]+", _s(v)) if x]


def check_birth(claims, facts: dict) -> list[int]:
    """Flags (zodiac, season, solar term, festival, BaZi, missing elements) of claimed birth facts; 无 passes."""
    c = claims if isinstance(claims, dict) else {}
    flags = [1] * 6
    if not _none(c.get("生肖")) and _s(c.get("生肖")).strip() != facts["生肖"]:
        flags[0] = 0
    if not _none(c.get("季节")) and _s(c.get("季节")).strip()[:1] != facts["季节"][:1]:
        flags[1] = 0
    if not _none(c.get("节气")) and _s(c.get("节气")).strip() != facts["节气"]:
        flags[2] = 0
    if not _none(c.get("节日")) and _s(c.get("节日")).strip() != facts["节日"]:
        flags[3] = 0
    if not _none(c.get("八字")):
        claimed, true = keep_chinese(_s(c.get("八字"))), keep_chinese(facts["八字和五行"])
        if len(claimed) < len(true):
            true = keep_chinese(facts["八字"])
        flags[4] = int(claimed == true)
    if not _none(c.get("五行缺失")):
        flags[5] = int(set(_split_elements(c.get("五行缺失"))) <= set(facts["五行缺失"]))
    return flags


def acc_flags(claims: dict, query: str, poems: Sequence[dict], hanzi: dict[str, str], *,
              compat: bool = False) -> list[int]:
    """The 8 Acc flags; birth facts are recomputed from the query with the shared parser."""
    claims = claims if isinstance(claims, dict) else {}
    facts = calendar_facts(parse_birth_time(query, compat=compat), compat=compat)
    return [int(check_poems(claims.get("古诗信息"), poems)), int(check_elements(claims.get("字和五行"), hanzi)),
            *check_birth(claims.get("出生信息"), facts)]


# ---------------------------------------------------------------------------------------------------
# Judge calls and aggregation


def format_explanation(explanation) -> str:
    if isinstance(explanation, dict):
        return "\n".join(f"{k}：{v}" for k, v in explanation.items())
    return str(explanation or "")


def _score_list(obj):
    scores = obj.get("评估分数") if isinstance(obj, dict) else None
    if valid_scores(scores) is None:
        raise ValueError(f"'评估分数' must be a list of 5 numbers in 0-3 (one per objective, in the order "
                         f"{list(KEYS)}), got {scores!r}")
    return valid_scores(scores)


def _claims(obj):
    if not isinstance(obj, dict) or not {"古诗信息", "字和五行", "出生信息"} <= set(obj):
        raise ValueError("need the keys 古诗信息, 字和五行, 出生信息")
    return obj


def judge_item(caller, prompts, *, item_id: str, query: str, name: str, explanation, up_w, poems, hanzi,
               compat: bool = False) -> dict:
    """Runs the four judge prompts on one output; returns {scores…, acc_flags, metrics | None, drop}."""
    from humanai_jax.agents import StructuredOutputError

    exp = format_explanation(explanation)
    fields = {"user_query": query, "gen_cont": name, "exp": exp}
    out: dict = {"item_id": item_id, "name": name}
    for metric in ("emoc", "crc", "lr"):
        msgs = [{"role": "user", "content": prompts.render(f"metric_{metric}", **fields)}]
        try:
            out[metric] = caller.ask_json(f"judge.{metric}", msgs, _score_list, item_id=item_id)
        except StructuredOutputError:
            out[metric] = None
    try:
        claims = caller.ask_json("judge.acc_extract", [{"role": "user", "content": prompts.render(
            "metric_acc", exp=exp)}], _claims, item_id=item_id)
        out["acc_claims"] = claims
        out["acc_flags"] = acc_flags(claims, query, poems, hanzi, compat=compat)
    except StructuredOutputError:
        out["acc_claims"], out["acc_flags"] = None, None
    missing = [m for m in ("emoc", "crc", "lr", "acc_flags") if out[m] is None]
    out["drop"] = f"judge_unparsable:{','.join(missing)}" if missing else None
    out["metrics"] = None if missing else item_metrics(out["emoc"], out["crc"], out["lr"], out["acc_flags"], up_w)
    return out


def aggregate(per_item: Sequence[dict | None]) -> dict:
    """{metric: {mean, std (ddof 1 over items; NaN for one), n}} over items with metrics; plus n_dropped."""
    from humanai_jax.eval.stats import mean_std

    rows = [m for m in per_item if m is not None]
    out: dict = {"n_items": len(per_item), "n_scored": len(rows), "n_dropped": len(per_item) - len(rows)}
    for k in METRICS:
        out[k] = mean_std([r[k] for r in rows]).to_dict() if rows else {"mean": math.nan, "std": math.nan, "n": 0}
    return out
