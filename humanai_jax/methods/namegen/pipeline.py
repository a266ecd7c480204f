"""NAMeGEn for one query: MOM prepares (weights, extraction, calendar facts, poem retrieval with MOE judging,
objective refinement), then MOG generates and MOE evaluates in a loop with the threshold schedule and flags
0-4 (docs/namegen.md §2). Every model call goes through `llm.Caller` (traced, JSON repaired with capped retries); every
prompt is a data file in `prompts/zh/`.

`Settings` holds the loop constants and the ablation switches (wo_R, wo_evalR, wo_Imp, wo_Exp, wo_evalGen,
wo_ImpExp are settings, not code forks). `run_query(...) -> dict` returns the per-query record: name,
explanation, poem, weights, objectives, requirements, per-round scores / thresholds / flags, round counts
(`f_gen_rounds, f_regen_flag, f_rk_rounds, h_imp_ss, h_exp_ss`) and `failed` (None or the reason).
"""

from __future__ import annotations

import dataclasses
import re

from humanai_jax.agents import StructuredOutputError, extract_fields, extract_json
from humanai_jax.methods.namegen.calendar import ELEMENTS, birth_from_text, calendar_facts, parse_birth_time
from humanai_jax.methods.namegen.constants import (
    FLAG_ACCEPT,
    FLAG_FAIL,
    FLAG_HISTORY_BEST,
    FLAG_REGENERATE,
    FLAG_REWRITE_EXPLANATION,
    KEYS,
    numbered_keys,
    tau,
)
from humanai_jax.methods.namegen.data import keep_chinese, preference_weights
from humanai_jax.methods.namegen.hanzi import chars_of_element
from humanai_jax.methods.namegen.poems import format_poem

__all__ = ["Settings", "run_query", "parse_generation", "prepare", "retrieve_poem", "ABLATIONS"]

_WEIGHT_LABELS = {0: "0分，不关注", 1: "1分，略有关注", 2: "2分，一般关注", 3: "3分，比较关注", 4: "4分，非常关注"}


@dataclasses.dataclass(frozen=True)
class Settings:
    max_round: int = 10
    warmup: int = 2
    lr: float = 0.8
    alpha: float = 0.8
    rk_limit: int = 5
    refine_repairs: int = 3
    retrieval: bool = True  # False = wo_R
    judge_retrieval: bool = True  # False = wo_evalR (top-1, no judging)
    implicit: bool = True  # False = wo_Imp (no requirements, no implicit eval)
    explicit: bool = True  # False = wo_Exp (no objectives, no explicit eval)
    loop: bool = True  # False = wo_evalGen (single shot)
    show_weights: bool = False  # reference: the weights never reach the generator
    compat: bool = False  # reference quirks: parser 凌晨12点 -> 12:00, zodiac of substituted dates, flag-1 critique
    birth_from: str = "parser"  # "parser" (shared deterministic parser) | "llm" (the extraction's 出生时间)

    def tau(self, t: int) -> float:
        return tau(t, lr=self.lr, alpha=self.alpha, warmup=self.warmup)


ABLATIONS = {"full": {}, "wo_R": {"retrieval": False}, "wo_evalR": {"judge_retrieval": False},
             "wo_Imp": {"implicit": False}, "wo_Exp": {"explicit": False}, "wo_evalGen": {"loop": False},
             "wo_ImpExp": {"implicit": False, "explicit": False}}


# ---------------------------------------------------------------------------------------------------
# validators (raise ValueError with a message the repair turn quotes)


def _weights(obj):
    if not isinstance(obj, dict):
        raise ValueError("需要一个 JSON 对象")
    out = {}
    for k in KEYS:
        v = obj.get(k)
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v.strip())
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 4 or int(v) != v:
            raise ValueError(f"键 {k!r} 需要 0-4 的整数，得到 {v!r}")
        out[k] = int(v)
    return out


def _extraction(obj):
    need = ("姓氏", "性别", "出生时间")
    if not isinstance(obj, dict) or any(k not in obj for k in need):
        raise ValueError(f"需要键 {list(need)}")
    return {k: ("无" if obj.get(k) in (None, "") else obj.get(k)) for k in
            ("姓氏", "性别", "出生时间", "出生季节", "寓意", "其他信息")}


