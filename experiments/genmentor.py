r"""GenMentor: the goal-to-skill model (SFT on the shared Trainer, evaluated against BM25 on held-out goals)
and the multi-agent tutoring run over simulated learners (docs/genmentor.md).

  python -m experiments.run --config configs/genmentor.py[:variant,...] --workdir DIR

Writes DIR/goal2skill/ (dataset.jsonl; synth_dataset.jsonl, synth_report.json, synth_traces.jsonl when
`synth.goals` is set; tokenizer, checkpoints, metrics.jsonl, predictions_*.jsonl) and
DIR/tutoring/ (outputs.jsonl, traces.jsonl, manifest.json). Returns results.json's body:
  goal2skill.model / bm25_taxonomy / bm25_goal_knn: macro precision, recall, f1 (+ `_strict`: the level must
      match too), each with a bootstrap 95% CI over test goals; model.selected_step (chosen on validation),
      model.val_curve; paired: the paired bootstrap of per-goal F1, model - BM25; per_seed and mean/std over
      seeds when `seeds` is set
  tutoring: per stage and method means over simulated learners (skills incl. the BM25 and nearest-goal
      baselines, path, content, profile), judge scores, `n` and `ci95` (bootstrap over learners),
      `paired_vs_genmentor` (GenMentor - each baseline), failures; `plumbing: true` when the scripted model answered
  headline: flat keys for report tables (g2s_f1, g2s_f1_strict, bm25_f1, ...)
"""

from __future__ import annotations

import os

from humanai_jax import experiment
from humanai_jax.agents import GenConfig
from humanai_jax.agents.distill import call_outcomes


def _gen(block) -> GenConfig:
    return GenConfig(temperature=float(block.temperature), top_p=float(block.top_p), max_tokens=int(block.max_tokens))


