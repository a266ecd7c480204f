"""A GenMentor tutoring run over simulated learners (docs/genmentor.md §2, §5): per learner, every stage of the pipeline
and its baselines, the simulated-learner loop, deterministic metrics and the shared LLM judge; resumable.

Workdir:
  outputs.jsonl   one record per finished learner (all artefacts + metrics + judge scores); a re-run skips
                  learners already there (a torn last line is cut off and redone)
  traces.jsonl    one line per model call (agent tag, attempt, messages, response, parsed) and events
  manifest.json   run id, learners, backends, taxonomy and prompt-file hashes, package versions, resume count
`run_tutoring(...)` returns results.json's body: per stage and method the means over learners, failures.
Failure policy: a `StructuredOutputError` (no valid reply after the capped repairs) in a stage of GenMentor's
own pipeline ends that learner's record with `failed: {stage, error}`; failed learners are counted, never
dropped silently. The same error in a comparison method (the `direct` / `cot` skill mappers and paths, every
content method but `genmentor`) is kept in that method's slot as `{"failed": error}` and counted in its
block's `n_failed`; the learner goes on, so one baseline's bad reply does not remove GenMentor's numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import uuid
from collections.abc import Sequence

import numpy as np

from humanai_jax.agents import GenConfig, StructuredOutputError
from humanai_jax.agents.stages import read_done, repair_torn_tail
from humanai_jax.eval.judge import judge, load_rubrics
from humanai_jax.methods.genmentor import content as C, metrics as M, schemas as S
from humanai_jax.methods.genmentor.agents import PROMPTS, REASON_FIRST, Agents, match_skills_llm, to_json
from humanai_jax.methods.genmentor.llm import Caller, Tracer

__all__ = ["RunSpec", "make_learners", "run_learner", "run_tutoring", "rubrics", "aggregate", "metrics_from_outputs",
           "SKILL_METHODS", "PATH_METHODS"]

SKILL_METHODS = ("genmentor", "direct", "cot")
PATH_METHODS = ("genmentor", "direct", "cot")


@dataclasses.dataclass
class RunSpec:
    gen: GenConfig = GenConfig(temperature=0.0, max_tokens=2048)
    judge_gen: GenConfig = GenConfig(temperature=0.0, max_tokens=512)
    max_attempts: int = 3
    session_count: int = 3  # desired_session_count (-1: 1-10)
    path_refine_iters: int = 2
    simulate_sessions: int = 2  # sessions the simulated learner studies (profile updates, then reschedule)
    content_methods: tuple[str, ...] = C.CONTENT_METHODS
    quiz_counts: tuple[int, int, int, int] = (3, 0, 0, 0)
    retrieval_k: int = 5
    judge: bool = True
    matcher: str = "exact"
    mapper_max_tokens: int = 512  # decoding budget of a separate mapper backend (the trained model)
    constrain_json: bool = False  # send each JSON-only agent's schema as response_format (llm.py)


def rubrics() -> dict:
    return load_rubrics(PROMPTS.json("rubrics"), template=PROMPTS.text("judge"))


def make_learners(samples: Sequence[dict], n: int, seed: int) -> list[dict]:
    """`n` simulated learners: a held-out goal (gold skills known) and a resume that mentions experience
    with some of its skills (a seeded choice), so gap identification has something to infer."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(samples), size=min(n, len(samples)), replace=False)
    out = []
    for i in picks:
        s = samples[int(i)]
        names = [g["name"] for g in s["skill_requirements"]]
        known = [names[int(k)] for k in sorted(rng.choice(len(names), size=min(2, len(names)), replace=False))]
        years = int(rng.integers(1, 6))
        info = (f"I have worked for {years} years in an office job. I have some experience with "
                f"{' and '.join(known)} from small projects, and I prefer short practical lessons.")
        out.append({"id": f"learner_{s['id']}", "goal": s["goal"], "learner_information": info,
                    "gold": s["skill_requirements"]})
    return out


def _judge_one(backend, rubric, spec: RunSpec, context: str, artifact: str, tag: str) -> dict | None:
    if backend is None or not spec.judge:
        return None
    j = judge(backend, rubric, [{"context": context, "artifact": artifact}], cfg=spec.judge_gen,
              max_attempts=spec.max_attempts, tag=tag)[0]
    return j.scores if j.error is None else {"error": j.error}


