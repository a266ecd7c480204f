"""Tailored content for one session (docs/genmentor.md §2.7) and the content baselines.

  genmentor       explore knowledge points -> draft each (in parallel through `chat_batch`, BM25 context for
                  the query "{session title} {point name}") -> integrate {title, overview, summary} -> markdown
                  -> quiz (default 3 single-choice)
  wo_refinement   the same without the integrator (drafts rendered under the session title; overview and
                  summary empty) - our reading of the README's "w/o Refinement"
  dirgen          one prompt -> {title, content}
  rag             dirgen with the BM25 context of the session title
  outline_rag     outline {title, sections} -> section drafts -> {title, overview, content, summary, quizzes}
"""

from __future__ import annotations

import dataclasses

from humanai_jax.methods.genmentor import constraints as K, schemas as S
from humanai_jax.methods.genmentor.agents import Agents, _msgs, check_quiz_counts, to_json
from humanai_jax.methods.genmentor.retrieval import BM25Index

__all__ = ["Retrieved", "render_markdown", "genmentor_content", "baseline_content", "CONTENT_METHODS", "quiz"]

CONTENT_METHODS = ("genmentor", "wo_refinement", "dirgen", "rag", "outline_rag")
SECTIONS = (("foundational", "Foundational Concepts"), ("practical", "Practical Applications"),
            ("strategic", "Strategic Insights"))


@dataclasses.dataclass
class Retrieved:
    """BM25 over local document chunks; `context(query)` is the top-k chunk texts joined (or "(none)")."""

    docs: list[dict]
    k: int = 5

    def __post_init__(self):
        self.index = BM25Index([d["text"] for d in self.docs]) if self.docs else None

    def context(self, query: str) -> str:
        if self.index is None:
            return "(none)"
        hits = [(i, s) for i, s in self.index.search(query, self.k) if s > 0]
        return "\n\n".join(f"[{self.docs[i]['id']}] {self.docs[i]['text']}" for i, _ in hits) or "(none)"


def render_markdown(structure: S.DocumentStructure | None, points: list[S.KnowledgePoint],
                    drafts: list[S.KnowledgeDraft], *, title: str = "") -> str:
    """`# title`, overview, `## Foundational Concepts` / `## Practical Applications` / `## Strategic Insights`
    (drafts of that type as `### draft title` + content, in point order; empty sections omitted),
    `## Summary`. Without a structure (w/o refinement): the title line and the sections only."""
    if len(points) != len(drafts):
        raise ValueError(f"{len(points)} knowledge points but {len(drafts)} drafts")
    lines = [f"# {structure.title if structure else title}", ""]
    if structure and structure.overview:
        lines += [structure.overview, ""]
    for kind, heading in SECTIONS:
        members = [d for p, d in zip(points, drafts) if p.type == kind]
        if not members:
            continue
        lines += [f"## {heading}", ""]
        for d in members:
            lines += [f"### {d.title}", "", d.content.strip(), ""]
    if structure:
        lines += ["## Summary", "", structure.summary, ""]
    return "\n".join(lines).rstrip() + "\n"


def quiz(agents: Agents, profile: S.LearnerProfile, document_md: str, counts: dict[str, int]) -> S.DocumentQuiz:
    msgs = _msgs("quiz", system_fields={"n_single": counts["single_choice"], "n_multiple": counts["multiple_choice"],
                                        "n_true_false": counts["true_false"], "n_short": counts["short_answer"]},
                 learner_profile=to_json(profile), document=document_md)
    return agents.caller.ask("content.quiz", msgs, S.DocumentQuiz, check_quiz_counts(counts),
                             constraint=K.quiz_with_counts(counts))


def genmentor_content(agents: Agents, profile: S.LearnerProfile, path: S.LearningPath, session: S.SessionItem,
                      retriever: Retrieved, *, integrate: bool = True) -> dict:
    """Explore -> draft (one `chat_batch` round per repair attempt) -> integrate -> markdown. Returns
    {markdown, knowledge_points, drafts, structure}."""
    ctx = dict(learner_profile=to_json(profile), learning_path=to_json(path), session=to_json(session))
    points = agents.caller.ask("content.explore", _msgs("explore", **ctx), S.KnowledgePoints).knowledge_points
    prompts = [_msgs("draft", **ctx, knowledge_points=to_json(points), knowledge_point=to_json(p),
                     external_resources=retriever.context(f"{session.title} {p.name}")) for p in points]
    drafts = agents.caller.ask_batch("content.draft", prompts, S.KnowledgeDraft)
    structure = None
    if integrate:
        structure = agents.caller.ask("content.integrate", _msgs(
            "integrate", **ctx, knowledge_points=to_json(points), drafts=to_json(drafts)), S.DocumentStructure)
    md = render_markdown(structure, points, drafts, title=session.title)
    return {"markdown": md, "knowledge_points": [p.model_dump() for p in points],
            "drafts": [d.model_dump() for d in drafts], "structure": structure.model_dump() if structure else None}


def baseline_content(agents: Agents, method: str, profile: S.LearnerProfile, session: S.SessionItem,
                     retriever: Retrieved) -> dict:
    """DirGen, RAG or OutlineRAG for one session: {markdown, ...}."""
    prof, sess = to_json(profile), to_json(session)
    if method in ("dirgen", "rag"):
        resources = retriever.context(session.title) if method == "rag" else "(none)"
        rule = "Use the external resources where relevant." if method == "rag" else ""
        doc = agents.caller.ask(f"baseline.{method}", _msgs("dirgen", system_fields={"resource_rule": rule},
                                                             learner_profile=prof, session=sess,
                                                             external_resources=resources), S.Document)
        return {"markdown": f"# {doc.title}\n\n{doc.content.strip()}\n"}
    if method != "outline_rag":
        raise ValueError(f"unknown content baseline {method!r}; valid: dirgen, rag, outline_rag")
    resources = retriever.context(session.title)
    outline = agents.caller.ask("baseline.outline", _msgs("outline", learner_profile=prof, session=sess,
                                                          external_resources=resources), S.Outline)
    prompts = [_msgs("outline_section", learner_profile=prof, outline=to_json(outline), section=to_json(sec),
                     external_resources=retriever.context(f"{session.title} {sec.title}")) for sec in outline.sections]
    drafts = agents.caller.ask_batch("baseline.outline_section", prompts, S.KnowledgeDraft)
    doc = agents.caller.ask("baseline.outline_document", _msgs("outline_document", outline=to_json(outline),
                                                               drafts=to_json(drafts)), S.OutlineDocument)
    md = f"# {doc.title}\n\n{doc.overview}\n\n{doc.content.strip()}\n\n## Summary\n\n{doc.summary}\n"
    return {"markdown": md, "outline": outline.model_dump(), "quizzes": [q.model_dump() for q in doc.quizzes]}
