"""Spec §10 metrics, computed from a run's `traces.jsonl` events only (so every number is recomputable).

Single run (`summarize`): mean emotion E(t) / social confidence S(t) of normal users (latest state at each
hour boundary; everyone starts at 0.5) and final; exposure (attacker share of the comments shown on each
normal user's Main view; final attacker share and mean rank in the hot list); engagement; moderation
precision / recall / F1 / false-positive rate with "attacker-authored" as positive (over moderated comments);
action distribution per state and invalid-decision rate; arrival histogram of the sampled x vs the density.
Against a clean run with the same seed (`compare`): dE = E_attack - E_clean (population means) and paired
over the normal users present in both runs (same user-file row), same for S, per hour and final; and the
paired dE by persona interest (keyword classifier: societal vs entertainment).
Undefined ratios (0 / 0) are None, never a silent 0.
"""

from __future__ import annotations

import collections
import json

import numpy as np

from humanai_jax.data.jsonl import iter_jsonl
from humanai_jax.methods.trendsim import timing

HOUR = 3600


def read_events(path: str) -> list[dict]:
    """The event records of a trace file, in order (llm_call records skipped); a bad line is named by file:line."""
    return [rec for _, rec in iter_jsonl(path, error=ValueError) if rec.get("type") == "event"]


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _by_name(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["name"] == name]


def run_info(events: list[dict]) -> dict:
    starts = _by_name(events, "run_start")
    if not starts:
        raise ValueError("trace has no run_start event")
    return starts[0]["data"]


def normal_agents(events: list[dict]) -> dict[int, dict]:
    return {a["aid"]: a for a in run_info(events)["agents"] if a["type"] == "normal"}


def state_series(events: list[dict]) -> dict[int, list[tuple[int, float, float]]]:
    """Per normal aid: [(time, emotion, confidence)] starting with (0, 0.5, 0.5), in time order (stable)."""
    normals = normal_agents(events)
    series = {aid: [(0, 0.5, 0.5)] for aid in normals}
    for e in _by_name(events, "state"):
        aid = e["data"]["aid"]
        if aid in series:
            series[aid].append((e["time"], e["data"]["after"]["emotion"], e["data"]["after"]["confidence"]))
    for s in series.values():
        s.sort(key=lambda r: r[0])
    return series


def values_at(series: dict, t: float) -> dict[int, tuple[float, float]]:
    """Each user's latest (emotion, confidence) with time <= t."""
    out = {}
    for aid, s in series.items():
        last = s[0]
        for rec in s:
            if rec[0] <= t:
                last = rec
        out[aid] = (last[1], last[2])
    return out