def _skill_scorer(spec: RunSpec, agents: Agents, judge_backend):
    """`(pred, gold) -> metrics.skill_prf(...)` with `spec.matcher`; `llm` asks the judge backend once per
    distinct (pred names, gold names) which names are the same skill (`agents.match_skills_llm`)."""
    if spec.matcher != "llm":
        return lambda pred, gold: M.skill_prf(pred, gold, spec.matcher)
    if judge_backend is None:
        raise ValueError("tutoring.matcher 'llm' needs a judge backend (judge=True or judge_backend)")
    # the judge backend traces its own calls when wrapped: the Caller writes the structured trace instead
    caller = Caller(getattr(judge_backend, "inner", judge_backend), spec.judge_gen, agents.caller.tracer,
                    max_attempts=spec.max_attempts)
    cache: dict = {}

    def score(pred, gold):
        key = (tuple(p["name"] for p in pred), tuple(g["name"] for g in gold))
        if key not in cache:
            caller.item_id = agents.caller.item_id
            cache[key] = match_skills_llm(caller, list(key[0]), list(key[1]))
        pairs = cache[key]
        return M.skill_prf(pred, gold, "llm", lambda p, g: (S.norm_name(p), S.norm_name(g)) in pairs)
    return score


@contextlib.contextmanager
def _comparison(slots: dict, method: str, agents: Agents, learner_id: str, stage: str):
    """Runs one method's stage. GenMentor's own failure propagates (it ends the learner); a comparison
    method's `StructuredOutputError` is stored as `slots[method] = {"failed": error}` and traced as a
    `method_failed` event, and the learner goes on."""
    try:
        yield
    except StructuredOutputError as err:
        if method == "genmentor":
            raise
        slots[method] = {"failed": str(err)}
        agents.caller.tracer.event("method_failed", {"stage": stage, "error": str(err)}, item_id=learner_id)