def _synthesize(config, workdir: str) -> tuple[list[dict], dict]:
    """Teacher-synthesised samples for `config.synth.goals` (docs/genmentor.md §6); written to WORKDIR/goal2skill/."""
    import json

    from humanai_jax.methods.genmentor import backends, goal2skill as G, synth
    from humanai_jax.methods.genmentor.llm import Tracer

    out = os.path.join(workdir, "goal2skill")
    os.makedirs(out, exist_ok=True)
    if not config.synth.teacher.kind:
        raise ValueError("config.synth.teacher.kind must be set (openai, hf, replay; mock = the plumbing teacher)")
    teacher = backends.build_backend(config.synth.teacher, seed=config.seed)
    samples, report = synth.synthesize(teacher, synth.read_goals(config.synth.goals), cfg=_gen(config.synth.gen),
                                       max_attempts=config.tutoring.max_attempts, seed=config.data.seed,
                                       fractions=tuple(config.data.fractions),
                                       tracer=Tracer(os.path.join(out, "synth_traces.jsonl")))
    G.write_dataset(os.path.join(out, "synth_dataset.jsonl"), samples)
    with open(os.path.join(out, "synth_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(f"synthesized {report['n_kept']} of {report['n_goals']} goals with {report['teacher']} "
          f"({report['split_counts']})", flush=True)
    return samples, report


def _splits(config, tax, synthesized=None):
    from humanai_jax.methods.genmentor import goal2skill as G

    if synthesized is not None:
        samples = synthesized
    elif config.dataset:
        samples = G.read_dataset(config.dataset)
    else:
        samples = G.build_dataset(tax, seed=config.data.seed, fractions=tuple(config.data.fractions))
    parts = {k: [s for s in samples if s["split"] == k] for k in ("train", "val", "test")}
    empty = [k for k, v in parts.items() if not v]
    if empty:
        raise ValueError(f"the goal-to-skill dataset has no {empty} goals: raise the taxonomy size or the fractions")
    if config.eval.max_val:
        parts["val"] = parts["val"][:config.eval.max_val]
    if config.eval.max_test:
        parts["test"] = parts["test"][:config.eval.max_test]
    return samples, parts


def run_goal2skill(config, workdir: str, tax, parts) -> tuple[dict, object]:
    """Baselines (k chosen on validation), then the model per seed; test decoded once per seed."""
    from humanai_jax.agents.jax_backend import JaxChatBackend
    from humanai_jax.eval import stats
    from humanai_jax.methods.genmentor import goal2skill as G, sft

    nb = config.eval.bootstrap_resamples
    train, val, test = parts["train"], parts["val"], parts["test"]
    goals = [s["goal"] for s in test]
    level = G.majority_level(train)
    chosen = G.choose_bm25_k(tax, val, level)
    out: dict = {"n_train": len(train), "n_val": len(val), "n_test": len(test), "tracks": bool(config.data.tracks),
                 "taxonomy": config.taxonomy or "shipped sample", "n_taxonomy_skills": len(tax.skills)}
    base_rows = {}
    for name, preds in (("bm25_taxonomy", G.bm25_taxonomy(tax, goals, chosen["k"], level)),
                        ("bm25_goal_knn", G.bm25_goal_knn(train, goals))):
        agg, rows = G.score(preds, test, seed=config.seed, n_resamples=nb)
        out[name] = agg
        base_rows[name] = rows
        G.write_predictions(os.path.join(workdir, f"predictions_{name}.jsonl"), test, preds, rows)
    out["bm25_taxonomy"].update(k=chosen["k"], level=level, val_f1_by_k=chosen["val_f1"])
    seeds = [int(s) for s in config.seeds] or [int(config.seed)]
    per_seed, trained = {}, None
    for seed in seeds:
        sub = config.copy_and_resolve_references()
        with sub.unlocked():
            sub.seed, sub.data.seed = seed, seed if config.seeds else config.data.seed
        sdir = os.path.join(workdir, f"seed_{seed}") if config.seeds else workdir
        model = sft.train_and_select(sub, sdir, train, val)
        backend = JaxChatBackend(model.params, model.model_cfg, model.tokenizer, max_batch=config.eval.batch)
        preds, texts, invalid = sft.predict(backend, goals, config.eval.max_new_tokens, seed)
        agg, rows = G.score(preds, test, seed=seed, n_resamples=nb)
        G.write_predictions(os.path.join(sdir, "predictions_model.jsonl"), test, preds, rows, texts)
        paired = {name: stats.paired_bootstrap([r["f1"] for r in rows], [r["f1"] for r in base],
                                               n_resamples=nb, seed=seed) for name, base in base_rows.items()}
        per_seed[seed] = {**agg, "invalid_rate": invalid / len(test), "selected_step": model.selected_step,
                          "val_curve": {str(k): v for k, v in model.val_curve.items()}, **model.summary,
                          "paired_f1_vs": paired}
        print(f"seed {seed}: test F1 {agg['f1']:.3f} {agg['f1_ci95']} strict {agg['f1_strict']:.3f}; "
              f"BM25 {out['bm25_taxonomy']['f1']:.3f}; goal-kNN {out['bm25_goal_knn']['f1']:.3f}", flush=True)
        trained = trained or model
    if len(seeds) == 1:
        out["model"] = per_seed[seeds[0]]
    else:
        out["per_seed"] = {str(s): r for s, r in per_seed.items()}
        out["model"] = {k: stats.mean_std([r[k] for r in per_seed.values()]).to_dict()
                        for k in ("f1", "f1_strict", "precision", "recall")}
    f1s = [r["paired_f1_vs"]["bm25_taxonomy"] for r in per_seed.values()]
    out["beats_bm25"] = all(p["ci"][0] > 0 for p in f1s)  # every seed's paired 95% CI above 0
    return out, trained


def _distill_cfg(config):
    from humanai_jax.agents.distill import DistillConfig

    d = config.distill
    return DistillConfig(vocab_size=int(d.vocab_size), max_prompt_tokens=int(d.max_prompt_tokens),
                         max_reply_tokens=int(d.max_reply_tokens), d_model=int(d.d_model), n_layers=int(d.n_layers),
                         steps=int(d.steps), batch_size=int(d.batch_size), lr=float(d.lr), seed=int(d.seed))


def _teacher_pairs(config, workdir: str, run) -> list[dict]:
    """The scripted teacher's (messages, reply) pairs: `run(dir, backend, learners)` over `distill.teacher_learners`
    learners of the *train* split; cached in WORKDIR/tutoring_distill/teacher_pairs.jsonl."""
    import json
    import shutil

    from humanai_jax.agents.distill import CapturingBackend
    from humanai_jax.methods.genmentor import backends

    path = os.path.join(workdir, "tutoring_distill", "teacher_pairs.jsonl")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    teacher_dir = os.path.join(workdir, "tutoring_distill", "teacher_run")
    shutil.rmtree(teacher_dir, ignore_errors=True)  # a killed teacher run: capture again from scratch
    teacher = CapturingBackend(backends.build_backend(backends_block(config, "mock"), seed=config.seed),
                               compact_json=bool(config.tutoring.constrain_json))
    run(teacher_dir, teacher, "train", int(config.distill.teacher_learners))
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for p in teacher.pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)
    return teacher.pairs