def curves(events: list[dict], window_s: int) -> dict:
    """E(t), S(t) at every hour boundary 0..window (means over normal users) and the final values."""
    series = state_series(events)
    hours = list(range(0, window_s // HOUR + 1))
    E, S = [], []
    for h in hours:
        vals = values_at(series, h * HOUR)
        E.append(float(np.mean([v[0] for v in vals.values()])))
        S.append(float(np.mean([v[1] for v in vals.values()])))
    final = values_at(series, float("inf"))
    return {"hours": hours, "E": E, "S": S, "E_final": float(np.mean([v[0] for v in final.values()])),
            "S_final": float(np.mean([v[1] for v in final.values()]))}


def exposure(events: list[dict]) -> dict:
    """Attacker share of the comments on normal users' Main views (any page they open; mostly page 0), the
    dose `attacker_comments_read_per_user` (attacker comments on those views / normal users: unlike a share it
    keeps growing once a page is full of attackers, if users read more pages or bigger ones), and the attacker
    share of the final hot list and of its first page (`page_size` of the run's config)."""
    shares, any_att, n_views, n_read = [], 0, 0, 0
    for e in _by_name(events, "main_view"):
        if e["data"]["type"] != "normal":
            continue
        n_views += 1
        types = e["data"]["types"]
        att = sum(t != "normal" for t in types)
        any_att += att > 0
        n_read += att
        if types:
            shares.append(att / len(types))
    out = {"main_views": n_views, "first_page_attacker_share": float(np.mean(shares)) if shares else None,
           "views_with_attacker_comment": _ratio(any_att, n_views),
           "attacker_comments_read_per_user": _ratio(n_read, len(normal_agents(events)))}
    final = _by_name(events, "final")
    if final:
        media = final[-1]["data"]["final_social_media"]
        types = {c["cid"]: c["author_type"] for c in media["comments"]}
        hot = [types[c] for c in media["hot"]]
        page = hot[:int(run_info(events)["config"].get("page_size", 4))]
        att_pos = [i for i, t in enumerate(hot) if t != "normal"]
        out.update(final_hot_attacker_share=_ratio(len(att_pos), len(hot)),
                   final_first_page_attacker_share=_ratio(sum(t != "normal" for t in page), len(page)),
                   final_mean_rank_attacker=float(np.mean(att_pos)) if att_pos else None,
                   final_mean_rank_normal=float(np.mean([i for i, t in enumerate(hot) if t == "normal"]))
                   if any(t == "normal" for t in hot) else None)
    return out


def engagement(events: list[dict]) -> dict:
    final = _by_name(events, "final")
    if not final:
        raise ValueError("trace has no final event (the run did not finish)")
    m = final[-1]["data"]["final_social_media"]
    comments = m["comments"]
    return {"views": m["view_num"], "likes": m["like_num"], "reposts": m["repost_num"],
            "comments": len(comments), "comments_published": len(m["hot"]), "comments_hidden": len(m["detect_list"]),
            "comments_by_attackers": sum(c["author_type"] != "normal" for c in comments),
            "replies": sum(len(c["replies"]) for c in comments), "comment_likes": sum(c["likes"] for c in comments)}


def moderation(events: list[dict]) -> dict:
    """Confusion counts over moderated comments (positive = attacker-authored, flagged = hidden)."""
    tp = fp = fn = tn = 0
    unmoderated_attacker = 0
    for e in _by_name(events, "comment"):
        d = e["data"]
        attacker = d["author_type"] != "normal"
        if not d["moderated"]:
            unmoderated_attacker += attacker
            continue
        if d["hidden"]:
            tp, fp = tp + attacker, fp + (not attacker)
        else:
            fn, tn = fn + attacker, tn + (not attacker)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = (2 * precision * recall / (precision + recall)) if precision and recall else (
        0.0 if precision is not None and recall is not None else None)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall, "f1": f1,
            "fpr": _ratio(fp, fp + tn), "unmoderated_attacker_comments": unmoderated_attacker}


def decisions(events: list[dict]) -> dict:
    """Action counts per page state, invalid-decision rate and the other parse-failure rates."""
    per_state: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    bad = total = 0
    for e in _by_name(events, "decision"):
        d = e["data"]
        per_state[d["state"]][d["action"]] += 1
        total += 1
        bad += d["status"] != "ok"
    pct = [s for e in _by_name(events, "state") for s in e["data"]["parse"].values()]
    opens = [e["data"]["status"] for e in _by_name(events, "open_comment")]
    mods = [e["data"]["moderation_status"] for e in _by_name(events, "comment") if e["data"]["moderated"]]
    return {"actions": {k: dict(v) for k, v in per_state.items()}, "decisions": total,
            "invalid_decision_rate": _ratio(bad, total),
            "percent_parse_failure_rate": _ratio(sum(s != "ok" for s in pct), len(pct)),
            "open_index_failure_rate": _ratio(sum(s != "ok" for s in opens), len(opens)),
            "moderation_parse_failure_rate": _ratio(sum(s != "ok" for s in mods), len(mods))}


def arrivals(events: list[dict], window_s: int, n_bins: int = 10) -> dict:
    """Histogram of the sampled x (normal users) vs the density's expected share per bin (averaged over the
    A of each draw), their total-variation distance, and the visits started per hour."""
    draws = [(e["data"]["x"], e["data"]["A"]) for e in _by_name(events, "schedule") if "x" in e["data"]]
    edges = np.linspace(0.0, timing.X_MAX, n_bins + 1)
    out: dict = {"draws": len(draws), "bin_edges": edges.tolist()}
    if draws:
        xs = np.array([d[0] for d in draws])
        counts, _ = np.histogram(xs, bins=edges)
        expected = np.mean([np.diff(timing.exact_cdf(edges, a)) for _, a in draws], axis=0)
        observed = counts / len(xs)
        out.update(observed=observed.tolist(), expected=expected.tolist(),
                   tv_distance=float(0.5 * np.abs(observed - expected).sum()))
    starts = [e["time"] for e in _by_name(events, "visit_start") if e["data"]["type"] == "normal"]
    out["visits_per_hour"] = np.bincount(np.array(starts, dtype=int) // HOUR,
                                         minlength=window_s // HOUR + 1).tolist() if starts else []
    return out


def classify_interest(persona: str, keywords: dict[str, list[str]]) -> str:
    """"societal" | "entertainment" | "both" | "other" by keyword hits in the persona."""
    hits = {k: any(w.lower() in persona.lower() for w in words) for k, words in keywords.items()}
    if hits.get("societal") and hits.get("entertainment"):
        return "both"
    return "societal" if hits.get("societal") else ("entertainment" if hits.get("entertainment") else "other")


def summarize(events: list[dict]) -> dict:
    window = run_info(events)["config"]["window_s"]
    c = curves(events, window)
    return {"E_final": c["E_final"], "S_final": c["S_final"], "curves": c, "exposure": exposure(events),
            "engagement": engagement(events), "moderation": moderation(events), "decisions": decisions(events),
            "arrivals": arrivals(events, window)}


def compare(attack: list[dict], clean: list[dict], interest_keywords: dict[str, list[str]] | None = None) -> dict:
    """Attack run vs the clean run with the same seed: dE, dS (population means and paired by user row),
    per hour, and the paired dE by persona interest."""
    window = run_info(attack)["config"]["window_s"]
    ca, cc = curves(attack, window), curves(clean, window)
    fa, fc = values_at(state_series(attack), float("inf")), values_at(state_series(clean), float("inf"))
    row_a = {a["row"]: aid for aid, a in normal_agents(attack).items()}
    row_c = {a["row"]: aid for aid, a in normal_agents(clean).items()}
    shared = sorted(set(row_a) & set(row_c))
    dE = [fa[row_a[r]][0] - fc[row_c[r]][0] for r in shared]
    dS = [fa[row_a[r]][1] - fc[row_c[r]][1] for r in shared]
    out = {"dE": ca["E_final"] - cc["E_final"], "dS": ca["S_final"] - cc["S_final"],
           "dE_paired": float(np.mean(dE)) if shared else None, "dS_paired": float(np.mean(dS)) if shared else None,
           "n_paired": len(shared), "dE_t": [a - b for a, b in zip(ca["E"], cc["E"])],
           "dS_t": [a - b for a, b in zip(ca["S"], cc["S"])], "hours": ca["hours"]}
    if interest_keywords:
        personas = {a["row"]: a["persona"] for a in normal_agents(attack).values()}
        groups: dict[str, list[float]] = collections.defaultdict(list)
        for r, d in zip(shared, dE):
            groups[classify_interest(personas[r], interest_keywords)].append(d)
        out["vulnerability"] = {g: {"dE_paired": float(np.mean(v)), "n": len(v)} for g, v in sorted(groups.items())}
    return out


def main(argv: list[str] | None = None) -> dict:
    """Recomputes a run's metrics from its trace alone:

      python -m humanai_jax.methods.trendsim.metrics --trace DIR/traces.jsonl [--clean CLEAN/traces.jsonl]
    """
    import argparse

    from humanai_jax.methods.trendsim.rules import load_rules

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--trace", required=True)
    parser.add_argument("--clean", default="", help="the clean run's trace (same seed) for dE / dS")
    args = parser.parse_args(argv)
    events = read_events(args.trace)
    out = summarize(events)
    out.pop("curves")
    if args.clean:
        out["compare"] = compare(events, read_events(args.clean), load_rules()["interest_keywords"])
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return out


if __name__ == "__main__":
    main()
