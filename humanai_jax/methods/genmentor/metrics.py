"""GenMentor metrics (docs/genmentor.md §5; definitions are ours where the paper is silent).

Skills: `Recall = |matched gold| / |gold|`, `Precision = |matched pred| / |pred|`, F1 their harmonic mean,
after a one-to-one greedy matching by similarity (highest pair first, ties by list order); the `_strict`
variants count a matched pair only when its required level agrees too. Matchers:
`exact` (normalised lowercase names equal), `token_jaccard` (token-set Jaccard >= 0.5), `llm` (a callable
`same(pred, gold) -> bool`, e.g. a judge; pairs it accepts get similarity 1). Level accuracy is over
matched pairs. Path: gap coverage, foundational-to-advanced order, session count. Content: markdown layout.
Profile: per-skill level accuracy and mastered / in-progress F1 against the simulated ground truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from humanai_jax.methods.genmentor import schemas as S

__all__ = ["match_skills", "skill_prf", "mean_prf", "path_metrics", "content_metrics", "profile_metrics",
           "token_jaccard"]


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[^0-9a-z+#]+", S.norm_name(name))) - {""}


def token_jaccard(a: str, b: str) -> float:
    ta, tb = _tokens(a), _tokens(b)
    return len(ta & tb) / len(ta | tb) if ta | tb else 0.0


def match_skills(pred: Sequence[str], gold: Sequence[str], matcher: str = "exact",
                 same: Callable[[str, str], bool] | None = None) -> list[tuple[int, int]]:
    """One-to-one greedy matching: [(pred index, gold index)], highest similarity first."""
    pairs = []
    for i, p in enumerate(pred):
        for j, g in enumerate(gold):
            if matcher == "exact":
                sim = float(S.norm_name(p) == S.norm_name(g))
            elif matcher == "token_jaccard":
                sim = token_jaccard(p, g)
                sim = sim if sim >= 0.5 else 0.0
            elif matcher == "llm":
                if same is None:
                    raise ValueError("matcher 'llm' needs a `same(pred, gold)` callable")
                sim = float(S.norm_name(p) == S.norm_name(g) or same(p, g))
            else:
                raise ValueError(f"unknown matcher {matcher!r}; valid: exact, token_jaccard, llm")
            if sim > 0:
                pairs.append((-sim, i, j))
    pairs.sort()
    used_p, used_g, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            out.append((i, j))
    return out


def skill_prf(pred: Sequence[dict], gold: Sequence[dict], matcher: str = "exact", same=None) -> dict:
    """`pred`/`gold`: [{name, required_level}]. Returns precision, recall, f1, level_accuracy (matched pairs;
    None without a match), n_pred, n_gold, n_matched. Empty pred: precision 0."""
    m = match_skills([p["name"] for p in pred], [g["name"] for g in gold], matcher, same)
    prec = len(m) / len(pred) if pred else 0.0
    rec = len(m) / len(gold) if gold else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    lv = [pred[i].get("required_level") == gold[j].get("required_level") for i, j in m]
    # strict: a match counts only when the required level agrees too
    sp = sum(lv) / len(pred) if pred else 0.0
    sr = sum(lv) / len(gold) if gold else 0.0
    return {"precision": prec, "recall": rec, "f1": f1, "level_accuracy": float(np.mean(lv)) if lv else None,
            "precision_strict": sp, "recall_strict": sr, "f1_strict": 2 * sp * sr / (sp + sr) if sp + sr else 0.0,
            "n_pred": len(pred), "n_gold": len(gold), "n_matched": len(m)}


def mean_prf(rows: Sequence[dict], *, seed: int = 0, n_resamples: int = 2000) -> dict:
    """Macro means over goals of precision / recall / f1 with percentile-bootstrap 95% CIs (eval/stats.py;
    n_resamples=0: no CIs)."""
    from humanai_jax.eval.stats import bootstrap_ci

    out = {"n": len(rows)}
    for key in ("precision", "recall", "f1", "precision_strict", "recall_strict", "f1_strict"):
        vals = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = float(vals.mean()) if len(vals) else None
        out[f"{key}_ci95"] = (list(bootstrap_ci(vals, seed=seed, n_resamples=n_resamples))
                              if len(vals) >= 2 and n_resamples else None)
    lv = [r["level_accuracy"] for r in rows if r.get("level_accuracy") is not None]
    out["level_accuracy"] = float(np.mean(lv)) if lv else None
    return out


def path_metrics(path: S.LearningPath, gap_skills: Sequence[str]) -> dict:
    """gap_coverage: share of gap skills named in some session's associated_skills (token-Jaccard >= 0.5);
    level_monotone: the max outcome level never decreases along the path; n_sessions."""
    associated = [a for s in path.learning_path for a in s.associated_skills]
    covered = [any(S.norm_name(g) == S.norm_name(a) or token_jaccard(g, a) >= 0.5 for a in associated)
               for g in gap_skills]
    levels = [max((S.LEVEL_ORDER[o.level] for o in s.desired_outcome_when_completed), default=0)
              for s in path.learning_path]
    monotone = all(b >= a for a, b in zip(levels, levels[1:]) if a and b)
    return {"gap_coverage": float(np.mean(covered)) if covered else None, "level_monotone": float(monotone),
            "n_sessions": len(path.learning_path)}


def content_metrics(markdown: str, quiz: S.DocumentQuiz | None = None) -> dict:
    """Layout of a GenMentor document: one `# ` title, the three type sections in order (those present),
    a `## Summary`; draft count (`### `), characters; quiz question count."""
    lines = markdown.splitlines()
    h1 = [ln for ln in lines if ln.startswith("# ")]
    h2 = [ln[3:] for ln in lines if ln.startswith("## ")]
    order = ["Foundational Concepts", "Practical Applications", "Strategic Insights", "Summary"]
    present = [h for h in h2 if h in order]
    return {"one_title": float(len(h1) == 1), "sections_in_order": float(present == sorted(present, key=order.index)),
            "has_summary": float("Summary" in h2), "n_subsections": sum(ln.startswith("### ") for ln in lines),
            "chars": len(markdown), "n_quiz": sum(quiz.counts().values()) if quiz else 0}


def _levels(profile: S.LearnerProfile) -> dict[str, tuple[str, str]]:
    """{norm name: (status, current level)}: mastered skills at their proficiency level."""
    cs = profile.cognitive_status
    out = {S.norm_name(s.name): ("mastered", s.proficiency_level) for s in cs.mastered_skills}
    out.update({S.norm_name(s.name): ("in_progress", s.current_proficiency_level) for s in cs.in_progress_skills})
    return out


def profile_metrics(pred: S.LearnerProfile, truth: S.LearnerProfile) -> dict:
    """level_accuracy over the ground truth's skills (a missing skill counts wrong); mastered_f1 and
    in_progress_f1 over skill names (exact normalised match)."""
    p, t = _levels(pred), _levels(truth)
    acc = [p.get(k, (None, None))[1] == lv for k, (_, lv) in t.items()]
    out = {"level_accuracy": float(np.mean(acc)) if acc else None, "n_skills": len(t)}
    for status in ("mastered", "in_progress"):
        ps = {k for k, (s, _) in p.items() if s == status}
        ts = {k for k, (s, _) in t.items() if s == status}
        tp = len(ps & ts)
        prec = tp / len(ps) if ps else float(not ts)
        rec = tp / len(ts) if ts else float(not ps)
        out[f"{status}_f1"] = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return out