def backends_block(config, kind: str):
    block = config.backend.to_dict() if hasattr(config.backend, "to_dict") else dict(config.backend)
    return {**block, "kind": kind, "record": ""}


def run_tutoring_part(config, workdir: str, tax, parts, trained) -> dict:
    from humanai_jax.methods.genmentor import backends, runner

    t = config.tutoring
    distill = None
    if config.backend.kind == "distilled":
        from humanai_jax.agents.distill import train_student

        def teacher_run(out_dir, teacher, split, n):
            # trained=None: the teacher answers the skill mapper too, so its run reaches every agent
            return _tutor(config, out_dir, tax, parts, None, teacher, teacher, runner.make_learners(
                parts[split], n, config.seed))

        pairs = _teacher_pairs(config, workdir, teacher_run)
        backend, distill = train_student(pairs, os.path.join(workdir, "tutoring_distill", "student"),
                                         _distill_cfg(config), name="project:distilled-from-scripted")
    else:
        backend = backends.build_backend(config.backend, seed=config.seed)
    judge_backend = backend if not config.judge_backend.kind else backends.build_backend(config.judge_backend)
    learners = runner.make_learners(parts["test"], t.learners, config.seed)
    res = _tutor(config, os.path.join(workdir, "tutoring"), tax, parts, trained, backend, judge_backend, learners)
    out = {**res, "plumbing": bool(config.plumbing) or config.backend.kind in ("mock", "distilled")}
    if distill is not None:
        out["distill"] = {**distill, "label": "plumbing run: our model, trained from scratch on the scripted "
                          "teacher's replies; it shows the pipeline runs on our model end to end, not quality",
                          "n_calls_prompt_truncated": backend.n_truncated, "n_calls_served": backend.n_calls,
                          "calls": call_outcomes(os.path.join(workdir, "tutoring", "traces.jsonl"), int(t.max_attempts))}
        if config.distill.scripted_reference:  # the scripted teacher on the same learners, for comparison
            mock = backends.build_backend(backends_block(config, "mock"), seed=config.seed)
            ref = _tutor(config, os.path.join(workdir, "tutoring_distill", "scripted_reference"), tax, parts,
                         trained, mock, mock, learners)
            out["scripted_reference"] = {k: ref[k] for k in ("skills", "n_failed") if k in ref}
    return out


def _tutor(config, out_dir: str, tax, parts, trained, backend, judge_backend, learners) -> dict:
    from humanai_jax.methods.genmentor import content, goal2skill as G, retrieval, runner

    t = config.tutoring
    mapper = None
    if t.mapper == "trained" and trained is not None:
        from humanai_jax.agents.jax_backend import JaxChatBackend

        mapper = JaxChatBackend(trained.params, trained.model_cfg, trained.tokenizer, name="goal2skill(trained)",
                                max_batch=config.eval.batch, default_seed=config.seed)
    elif t.mapper not in ("trained", "backend"):
        raise ValueError(f"tutoring.mapper must be 'trained' or 'backend', got {t.mapper!r}")
    if t.retrieval_dir:
        docs = retrieval.load_documents(t.retrieval_dir)
    else:  # offline fallback corpus: the taxonomy's skill descriptions
        docs = [{"id": s.name, "text": f"{s.name}: {s.description}"} for s in tax.skills]
    spec = runner.RunSpec(gen=_gen(config.gen), judge_gen=_gen(config.judge_gen), max_attempts=t.max_attempts,
                          session_count=t.session_count, path_refine_iters=t.path_refine_iters,
                          simulate_sessions=t.simulate_sessions, quiz_counts=tuple(t.quiz), retrieval_k=t.retrieval_k,
                          content_methods=tuple(m for m in t.content_methods.split(",") if m), judge=t.judge,
                          matcher=t.matcher, mapper_max_tokens=config.eval.max_new_tokens,
                          constrain_json=t.constrain_json)
    res = runner.run_tutoring(out_dir, learners, backend, spec,
                              retriever=content.Retrieved(docs, t.retrieval_k), judge_backend=judge_backend,
                              mapper_backend=mapper, taxonomy=tax, bm25_level=G.majority_level(parts["train"]),
                              train_samples=parts["train"], seed=config.seed,
                              n_resamples=config.eval.bootstrap_resamples,
                              manifest_extra={"taxonomy": config.taxonomy or "shipped sample",
                                              "retrieval": t.retrieval_dir or "taxonomy descriptions"})
    return {**res, "mapper": getattr(mapper, "name", "backend")}