def run_learner(learner: dict, agents: Agents, spec: RunSpec, retriever: C.Retrieved, judge_backend=None,
                taxonomy=None, bm25_level: str = "intermediate", train_samples: Sequence[dict] | None = None) -> dict:
    """All stages for one learner; returns its record (see the module docstring). Skill baselines beside the
    agents: `bm25` (BM25 over `taxonomy`, every skill at `bm25_level`) and `nearest_goal` (the gold skills of
    the BM25-nearest goal in `train_samples`), each only when its input is given."""
    rub = rubrics()
    prf = _skill_scorer(spec, agents, judge_backend)
    rec: dict = {"id": learner["id"], "goal": learner["goal"], "learner_information": learner["learner_information"]}
    info = learner["learner_information"]
    agents.caller.item_id = learner["id"]
    if agents.mapper is not None:
        agents.mapper.item_id = learner["id"]
    if hasattr(judge_backend, "item_id"):  # a TracedBackend
        judge_backend.item_id = learner["id"]
    stage = "goal_refiner"
    try:
        goal = agents.refine_goal(learner["goal"], info).refined_goal
        rec["refined_goal"] = goal
        # --- skills: GenMentor mapper, DirPrompt, CoTPrompt, BM25 over the taxonomy ---------------------
        rec["skills"] = {}
        reqs = {}
        for method in SKILL_METHODS:
            stage = f"skills.{method}"
            with _comparison(rec["skills"], method, agents, learner["id"], stage):
                reqs[method] = agents.map_skills(goal, method)
                pred = [r.model_dump() for r in reqs[method].skill_requirements]
                rec["skills"][method] = {"pred": pred, **prf(pred, learner["gold"]),
                                         "judge": _judge_one(judge_backend, rub["skills"], spec, f"Goal: {goal}",
                                                             to_json(pred), "judge.skills")}
        if taxonomy is not None:
            from humanai_jax.methods.genmentor.goal2skill import bm25_taxonomy

            pred = bm25_taxonomy(taxonomy, [goal], 10, bm25_level)[0]
            rec["skills"]["bm25"] = {"pred": pred, **prf(pred, learner["gold"])}
        if train_samples:
            from humanai_jax.methods.genmentor.goal2skill import bm25_goal_knn

            pred = bm25_goal_knn(train_samples, [goal])[0]
            rec["skills"]["nearest_goal"] = {"pred": pred, **prf(pred, learner["gold"])}
        # --- gaps, simulated ground truth, profile -------------------------------------------------------
        stage = "gap_identifier"
        gaps = agents.identify_gaps(goal, info, reqs["genmentor"])
        rec["skill_gaps"] = gaps.model_dump()
        stage = "sim.ground_truth"
        truth = agents.sim_ground_truth(goal, info, S.SkillRequirements(skill_requirements=[
            S.SkillRequirement(**g) for g in learner["gold"]]))
        stage = "profiler.init"
        profile = agents.init_profile(goal, info, gaps)
        rec["profile_init"] = {"profile": profile.model_dump(), **M.profile_metrics(profile, truth)}
        # --- paths ---------------------------------------------------------------------------------------
        gap_names = [g.name for g in gaps.skill_gaps if g.is_gap]
        rec["path"] = {}
        paths = {}
        for method in PATH_METHODS:
            stage = f"path.{method}"
            with _comparison(rec["path"], method, agents, learner["id"], stage):
                if method == "genmentor":
                    paths[method], history = agents.optimise_path(profile, spec.session_count,
                                                                  spec.path_refine_iters)
                else:
                    paths[method], history = agents.schedule(profile, spec.session_count, style=method), []
                rec["path"][method] = {"path": paths[method].model_dump(), "refine_history": history,
                                       **M.path_metrics(paths[method], gap_names),
                                       "judge": _judge_one(judge_backend, rub["path"], spec, to_json(profile),
                                                           to_json(paths[method]), "judge.path")}
        # --- content for the first session ---------------------------------------------------------------
        path = paths["genmentor"]
        session = path.learning_path[0]
        rec["content"] = {}
        counts = dict(zip(("single_choice", "multiple_choice", "true_false", "short_answer"), spec.quiz_counts))
        for method in spec.content_methods:
            stage = f"content.{method}"
            with _comparison(rec["content"], method, agents, learner["id"], stage):
                if method in ("genmentor", "wo_refinement"):
                    out = C.genmentor_content(agents, profile, path, session, retriever,
                                              integrate=method == "genmentor")
                else:
                    out = C.baseline_content(agents, method, profile, session, retriever)
                quiz = C.quiz(agents, profile, out["markdown"], counts) if method == "genmentor" else None
                if quiz is not None:
                    out["quiz"] = quiz.model_dump()
                    out["feedback"] = agents.content_feedback(profile, out["markdown"]).model_dump()
                rec["content"][method] = {**out, **M.content_metrics(out["markdown"], quiz),
                                          "judge": _judge_one(judge_backend, rub["content"], spec,
                                                              to_json(profile) + "\n" + to_json(session),
                                                              out["markdown"], "judge.content")}
        # --- simulated learner: study sessions, update the profile, then reschedule ----------------------
        rec["simulation"] = []
        for k, sess in enumerate(path.learning_path[:spec.simulate_sessions]):
            stage = f"simulation.{k + 1}"
            agents.caller.round = k + 1
            after = agents.sim_progress(truth, sess)
            log = agents.sim_behaviour(truth, after, sess)
            profile = agents.update_profile(profile, log.model_dump(), sess)
            truth = after
            path = S.LearningPath(learning_path=[s.model_copy(update={"if_learned": True}) if s.id == sess.id else s
                                                 for s in path.learning_path])
            rec["simulation"].append({"session": sess.id, "behaviour": log.model_dump(),
                                      **M.profile_metrics(profile, truth)})
        agents.caller.round = None
        if rec["simulation"]:
            stage = "path.reschedule"
            new_path = agents.reschedule(profile, path, spec.session_count)
            todo = [s.name for s in profile.cognitive_status.in_progress_skills]
            rec["reschedule"] = {"path": new_path.model_dump(), **M.path_metrics(new_path, todo)}
        stage = "tutor"
        rec["tutor_reply"] = agents.tutor(profile, [{"role": "user", "content": f"What should I focus on in "
                                                                                f"{session.title}?"}])
    except StructuredOutputError as err:
        rec["failed"] = {"stage": stage, "error": str(err)}
        agents.caller.tracer.event("learner_failed", rec["failed"], item_id=learner["id"])
    return rec