def _retrieval_desc(obj):
    if not isinstance(obj, dict) or not str(obj.get("检索描述") or "").strip():
        raise ValueError("需要非空的 '检索描述'")
    info = obj.get("古诗信息") or []
    if info in ("无",):
        info = []
    if not isinstance(info, list):
        raise ValueError("'古诗信息' 需要是列表")
    return {"古诗类型": str(obj.get("古诗类型") or "无"), "古诗信息": info, "检索描述": str(obj["检索描述"])}


def _pick(obj) -> int | None:
    m = re.search(r"#?\s*(\d+)", str(obj.get("最相关的知识", "") if isinstance(obj, dict) else ""))
    return int(m.group(1)) if m else None


def _retrieval_judge(obj):
    if not isinstance(obj, dict) or str(obj.get("是否重新检索", "")).strip() not in ("0", "1"):
        raise ValueError("'是否重新检索' 需要是 0 或 1")
    return {"again": str(obj["是否重新检索"]).strip() == "1", "description": str(obj.get("检索描述") or ""),
            "pick": _pick(obj)}


def _refinement(obj):
    if not isinstance(obj, dict) or not isinstance(obj.get("任务目标"), list) or \
            not isinstance(obj.get("任务要求"), list):
        raise ValueError("需要列表 '任务目标' 和 '任务要求'")
    return {"objectives": [str(x) for x in obj["任务目标"]], "requirements": [str(x) for x in obj["任务要求"]]}


def _flag01(key):
    def validate(obj):
        if not isinstance(obj, dict) or str(obj.get(key, "")).strip() not in ("0", "1"):
            raise ValueError(f"'{key}' 需要是 0 或 1")
        return {"value": int(str(obj[key]).strip()), "advice": str(obj.get("结论与建议") or obj.get("修改建议") or "")}
    return validate


def _score012(*keys):
    def validate(obj):
        out = {}
        for k in keys:
            v = obj.get(k) if isinstance(obj, dict) else None
            if isinstance(v, str) and v.strip().isdigit():
                v = int(v.strip())
            if v not in (0, 1, 2) or isinstance(v, bool):
                raise ValueError(f"'{k}' 需要是 0、1 或 2，得到 {v!r}")
            out[k] = int(v)
        out["advice"] = str(obj.get("结论与建议") or "")
        return out
    return validate


def _element_claims(obj):
    if not isinstance(obj, dict):
        raise ValueError("需要 JSON 对象 {字: 五行}")
    return {str(k): str(v) for k, v in obj.items()}


def parse_generation(text: str) -> dict:
    """{"结果": name, "解释": {"1.<key>": text, …}} from a generator reply: JSON first, then a field-by-field
    regex on the Chinese keys. Raises ValueError when no name is found."""
    try:
        obj = extract_json(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("结果"), str) and obj["结果"].strip():
        exp = obj.get("解释")
        if not isinstance(exp, dict):
            exp = {numbered_keys()[0]: str(exp or "")}
        return {"name": keep_chinese(obj["结果"]) or obj["结果"].strip(), "explanation": {str(k): str(v) for k, v in
                                                                                      exp.items()}}
    fields = extract_fields(text, ["结果", *numbered_keys()])
    if not fields.get("结果", "").strip():
        raise ValueError("没有找到 '结果'（名字）；请按 {\"结果\": …, \"解释\": {…}} 输出")
    return {"name": keep_chinese(fields["结果"]) or fields["结果"].strip(),
            "explanation": {k: fields[k] for k in numbered_keys() if k in fields}}


# ---------------------------------------------------------------------------------------------------
# Stage 1: MOM


