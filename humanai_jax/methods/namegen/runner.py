"""A NAMeGEn run over CBNames queries: methods × seeds × queries, each query generated (NAMeGEn, an ablation
or a baseline) then judged with the CBNames metric suite; resumable.

Workdir:
  outputs.jsonl   one record per finished (method, seed, query): the generation record + judge scores +
                  metrics. A re-run skips every key already there (a killed run resumes without repeating
                  finished queries; a torn last line is cut off and redone).
  traces.jsonl    one line per model call (agent tag, prompt hash, tokens, latency, parsed result) and events
  manifest.json   run id, methods, seeds, data / poem / Hanzi sources with hashes, prompt-file hashes,
                  backends, package versions, resume count
`run_namegen(...)` returns the headline dict for results.json: per method {metric: {mean, std, n}} over the
scored queries (pooled over seeds), per-seed means, failures and round statistics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.resources
import json
import math
import os
from collections.abc import Sequence

import numpy as np

from humanai_jax.agents import GenConfig, PromptLibrary
from humanai_jax.agents.stages import read_done, repair_torn_tail
from humanai_jax.methods.namegen import baselines, metrics, novelty, pipeline
from humanai_jax.methods.namegen.llm import Caller, Tracer

__all__ = ["RunSpec", "run_namegen", "prompt_library", "method_settings", "METHODS", "metrics_from_traces"]

METHODS = tuple(pipeline.ABLATIONS) + tuple(f"baseline_{b}" for b in baselines.BASELINES)


def prompt_library() -> PromptLibrary:
    return PromptLibrary("humanai_jax.methods.namegen", lang="zh")


@dataclasses.dataclass
class RunSpec:
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    settings: pipeline.Settings
    gen: GenConfig
    judge_gen: GenConfig
    max_attempts: int = 3
    judge: bool = True


def method_settings(method: str, base: pipeline.Settings) -> pipeline.Settings:
    if method not in pipeline.ABLATIONS:
        raise ValueError(f"unknown NAMeGEn variant {method!r}; valid: {METHODS}")
    return dataclasses.replace(base, **pipeline.ABLATIONS[method])


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _prompt_hashes() -> dict:
    root = importlib.resources.files("humanai_jax.methods.namegen").joinpath("prompts", "zh")
    return {p.name: _sha(p.read_bytes()) for p in sorted(root.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".txt")}


def _versions() -> dict:
    out = {}
    for pkg in ("cnlunar", "rank-bm25"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _write_manifest(workdir: str, manifest: dict) -> None:
    path = os.path.join(workdir, "manifest.json")
    old = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
    manifest = {**manifest, "resumes": int(old.get("resumes", -1)) + 1}
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _key(method: str, seed: int, item_id: str) -> str:
    return f"{method}|{seed}|{item_id}"


def run_namegen(rows: list[dict], store, hanzi: dict, backend, judge_backend, spec: RunSpec, workdir: str, *,
                manifest_extra: dict | None = None, run_id: str = "namegen", names=None,
                compound_surnames=frozenset()) -> dict:
    """Runs every (method, seed, row) not yet in WORKDIR/outputs.jsonl; returns the results dict. `names`: the
    ChineseNames givenname table (`novelty.load_name_table`); when given, every named output gets Nov."""
    os.makedirs(workdir, exist_ok=True)
    prompts = prompt_library()
    out_path = os.path.join(workdir, "outputs.jsonl")
    repair_torn_tail(out_path)
    done = read_done(out_path, "key")
    _write_manifest(workdir, {
        "run_id": run_id, "methods": list(spec.methods), "seeds": list(spec.seeds), "n_queries": len(rows),
        "item_ids": [r["id"] for r in rows], "settings": dataclasses.asdict(spec.settings),
        "gen": spec.gen.to_dict(), "judge_gen": spec.judge_gen.to_dict(), "prompts": _prompt_hashes(),
        "backend": getattr(backend, "name", ""), "judge_backend": getattr(judge_backend, "name", ""),
        "packages": _versions(), "n_poems": len(store), "n_hanzi": len(hanzi), **(manifest_extra or {})})
    tracer = Tracer(os.path.join(workdir, "traces.jsonl"), run_id=run_id, keep=False)
    poems = store.poems
    with open(out_path, "a", encoding="utf-8") as f:
        for method in spec.methods:
            for seed in spec.seeds:
                gen_caller = Caller(backend, spec.gen.replace(seed=seed), tracer, max_attempts=spec.max_attempts,
                                    prefix=f"namegen.{method}")
                judge_caller = Caller(judge_backend, spec.judge_gen.replace(seed=seed), tracer,
                                      max_attempts=spec.max_attempts, prefix=f"namegen.metric.{method}")
                for row in rows:
                    key = _key(method, seed, row["id"])
                    if key in done:
                        continue
                    rec = _generate(method, gen_caller, prompts, row, store, hanzi, spec, tracer)
                    rec.update(key=key, method=method, seed=seed)
                    if spec.judge and rec.get("name") and not rec.get("failed"):
                        rec["judge"] = metrics.judge_item(
                            judge_caller, prompts, item_id=row["id"], query=row["query"], name=rec["name"],
                            explanation=rec["explanation"], up_w=row["up_w"], poems=poems, hanzi=hanzi,
                            compat=spec.settings.compat)
                    if names is not None and rec.get("name") and not rec.get("failed"):
                        rec["nov"] = novelty.name_indices(rec["name"], names, compound_surnames)
                    f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                    f.flush()
                    done[key] = json.loads(json.dumps(rec, ensure_ascii=False, default=str))
    records = [done[_key(m, s, r["id"])] for m in spec.methods for s in spec.seeds for r in rows]
    return summarise(records, spec)


def _generate(method, caller, prompts, row, store, hanzi, spec: RunSpec, tracer) -> dict:
    if method.startswith("baseline_"):
        return baselines.run_baseline(method[len("baseline_"):], caller, prompts, row["query"], row["id"], store)
    settings = method_settings(method, spec.settings)
    return pipeline.run_query(caller, prompts, row["query"], row["id"], store, hanzi, settings, tracer)


def _finite(x: float):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def summarise(records: list[dict], spec: RunSpec) -> dict:
    """results.json body: per method metrics (mean, std ddof 1, n over scored queries), per-seed means,
    failures, judge drops and (NAMeGEn variants) round statistics."""
    out: dict = {"methods": {}}
    for method in spec.methods:
        recs = [r for r in records if r["method"] == method]
        scored = [r["judge"]["metrics"] for r in recs if r.get("judge") and r["judge"].get("metrics")]
        agg = metrics.aggregate([r["judge"]["metrics"] if r.get("judge") else None for r in recs
                                 if not r.get("failed")]) if spec.judge else {}
        entry = {k: ({kk: _finite(vv) for kk, vv in v.items()} if isinstance(v, dict) else v) for k, v in agg.items()}
        named = [r for r in recs if "nov" in r]
        if named:  # optional Nov (0-1 scale): over outputs with a given-name character in the table
            from humanai_jax.eval.stats import mean_std

            values = [r["nov"]["Nov"] for r in named if r["nov"]]
            entry["Nov"] = mean_std(values).to_dict() if values else {"mean": None, "std": None, "n": 0}
            entry["Nov"] = {k: _finite(v) for k, v in entry["Nov"].items()}
            entry["n_nov_unscored"] = len(named) - len(values)
        entry["n_queries"] = len(recs)
        entry["n_failed"] = sum(bool(r.get("failed")) for r in recs)
        entry["failures"] = sorted({r["failed"] for r in recs if r.get("failed")})
        if scored and len(spec.seeds) > 1:
            entry["per_seed_CMOC"] = {str(s): float(np.mean([r["judge"]["metrics"]["CMOC"] for r in recs
                                                              if r["seed"] == s and r.get("judge")
                                                              and r["judge"].get("metrics")] or [math.nan]))
                                      for s in spec.seeds}
        if not method.startswith("baseline_"):
            gen_rounds = [r["f_gen_rounds"] for r in recs if r.get("f_gen_rounds") is not None]
            entry["gen_rounds_mean"] = float(np.mean(gen_rounds)) if gen_rounds else None
            entry["rk_rounds_mean"] = float(np.mean([r["f_rk_rounds"] for r in recs])) if recs else None
            flags = [r.get("f_regen_flag") for r in recs]
            entry["final_flags"] = {str(k): flags.count(k) for k in sorted({f for f in flags if f is not None})}
        out["methods"][method] = entry
    return out


def metrics_from_traces(trace_path: str, rows: list[dict], poems: list[dict], hanzi: dict, *,
                        compat: bool = False, methods: Sequence[str] = ()) -> dict:
    """Recomputes every method's metric aggregate from `traces.jsonl` and the inputs alone: the last parsed
    reply of each judge call per (method, seed, query) (a resumed unit's redone calls come later and win), the
    Acc flags re-checked from the extracted claims, the gold weights from `rows`. Returns {method: aggregate};
    a method of `methods` never judged (every query failed before its judges) gets the empty aggregate, as
    `summarise` reports it."""
    from humanai_jax.data.jsonl import iter_jsonl

    by_id = {r["id"]: r for r in rows}
    judged: dict[tuple, dict] = {}
    for _, rec in iter_jsonl(trace_path):
        agent = rec.get("agent", "")
        if rec.get("type") != "llm_call" or not agent.startswith("namegen.metric."):
            continue
        method, _, kind = agent[len("namegen.metric."):].partition(".judge.")
        key = (method, rec["gen_config"]["seed"], rec["item_id"])
        slot = judged.setdefault(key, {})
        if rec.get("parse_error") is None:
            slot[kind] = rec["parsed"]
        elif rec["attempt"] == 1:
            slot.pop(kind, None)  # a new (redone) call of this kind starts: forget the older parse
    out: dict[str, list] = {m: [] for m in methods}
    for (method, _, item_id), slot in sorted(judged.items()):
        row = by_id[item_id]
        if all(k in slot for k in ("emoc", "crc", "lr", "acc_extract")):
            flags = metrics.acc_flags(slot["acc_extract"], row["query"], poems, hanzi, compat=compat)
            value = metrics.item_metrics(slot["emoc"], slot["crc"], slot["lr"], flags, row["up_w"])
        else:
            value = None
        out.setdefault(method, []).append(value)
    # NaN (no scored query) -> None, as `summarise` writes it to results.json
    return {m: {k: ({kk: _finite(vv) for kk, vv in v.items()} if isinstance(v, dict) else v)
                for k, v in metrics.aggregate(judges).items()} for m, judges in out.items()}