# ------------------------------------------------------------------------------ aggregation
SKILL_KEYS = ("precision", "recall", "f1", "f1_strict")
PATH_KEYS = ("gap_coverage", "level_monotone", "n_sessions")
CONTENT_KEYS = ("one_title", "sections_in_order", "has_summary", "n_subsections", "chars", "n_quiz")
# what `paired_vs_genmentor` compares per stage (judge dimensions are added when present)
PAIRED_KEYS = {"skills": ("f1", "f1_strict"), "path": ("gap_coverage",), "content": ()}


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _mean(vals) -> float | None:
    vals = [x for x in map(_num, vals) if x is not None]
    return float(np.mean(vals)) if vals else None


def _ci95(vals, seed: int, n_resamples: int) -> list[float] | None:
    """Percentile-bootstrap 95% CI of the mean over learners (eval/stats.py); None below 2 values."""
    from humanai_jax.eval.stats import bootstrap_ci

    vals = [x for x in map(_num, vals) if x is not None]
    return list(bootstrap_ci(vals, seed=seed, n_resamples=n_resamples)) if len(vals) >= 2 and n_resamples else None


def _per_learner(rows: Sequence[dict], keys: Sequence[str]) -> dict[str, list]:
    """{metric: one value per row (None when absent)}, judge dimensions as `judge_<dim>`."""
    dims = sorted({d for r in rows for d in (r.get("judge") or {}) if d != "error"})
    vals = {k: [r.get(k) for r in rows] for k in keys}
    vals.update({f"judge_{d}": [(r.get("judge") or {}).get(d) for r in rows] for d in dims})
    return vals


def _block(rows: Sequence[dict], keys: Sequence[str], seed: int, n_resamples: int) -> tuple[dict, dict]:
    """Means over learners, `judge_failed`, `n` (learners with this method's output), `n_failed` (learners where
    it gave no valid reply), and `ci95` per metric; also the per-learner values."""
    vals = _per_learner(rows, keys)
    out = {k: _mean(v) for k, v in vals.items()}
    out["judge_failed"] = sum(1 for r in rows if (r.get("judge") or {}).get("error"))
    out["n"] = sum(1 for r in rows if r and "failed" not in r)
    out["n_failed"] = sum(1 for r in rows if "failed" in r)
    out["ci95"] = {k: _ci95(v, seed, n_resamples) for k, v in vals.items()}
    return out, vals


def _paired(per_method: dict[str, dict], keys: Sequence[str], seed: int, n_resamples: int) -> dict:
    """GenMentor - each other method on the same learners: paired bootstrap of the mean difference per
    metric (learners where both values exist; None below 2 pairs)."""
    from humanai_jax.eval.stats import paired_bootstrap

    if "genmentor" not in per_method or not n_resamples:
        return {}
    ours = per_method["genmentor"]
    keys = list(keys) + sorted(k for k in ours if k.startswith("judge_"))
    out = {}
    for method, vals in per_method.items():
        if method == "genmentor":
            continue
        out[method] = {}
        for k in keys:
            pairs = [(a, b) for a, b in zip(map(_num, ours.get(k, [])), map(_num, vals.get(k, [])))
                     if a is not None and b is not None]
            out[method][k] = (paired_bootstrap([a for a, _ in pairs], [b for _, b in pairs], seed=seed,
                                               n_resamples=n_resamples) if len(pairs) >= 2 else None)
    return out


def aggregate(records: Sequence[dict], *, seed: int = 0, n_resamples: int = 2000) -> dict:
    """Per stage and method over the finished learners: means, `n`, `ci95` (bootstrap over learners,
    `n_resamples` = 0: none) and `paired_vs_genmentor` (GenMentor - each baseline, paired bootstrap); see
    docs/genmentor.md for every key."""
    ok = [r for r in records if "failed" not in r]
    out: dict = {"n_learners": len(records), "n_failed": len(records) - len(ok),
                 "failed_stages": sorted({r["failed"]["stage"] for r in records if "failed" in r})}
    paired: dict = {}
    for stage, keys, methods in (("skills", SKILL_KEYS, sorted({m for r in ok for m in r["skills"]})),
                                 ("path", PATH_KEYS, PATH_METHODS if ok else ()),
                                 ("content", CONTENT_KEYS, sorted({m for r in ok for m in r["content"]}))):
        blocks, values = {}, {}
        for m in methods:
            # rows stay aligned by learner (for the paired comparison); a missing method is {}: absent, never 0
            rows = [r[stage].get(m) or {} for r in ok]
            blocks[m], values[m] = _block(rows, keys, seed, n_resamples)
        out[stage] = blocks
        paired[stage] = _paired(values, PAIRED_KEYS[stage], seed, n_resamples)
    out["paired_vs_genmentor"] = paired
    out["profile"] = {"init_level_accuracy": _mean([r["profile_init"]["level_accuracy"] for r in ok]),
                      "init_in_progress_f1": _mean([r["profile_init"]["in_progress_f1"] for r in ok]),
                      "final_level_accuracy": _mean([r["simulation"][-1]["level_accuracy"] for r in ok
                                                     if r.get("simulation")]),
                      "final_mastered_f1": _mean([r["simulation"][-1]["mastered_f1"] for r in ok
                                                  if r.get("simulation")])}
    out["reschedule_gap_coverage"] = _mean([r["reschedule"]["gap_coverage"] for r in ok if r.get("reschedule")])
    return out