def run(config, workdir: str) -> dict:
    from humanai_jax.methods.genmentor import goal2skill as G

    parts_to_run = [p.strip() for p in config.parts.split(",") if p.strip()]
    unknown = set(parts_to_run) - {"goal2skill", "tutoring"}
    if unknown:
        raise ValueError(f"config.parts: unknown {sorted(unknown)}; valid: goal2skill, tutoring")
    tax = G.load_taxonomy(config.taxonomy or None)
    results: dict = {"variant": config.variant}
    synthesized = None
    if config.synth.goals:
        if config.dataset:
            raise ValueError("set config.dataset or config.synth.goals, not both")
        synthesized, results["synth"] = _synthesize(config, workdir)
    samples, parts = _splits(config, tax, synthesized)
    G.write_dataset(os.path.join(workdir, "goal2skill", "dataset.jsonl"), samples)
    trained = None
    if "goal2skill" in parts_to_run:
        results["goal2skill"], trained = run_goal2skill(config, os.path.join(workdir, "goal2skill"), tax, parts)
    if "tutoring" in parts_to_run:
        results["tutoring"] = run_tutoring_part(config, workdir, tax, parts, trained)
    results["headline"] = _headline(results)
    return results


def _headline(results: dict) -> dict:
    """Flat keys for experiments/report.py tables."""
    h = {}
    g = results.get("goal2skill")
    if g:
        m = g["model"]
        pick = (lambda k: m[k]["mean"]) if isinstance(m.get("f1"), dict) else (lambda k: m[k])
        h.update(g2s_f1=pick("f1"), g2s_f1_strict=pick("f1_strict"), g2s_precision=pick("precision"),
                 g2s_recall=pick("recall"), bm25_f1=g["bm25_taxonomy"]["f1"],
                 bm25_f1_strict=g["bm25_taxonomy"]["f1_strict"], knn_f1=g["bm25_goal_knn"]["f1"],
                 knn_f1_strict=g["bm25_goal_knn"]["f1_strict"], g2s_beats_bm25=g["beats_bm25"])
    t = results.get("tutoring")
    if t:
        sk = lambda m, k: (t["skills"].get(m) or {}).get(k)  # noqa: E731
        h.update(tutoring_plumbing=t["plumbing"], tutoring_failed=t["n_failed"],
                 skills_genmentor_f1=sk("genmentor", "f1"), skills_nearest_goal_f1=sk("nearest_goal", "f1"),
                 skills_bm25_f1=sk("bm25", "f1"))
    return h


def replay_metrics(trace_path: str) -> dict:
    """`experiments.replay_metrics` hook: the tutoring metrics (all but `n_calls`) recomputed from the run's
    outputs.jsonl next to the trace (every artefact of every learner, the judge's scores included), with the
    run's bootstrap seed and resample count from DIR/config.json; they must equal results.json's `tutoring`."""

    from humanai_jax.methods.genmentor import runner

    tutoring_dir = os.path.dirname(os.path.abspath(trace_path))
    run_dir = os.path.dirname(tutoring_dir)
    config = experiment.read_config(run_dir)
    metrics = runner.metrics_from_outputs(os.path.join(tutoring_dir, "outputs.jsonl"), seed=config["seed"],
                                          n_resamples=config["eval"]["bootstrap_resamples"])
    return {"metrics": metrics, "results": os.path.join(run_dir, "results.json"), "key": "tutoring"}

