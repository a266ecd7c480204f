"""The six baselines named in the reference code (`base`, `fewshot`, `CoT`, `TDB`, `llm_discussion`,
`query2keyword`/RAG). Their prompts are not released: the Chinese prompts in `prompts/zh/baseline_*.txt` are
ours. Each returns the same record shape as `pipeline.run_query` (name, explanation, failed, ...).

  base            zero-shot request for a name + 5-part explanation (JSON)
  fewshot         the same with two worked examples
  cot             "think step by step", JSON on the last line
  tdb             "take a deep breath and work step by step" prefix
  llm_discussion  three experts (literature, BaZi, parents' view) each propose in turn, then a synthesis call
  rag             query -> keywords (LLM) -> BM25 over the poem store (top 3) -> generation with the poems
"""

from __future__ import annotations

from humanai_jax.agents import StructuredOutputError
from humanai_jax.methods.namegen.pipeline import parse_generation
from humanai_jax.methods.namegen.poems import format_poem

__all__ = ["BASELINES", "run_baseline"]

BASELINES = ("base", "fewshot", "cot", "tdb", "llm_discussion", "rag")
_ROLES = ("精通古诗词的文学家", "熟悉五行八字的命理师", "代表父母期待的家庭顾问")


def _msg(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _keywords(obj):
    kws = obj.get("关键词") if isinstance(obj, dict) else None
    if not isinstance(kws, list) or not kws:
        raise ValueError("需要非空列表 '关键词'")
    return [str(k) for k in kws]


def run_baseline(method: str, caller, prompts, query: str, item_id: str, store) -> dict:
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; valid: {BASELINES}")
    rec: dict = {"item_id": item_id, "query": query, "method": method, "failed": None, "name": None,
                 "explanation": None, "poem": None}
    try:
        if method in ("base", "fewshot", "cot", "tdb"):
            msgs = _msg(prompts.render(f"baseline_{method}", query=query))
        elif method == "llm_discussion":
            discussion: list[str] = []
            for role in _ROLES:
                text = caller.ask_text("baseline.discussion", _msg(prompts.render(
                    "baseline_discussion_member", role=role, query=query,
                    discussion="\n".join(discussion) or "（暂无）")), item_id=item_id)
                discussion.append(f"{role}：{text.strip()}")
            msgs = _msg(prompts.render("baseline_discussion_final", query=query, discussion="\n".join(discussion)))
        else:  # rag
            kws = caller.ask_json("baseline.keywords", _msg(prompts.render("baseline_q2k", query=query)), _keywords,
                                  item_id=item_id)
            poems = store.search("|".join(kws), "|".join(kws), 3)
            rec["poem"] = poems[0] if poems else None
            msgs = _msg(prompts.render("baseline_rag", query=query,
                                       poems="\n".join(format_poem(p) for p in poems) or "无"))
        gen = caller.ask(f"baseline.{method}", msgs, parse_generation, item_id=item_id)
    except StructuredOutputError as err:
        rec["failed"] = f"unparsable:{err.tag}"
        return rec
    rec.update(name=gen["name"], explanation=gen["explanation"])
    return rec