def metrics_from_outputs(path: str, *, seed: int = 0, n_resamples: int = 2000) -> dict:
    """Recomputes the run's results (less `n_calls`) from its outputs.jsonl, which holds every artefact."""
    from humanai_jax.data.jsonl import iter_jsonl

    return aggregate([rec for _, rec in iter_jsonl(path)], seed=seed, n_resamples=n_resamples)


# ------------------------------------------------------------------------------ the run
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def prompt_hashes() -> dict:
    root = importlib.resources.files("humanai_jax.methods.genmentor").joinpath("prompts", "en")
    return {p.name: _sha(p.read_bytes()) for p in sorted(root.iterdir(), key=lambda p: p.name)
            if p.name.endswith((".txt", ".json"))}


def _versions() -> dict:
    out = {}
    for pkg in ("rank-bm25", "pydantic", "jax"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def run_tutoring(workdir: str, learners: Sequence[dict], backend, spec: RunSpec, *, retriever: C.Retrieved,
                 judge_backend=None, mapper_backend=None, taxonomy=None, bm25_level: str = "intermediate",
                 train_samples: Sequence[dict] | None = None, manifest_extra: dict | None = None,
                 seed: int = 0, n_resamples: int = 2000) -> dict:
    """Runs every learner not yet in WORKDIR/outputs.jsonl; returns `aggregate` over all of them (bootstrap
    `seed`, `n_resamples`). `taxonomy` / `train_samples` enable the BM25 / nearest-goal skill baselines."""
    from humanai_jax.methods.genmentor.backends import TracedBackend

    os.makedirs(workdir, exist_ok=True)
    out_path = os.path.join(workdir, "outputs.jsonl")
    manifest_path = os.path.join(workdir, "manifest.json")
    old = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {}
    run_id = old.get("run_id") or uuid.uuid4().hex[:12]
    tracer = Tracer(os.path.join(workdir, "traces.jsonl"), run_id=run_id)
    caller = Caller(backend, spec.gen, tracer, max_attempts=spec.max_attempts, constrain=spec.constrain_json,
                    unconstrained=REASON_FIRST)
    mapper = None
    if mapper_backend is not None:
        mapper = Caller(mapper_backend, spec.gen.replace(max_tokens=spec.mapper_max_tokens), tracer,
                        max_attempts=spec.max_attempts, constrain=spec.constrain_json, unconstrained=REASON_FIRST)
    agents = Agents(caller, mapper)
    judge_b = TracedBackend(judge_backend, tracer) if judge_backend is not None else None
    manifest = {"run_id": run_id, "system": "genmentor", "learners": [x["id"] for x in learners],
                "backend": getattr(backend, "name", type(backend).__name__),
                "mapper_backend": getattr(mapper_backend, "name", None) if mapper_backend else None,
                "judge_backend": getattr(judge_backend, "name", None) if judge_backend else None,
                "spec": {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in dataclasses.asdict(spec).items()},
                "prompt_hashes": prompt_hashes(), "versions": _versions(), "resumes": old.get("resumes", -1) + 1,
                **(manifest_extra or {})}
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2, default=str)
    repair_torn_tail(out_path)
    done = read_done(out_path, "id")
    for learner in learners:
        if learner["id"] in done:
            continue
        rec = run_learner(learner, agents, spec, retriever, judge_b, taxonomy, bm25_level, train_samples)
        with open(out_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
        done[learner["id"]] = rec
    records = [done[x["id"]] for x in learners]
    n_calls = caller.calls + (mapper.calls if mapper else 0)
    return {**aggregate(records, seed=seed, n_resamples=n_resamples), "n_calls": n_calls}
