"""ChatBackends for NAMeGEn runs, from a config block: the core factory's kinds (`humanai_jax.agents.factory`:
project run, HF dir, OpenAI-compatible endpoint, replay; `record`) plus

  kind = "mock"    a deterministic rule-based plumbing model (a `ScriptedBackend` answering every agent tag
                   with well-formed JSON derived from the prompt): exercises the whole pipeline offline.
                   Its numbers mean nothing; results carry `plumbing: true`.
"""

from __future__ import annotations

import json
import re

from humanai_jax.agents import ScriptedBackend
from humanai_jax.agents.factory import PLAIN_CHAT_TEMPLATE, build_backend as build_core_backend

__all__ = ["build_backend", "mock_backend", "mock_rules", "PLAIN_CHAT_TEMPLATE"]



def _user(messages) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def _first_user(messages) -> str:
    return next((m["content"] for m in messages if m["role"] == "user"), "")


def _field(text: str, label: str) -> str:
    m = re.search(re.escape(label) + r"[：:]\s*(.*)", text)
    return m.group(1).strip() if m else ""


def _mock_name(messages) -> str:
    from humanai_jax.methods.namegen.constants import numbered_keys

    prompt = _first_user(messages)
    surname = _field(prompt, "姓氏").rstrip("）)") or ""
    if surname == "无":
        surname = ""
    lines = re.findall(r"诗句[：:]([^\n]*)", prompt.split("现在请完成以下任务")[-1])
    chars = re.sub(r"[^\u4e00-\u9fa5]", "", lines[0]) if lines else ""
    given = (chars[1:3] if len(chars) >= 3 else "安宁")
    name = surname + given
    exp = {k: f"{given}：与{k.split('.', 1)[1]}相符。" for k in numbered_keys()}
    return json.dumps({"结果": name, "解释": exp}, ensure_ascii=False)


def _mock_weights(messages) -> str:
    from humanai_jax.methods.namegen.constants import KEYS

    q = _field(_user(messages), "用户需求")
    rules = [("诗", 3), ("希望", 3), ("五行", 3), ("出生", 2), ("字", 1)]
    return json.dumps({k: (v if w in q else 1) for k, (w, v) in zip(KEYS, rules)}, ensure_ascii=False)


def _mock_extract(messages) -> str:
    from humanai_jax.methods.namegen.calendar import parse_birth_time

    q = _field(_user(messages), "用户需求")
    m = re.search(r"姓([\u4e00-\u9fa5]{1,2}?)(?:[，,。的姓]|$)", q) or re.search(r"([\u4e00-\u9fa5]{1,2})姓", q)
    gender = "女" if "女" in q else ("男" if "男" in q else "未知")
    birth = parse_birth_time(q)
    return json.dumps({"姓氏": m.group(1) if m else "无", "性别": gender, "出生时间": birth.text,
                       "出生季节": birth.season or "无", "寓意": "希望|美好", "其他信息": "无"}, ensure_ascii=False)


def _mock_refine(messages) -> str:
    from humanai_jax.methods.namegen.constants import KEYS

    return json.dumps({"任务目标": [f"{k}：名字符合该方面的需求" for k in KEYS],
                       "任务要求": [f"{k}：解释说明该方面" for k in KEYS]}, ensure_ascii=False)


def mock_rules() -> list:
    """The plumbing model's rules `(tag regex, None, reply)`; tests put their own rules in front."""
    claims = {"古诗信息": [], "字和五行": [], "出生信息": dict.fromkeys(["八字", "五行缺失", "生肖", "季节", "节气", "节日"],
                                                                  "无")}
    name_tags = r".*(MOG\.generate|baseline\.(base|fewshot|cot|tdb|llm_discussion|rag))"
    rules = [
        (r".*MOM\.weights", None, _mock_weights),
        (r".*MOM\.extract", None, _mock_extract),
        (r".*MOM\.retrieval_desc", None, lambda m: json.dumps(
            {"古诗类型": "无", "古诗信息": [], "检索描述": "该诗描绘了美好与希望"}, ensure_ascii=False)),
        (r".*MOE\.retrieval_judge", None, '{"是否重新检索": 0, "检索描述": "", "最相关的知识": "#1"}'),
        (r".*MOE\.retrieval_pick", None, '{"最相关的知识": "#1"}'),
        (r".*MOM\.refine", None, _mock_refine),
        (r".*MOE\.refine_check", None, '{"合理性": 1, "修改建议": ""}'),
        (name_tags, None, _mock_name),
        (r".*MOE\.elements", None, "{}"),
        (r".*MOE\.implicit", None, '{"完成度": 2, "清晰度": 2, "结论与建议": "好"}'),
        (r".*MOE\.explicit", None, '{"相关性": 2, "结论与建议": "好"}'),
        (r".*MOE\.summarise", None, '{"重写结果": 0, "结论与建议": ""}'),
        (r".*baseline\.discussion", None, "候选：安宁"),
        (r".*baseline\.keywords", None, '{"关键词": ["希望", "美好"]}'),
        (r".*judge\.(emoc|crc|lr)", None, '{"评估分数": [2, 2, 2, 2, 3]}'),
        (r".*judge\.acc_extract", None, json.dumps(claims, ensure_ascii=False)),
    ]
    return rules


def mock_backend() -> ScriptedBackend:
    """The plumbing model: every agent tag answered with valid JSON (accept on the first evaluation)."""
    backend = ScriptedBackend(mock_rules())
    backend.name = "mock(plumbing)"
    return backend


def build_backend(block, *, seed: int = 0):
    """A ChatBackend from a config block: `mock` (the plumbing model) or any kind of the core factory."""
    return build_core_backend(block, seed=seed, custom={"mock": lambda b, s: mock_backend()})