def _msg(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def prepare(caller, prompts, query: str, item_id: str, s: Settings, tracer) -> dict:
    """Weights, extraction and calendar facts (steps 2-4). Fallbacks on unparsable replies are recorded."""
    info: dict = {"fallbacks": []}
    keys_text = "\n".join(KEYS)
    try:
        scores = caller.ask_json("MOM.weights", _msg(prompts.render("mom_weights", query=query, keys=keys_text)),
                                 _weights, item_id=item_id)
    except StructuredOutputError:
        scores = dict.fromkeys(KEYS, 1)  # no usable rating: equal weights
        info["fallbacks"].append("weights")
    info["weight_scores"], info["weights"] = scores, preference_weights(scores)
    try:
        extraction = caller.ask_json("MOM.extract", _msg(prompts.render("mom_extract", query=query)), _extraction,
                                     item_id=item_id)
    except StructuredOutputError:
        extraction = {"姓氏": "无", "性别": "未知", "出生时间": "无", "出生季节": "无", "寓意": "无", "其他信息": "无"}
        info["fallbacks"].append("extract")
    info["extraction"] = extraction
    birth = parse_birth_time(query, compat=s.compat)
    if s.birth_from == "llm":
        try:
            season = extraction.get("出生季节")
            birth = birth_from_text(extraction["出生时间"], "" if season == "无" else season)
        except ValueError:
            info["fallbacks"].append("birth_time")
    info["birth"] = birth.text
    info["facts"] = calendar_facts(birth, compat=s.compat)
    info["surname"] = "" if extraction["姓氏"] in ("无", "未知") else keep_chinese(str(extraction["姓氏"]))
    tracer.event("prepare", {k: info[k] for k in ("weights", "birth", "facts", "surname", "fallbacks")},
                 item_id=item_id)
    return info


def _candidates(poems: list[dict]) -> str:
    return "\n".join(f"#{i} {format_poem(p)}" for i, p in enumerate(poems, start=1))


def _pick_from(caller, prompts, query, description, cands, item_id, round_) -> dict | None:
    try:
        obj = caller.ask_json("MOE.retrieval_pick", _msg(prompts.render(
            "moe_retrieval_pick", query=query, description=description, candidates=_candidates(cands))),
            item_id=item_id, round_=round_)
    except StructuredOutputError:
        return None
    k = _pick(obj)
    return cands[k - 1] if k is not None and 1 <= k <= len(cands) else None


def retrieve_poem(caller, prompts, query: str, item_id: str, info: dict, store, hanzi, s: Settings,
                  tracer) -> tuple[dict | None, int]:
    """Steps 5-6: (poem or None, retrieval rounds)."""
    facts = info["facts"]
    q = query + (f"（生肖：{facts['生肖']}）" if "生肖" in query and facts["生肖"] != "无" else "")
    try:
        desc = caller.ask_json("MOM.retrieval_desc", _msg(prompts.render("mom_retrieval_desc", query=q)),
                               _retrieval_desc, item_id=item_id)
    except StructuredOutputError:
        desc = {"古诗类型": "无", "古诗信息": [], "检索描述": query}
        info["fallbacks"].append("retrieval_desc")
    for named in desc["古诗信息"]:
        if isinstance(named, (list, tuple)) and named:
            title, author, _, lines = (list(map(str, named)) + ["", "", "", ""])[:4]
            hits = store.lookup(title, author, lines)
            if hits:
                tracer.event("retrieval", {"named": True, "poem_id": hits[0]["id"]}, item_id=item_id)
                return hits[0], 0
    types = [t for t in desc["古诗类型"].split("|") if t]
    meanings = str(info["extraction"].get("寓意") or "无").strip()
    meanings = query if meanings == "无" else meanings
    element_chars = chars_of_element(hanzi, facts["五行缺失"])
    terms = [*facts["节日"].split("，"), facts["节气"], facts["季节"]]
    description, seen, all_seen = desc["检索描述"], set(), []
    for rnd in range(1, s.rk_limit + 1):
        cands = store.search(meanings, description, 5, types=types, exclude_ids=seen, element_chars=element_chars,
                             prefilter_terms=terms if rnd < 5 else ())
        seen.update(p["id"] for p in cands)
        all_seen += cands
        if not cands:
            break
        if not s.judge_retrieval:
            return cands[0], rnd
        if rnd < s.rk_limit:
            try:
                verdict = caller.ask_json("MOE.retrieval_judge", _msg(prompts.render(
                    "moe_retrieval_judge", query=query, description=description, candidates=_candidates(cands))),
                    _retrieval_judge, item_id=item_id, round_=rnd)
            except StructuredOutputError:
                continue  # no usable verdict: retrieve again with the same description
            tracer.event("retrieval_judge", {"round": rnd, **verdict}, item_id=item_id)
            if verdict["again"]:
                description = verdict["description"] or description
                continue
            if verdict["pick"] is not None and 1 <= verdict["pick"] <= len(cands):
                return cands[verdict["pick"] - 1], rnd
            continue
        poem = _pick_from(caller, prompts, query, description, cands, item_id, rnd)
        if poem is not None:
            return poem, rnd
        # unparsable final pick: one more round over every poem seen so far, then give up
        poem = _pick_from(caller, prompts, query, description, all_seen, item_id, rnd + 1)
        return poem, rnd + 1
    return None, min(rnd, s.rk_limit)


def refine(caller, prompts, query: str, item_id: str, s: Settings, tracer) -> dict:
    """Step 7: 5 objectives + 5 requirements; MOE checks count and reasonableness; at most 3 repairs."""
    msgs = _msg(prompts.render("mom_refine", query=query, keys="\n".join(KEYS)))
    default = {"objectives": [f"{k}：满足用户在该方面的需求" for k in KEYS],
               "requirements": [f"{k}：说明名字如何满足该方面的需求" for k in KEYS]}
    result, repairs = None, 0
    for attempt in range(s.refine_repairs + 1):
        raw: list = []
        try:
            result = caller.ask_json("MOM.refine", msgs, _refinement, item_id=item_id, round_=attempt, raw=raw)
        except StructuredOutputError:
            result = None
            break
        if len(result["objectives"]) != 5 or len(result["requirements"]) != 5:
            feedback = (f"任务目标有 {len(result['objectives'])} 条、任务要求有 {len(result['requirements'])} 条，"
                        "都必须正好 5 条")
        else:
            try:
                check = caller.ask_json("MOE.refine_check", _msg(prompts.render(
                    "moe_refine_check", query=query, objectives="\n".join(result["objectives"]),
                    requirements="\n".join(result["requirements"]))), _flag01("合理性"), item_id=item_id,
                    round_=attempt)
            except StructuredOutputError:
                check = {"value": 1, "advice": ""}  # an unusable check does not block the pipeline
            if check["value"] == 1:
                break
            feedback = check["advice"] or "不够合理"
        if attempt == s.refine_repairs:
            break
        repairs += 1
        msgs = msgs + [{"role": "assistant", "content": raw[-1]},
                       {"role": "user", "content": prompts.render("mom_refine_repair", feedback=feedback)}]
    ok = result is not None and len(result["objectives"]) == 5 and len(result["requirements"]) == 5
    tracer.event("refine", {"repairs": repairs, "fallback": not ok}, item_id=item_id)
    return {**(result if ok else default), "repairs": repairs, "fallback": not ok}


# ---------------------------------------------------------------------------------------------------
# Stage 2: MOG <-> MOE


def _rule_check(caller, prompts, gen: dict, surname: str, hanzi: dict, item_id: str, rnd: int) -> str | None:
    """Given name longer than 2 characters, or an element claim contradicting the Hanzi table -> correction."""
    given = gen["name"][len(surname):] if surname and gen["name"].startswith(surname) else gen["name"]
    if not given:
        return "结果中只有姓氏，没有名字，请取 1-2 个字的名字。"
    if len(given) > 2:
        return f"名字（不含姓氏）“{given}”超过 2 个字，请取 1-2 个字的名字。"
    text3 = next((v for k, v in gen["explanation"].items() if k.startswith("3")), "")
    if not text3:
        return None
    try:
        claims = caller.ask_json("MOE.elements", _msg(prompts.render("moe_elements", text=text3)), _element_claims,
                                 item_id=item_id, round_=rnd)
    except StructuredOutputError:
        return None
    wrong = []
    for char, claimed in claims.items():
        claimed_el = next((c for c in claimed if c in ELEMENTS), None)
        for ch in keep_chinese(char):
            if ch in hanzi and hanzi[ch] != claimed_el:
                wrong.append(f"“{ch}”的五行是{hanzi[ch]}，不是{claimed}")
    return ("五行说明有误：" + "；".join(wrong) + "。请改正。") if wrong else None


def _result_text(gen: dict) -> str:
    return f"{gen['name']}。解释：" + "；".join(f"{k}：{v}" for k, v in gen["explanation"].items())


def _implicit(caller, prompts, query, gen, requirements, item_id, rnd) -> tuple[float, list[str], list]:
    c, r, report, raw = [], [], [], []
    for req in requirements:
        try:
            v = caller.ask_json("MOE.implicit", _msg(prompts.render("moe_implicit", query=query,
                                                                     result=_result_text(gen), requirement=req)),
                                _score012("完成度", "清晰度"), item_id=item_id, round_=rnd)
        except StructuredOutputError:
            v = {"完成度": 0, "清晰度": 0, "advice": "（评审结果无法解析）"}
        c.append(v["完成度"])
        r.append(v["清晰度"])
        raw.append([v["完成度"], v["清晰度"]])
        if v["完成度"] < 2 or v["清晰度"] < 2:
            report.append(f"{req}：{v['advice']}")
    n = len(requirements)
    imp = 0.5 * sum(c) / (2 * n) + 0.5 * sum(r) / (2 * n)
    return imp, report, raw


def _explicit(caller, prompts, query, gen, objectives, weights, item_id, rnd) -> tuple[float, list[str], list]:
    total, report, rels = 0.0, [], []
    for obj, w in zip(objectives, weights):
        if w <= 0:
            rels.append(0)
            continue
        try:
            v = caller.ask_json("MOE.explicit", _msg(prompts.render("moe_explicit", query=query,
                                                                     result=_result_text(gen), objective=obj)),
                                _score012("相关性"), item_id=item_id, round_=rnd)
        except StructuredOutputError:
            v = {"相关性": 0, "advice": "（评审结果无法解析）"}
        rels.append(v["相关性"])
        total += w * v["相关性"] / 2
        if v["相关性"] < 2:
            report.append(f"{obj}：{v['advice']}")
    return total, report, rels


def _generate_prompt(prompts, query, surname, poem, facts, refined, weights_scores, s: Settings) -> str:
    weights = ""
    if s.show_weights:
        labels = "\n".join(f"{k}：{_WEIGHT_LABELS[v]}" for k, v in weights_scores.items())
        weights = prompts.render("mog_weights", labels=labels)
    facts_text = "；".join(f"{k}：{'、'.join(v) if isinstance(v, list) else v}" for k, v in facts.items()
                          if k in ("生肖", "季节", "节日", "节气", "八字和五行", "五行缺失"))
    return prompts.render(
        "mog_generate", query=query, surname=surname or "无", poem=format_poem(poem) if poem else "无",
        facts=facts_text, objectives="\n".join(refined["objectives"]) if s.explicit else "无",
        requirements="\n".join(refined["requirements"]) if s.implicit else "无", weights=weights)


def run_query(caller, prompts, query: str, item_id: str, store, hanzi: dict, s: Settings, tracer) -> dict:
    """The full NAMeGEn pipeline (or an ablation) on one query; see the module docstring."""
    info = prepare(caller, prompts, query, item_id, s, tracer)
    rec = {"item_id": item_id, "query": query, "weights": info["weights"], "weight_scores": info["weight_scores"],
           "facts": info["facts"], "birth": info["birth"], "surname": info["surname"], "poem": None,
           "f_rk_rounds": 0, "rounds": [], "failed": None, "name": None, "explanation": None}
    if s.retrieval:
        poem, rk_rounds = retrieve_poem(caller, prompts, query, item_id, info, store, hanzi, s, tracer)
        rec["poem"], rec["f_rk_rounds"] = poem, rk_rounds
        if poem is None:
            rec.update(failed="retrieval_gave_up", f_gen_rounds=0, f_regen_flag=None, h_imp_ss=[], h_exp_ss=[],
                       fallbacks=info["fallbacks"])
            tracer.event("failed", {"reason": "retrieval_gave_up"}, item_id=item_id)
            return rec
    refined = refine(caller, prompts, query, item_id, s, tracer) if (s.implicit or s.explicit) else \
        {"objectives": [], "requirements": [], "repairs": 0, "fallback": False}
    rec.update(objectives=refined["objectives"] if s.explicit else [],
               requirements=refined["requirements"] if s.implicit else [], refine_repairs=refined["repairs"])
    first = _msg(_generate_prompt(prompts, query, info["surname"], rec["poem"], info["facts"], refined,
                                  info["weight_scores"], s))
    msgs, n_imp, n_exp, best, flag = first, 0, 0, None, None
    h_imp, h_exp = [], []
    final = None
    for rnd in range(1, s.max_round + 1):
        raw: list = []
        row: dict = {"round": rnd}
        try:
            gen = caller.ask("MOG.generate", msgs, parse_generation, item_id=item_id, round_=rnd, raw=raw)
        except StructuredOutputError:
            gen = None
        if gen is None:
            flag, report = FLAG_REGENERATE, "上一次的输出无法解析，请严格按照 JSON 格式输出。"
            row.update(flag=flag, error="generation_unparsable")
        else:
            if info["surname"] and not gen["name"].startswith(info["surname"]):
                gen["name"] = info["surname"] + gen["name"]
            row.update(name=gen["name"])
            final = gen
            flag, report = _evaluate(caller, prompts, query, gen, rec, info, hanzi, s, item_id, rnd, row,
                                     n_imp, n_exp, best)
            n_imp += "imp" in row
            n_exp += "exp" in row
            if "imp" in row:
                h_imp.append(row["imp"])
            if "exp" in row:
                h_exp.append(row["exp"])
                if best is None or row["exp"] > best["exp"]:
                    best = {"exp": row["exp"], "gen": gen}
        rec["rounds"].append(row)
        tracer.event("flag", row, item_id=item_id)
        if flag == FLAG_HISTORY_BEST:
            final = row.pop("best_gen")
        if flag in (FLAG_ACCEPT, FLAG_HISTORY_BEST):
            break
        prefix = "mog_feedback_rewrite" if flag == FLAG_REWRITE_EXPLANATION else "mog_feedback_regen"
        msgs = first + [{"role": "assistant", "content": raw[-1] if raw else ""},
                        {"role": "user", "content": prompts.render(prefix, report=report)}]
    else:  # round cap
        if best is not None:
            flag, final = FLAG_HISTORY_BEST, best["gen"]
        else:
            flag = FLAG_FAIL
            rec["failed"] = "round_cap_without_explicit_score" if s.explicit else "round_cap"
        tracer.event("round_cap", {"flag": flag}, item_id=item_id)
    rec.update(name=final["name"] if final else None, explanation=final["explanation"] if final else None,
               f_gen_rounds=len(rec["rounds"]), f_regen_flag=flag, h_imp_ss=h_imp, h_exp_ss=h_exp,
               fallbacks=info["fallbacks"])
    if final is None and rec["failed"] is None:
        rec["failed"] = "no_parsable_generation"
    return rec


def _evaluate(caller, prompts, query, gen, rec, info, hanzi, s: Settings, item_id, rnd, row, n_imp, n_exp,
              best) -> tuple[int, str]:
    """MOE on one generation: rule checks, implicit, explicit, summarise -> (flag, report). Fills `row`."""
    if not s.loop:
        row["flag"] = FLAG_ACCEPT
        return FLAG_ACCEPT, ""
    correction = _rule_check(caller, prompts, gen, info["surname"], hanzi, item_id, rnd)
    if correction:
        row.update(flag=FLAG_REGENERATE, rule=correction)
        return FLAG_REGENERATE, correction
    imp_report: list[str] = []
    if s.implicit:
        imp, imp_report, raw = _implicit(caller, prompts, query, gen, rec["requirements"], item_id, rnd)
        row.update(imp=imp, tau_imp=s.tau(n_imp), imp_scores=raw)
        if imp < row["tau_imp"]:
            row["flag"] = FLAG_REGENERATE
            return FLAG_REGENERATE, "\n".join(imp_report) or "解释不够完整清晰。"
    if not s.explicit:
        row["flag"] = FLAG_ACCEPT
        return FLAG_ACCEPT, ""
    exp, exp_report, rels = _explicit(caller, prompts, query, gen, rec["objectives"], rec["weights"], item_id, rnd)
    thr = s.tau(n_exp)
    row.update(exp=exp, tau_exp=thr, rel_scores=rels)
    if exp >= thr:
        row["flag"] = FLAG_ACCEPT
        return FLAG_ACCEPT, ""
    if best is not None and best["exp"] > thr:
        row.update(flag=FLAG_HISTORY_BEST, best_gen=best["gen"])
        return FLAG_HISTORY_BEST, ""
    report = "\n".join(imp_report + exp_report) or "名字与需求的相关性不足。"
    try:
        verdict = caller.ask_json("MOE.summarise", _msg(prompts.render("moe_summarise", query=query,
                                                                        result=_result_text(gen), report=report)),
                                  _flag01("重写结果"), item_id=item_id, round_=rnd)
    except StructuredOutputError:
        verdict = {"value": 1, "advice": ""}  # no usable verdict: regenerate
    flag = FLAG_REGENERATE if verdict["value"] == 1 else FLAG_REWRITE_EXPLANATION
    row["flag"] = flag
    if flag == FLAG_REWRITE_EXPLANATION:
        # the reference passes only the implicit critique here (looks like a bug); compat restores it
        parts = imp_report if s.compat else imp_report + exp_report
        report = "\n".join(parts + ([verdict["advice"]] if verdict["advice"] else [])) or "请改进解释。"
    else:
        report = "\n".join([report] + ([verdict["advice"]] if verdict["advice"] else []))
    return flag, report
