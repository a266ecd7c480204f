r"""NAMeGEn on CBNames: generation (NAMeGEn, ablations, baselines) + the CBNames metric suite.

  python -m experiments.run --config configs/namegen.py[:variant,...] --workdir DIR

Writes DIR/outputs.jsonl (one record per method × seed × query; a re-run resumes), DIR/traces.jsonl (one
line per model call), DIR/manifest.json, and returns results.json's body: `methods.<method>.<metric>` =
{mean, std, n} for EMOC_w, EMOC_std, CRC, LR, Acc, IMOC, IMOC_std, CMOC, CMOC_std (and Nov when `names` is set),
plus failures and rounds; `tables` says which poem corpus, Hanzi table and names table the numbers used;
a single-method run also carries the means flat (`CMOC`, `EMOC_w`, ..., `n_scored`, `n_failed`) for report tables.
`plumbing: true` marks runs whose numbers mean nothing (mock model, the distilled student, sample poems or gold
poems). backend.kind "distilled" (the default variant): our own LM trained in the run on the scripted teacher's
replies (`humanai_jax.agents.distill`), results carry `distill` (label, call outcomes) and `scripted_reference`.
See docs/namegen.md.
"""

from __future__ import annotations

import os

from humanai_jax import experiment
from humanai_jax.agents import GenConfig
from humanai_jax.agents.distill import call_outcomes


def _gen(block) -> GenConfig:
    return GenConfig(temperature=float(block.temperature), top_p=float(block.top_p), max_tokens=int(block.max_tokens))


def _methods(config) -> tuple[str, ...]:
    """The methods `config.methods` names (comma-separated)."""
    return tuple(m.strip() for m in config.methods.split(",") if m.strip())


def _inputs(config):
    """(CBNames rows, poem list, (Hanzi table, its info)) as the config selects them."""
    from humanai_jax.methods.namegen import data, hanzi, poems

    rows = data.load_cbnames(config.data_dir or None)
    rows = rows[config.offset:]
    if config.limit > 0:
        rows = rows[:config.limit]
    if config.poems == "sample":
        poem_list = poems.sample_poems()
    elif config.poems == "gold":
        poem_list = poems.poems_from_cbnames(data.load_cbnames(config.data_dir or None))
    else:
        poem_list = poems.load_poems(config.poems)
    return rows, poem_list, hanzi.read_hanzi_table(config.hanzi or None)


def replay_metrics(trace_path: str) -> dict:
    """`experiments.replay_metrics` hook: every method's metric aggregate recomputed from traces.jsonl (the
    judges' parsed replies, Acc re-checked from the extracted claims) and the inputs the run's config.json
    names (queries, poems, Hanzi table); they must equal results.json's `methods`."""

    import ml_collections

    from humanai_jax.methods.namegen import runner

    run_dir = os.path.dirname(os.path.abspath(trace_path))
    config = ml_collections.ConfigDict(experiment.read_config(run_dir))
    rows, poem_list, (table, _) = _inputs(config)
    methods = _methods(config) if config.judge else ()
    metrics = runner.metrics_from_traces(trace_path, rows, poem_list, table, compat=bool(config.loop.compat),
                                         methods=methods)
    return {"metrics": metrics, "results": os.path.join(run_dir, "results.json"), "key": "methods"}


def _distill_cfg(config):
    from humanai_jax.agents.distill import DistillConfig

    d = config.distill
    return DistillConfig(vocab_size=int(d.vocab_size), max_prompt_tokens=int(d.max_prompt_tokens),
                         max_reply_tokens=int(d.max_reply_tokens), d_model=int(d.d_model), n_layers=int(d.n_layers),
                         steps=int(d.steps), batch_size=int(d.batch_size), lr=float(d.lr), seed=int(d.seed))


def _teacher_pairs(config, workdir: str, store, table, spec) -> list[dict]:
    """The scripted teacher's (messages, reply) pairs on `distill.teacher_limit` CBNames queries after
    `distill.teacher_offset` (all spec methods, judges included); cached in WORKDIR/distill/teacher_pairs.jsonl."""
    import json
    import shutil

    from humanai_jax.agents.distill import CapturingBackend
    from humanai_jax.methods.namegen import backends, data, runner

    path = os.path.join(workdir, "distill", "teacher_pairs.jsonl")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    all_rows = data.load_cbnames(config.data_dir or None)
    lo = int(config.distill.teacher_offset)
    rows = all_rows[lo:lo + int(config.distill.teacher_limit)]
    teacher_dir = os.path.join(workdir, "distill", "teacher_run")
    shutil.rmtree(teacher_dir, ignore_errors=True)  # a killed teacher run: capture again from scratch
    teacher = CapturingBackend(backends.mock_backend())
    runner.run_namegen(rows, store, table, teacher, teacher, spec, teacher_dir, run_id="namegen.teacher")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for p in teacher.pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)
    return teacher.pairs


def run(config, workdir: str) -> dict:
    from humanai_jax.methods.namegen import backends, data, novelty, pipeline, poems, runner
    from humanai_jax.methods.namegen.metrics import METRICS

    rows, poem_list, (table, hanzi_info) = _inputs(config)
    store = poems.PoemStore(poem_list)
    names = novelty.load_name_table(config.names, compat=bool(config.loop.compat)) if config.names else None
    compound = novelty.load_compound_surnames(config.surnames) if config.surnames else frozenset()
    # which tables every Acc / Nov number was checked against (results.json and manifest.json)
    tables = {"poems": poems.corpus_info(config.poems, poem_list), "hanzi": hanzi_info,
              "names": dict(names.info, compound_surnames=config.surnames or None) if names is not None else None}
    seeds = tuple(int(s) for s in str(config.seeds).split(",") if s.strip())
    spec = runner.RunSpec(methods=_methods(config), seeds=seeds,
                          settings=pipeline.Settings(**config.loop.to_dict()), gen=_gen(config.gen),
                          judge_gen=_gen(config.judge_gen), max_attempts=int(config.max_attempts),
                          judge=bool(config.judge))
    for m in spec.methods:
        if m not in runner.METHODS:
            raise ValueError(f"config.methods: unknown method {m!r}; valid: {runner.METHODS}")
    distill = None
    if config.backend.kind == "distilled":
        from humanai_jax.agents.distill import train_student

        pairs = _teacher_pairs(config, workdir, store, table, spec)
        backend, distill = train_student(pairs, os.path.join(workdir, "distill", "student"), _distill_cfg(config),
                                         name="project:distilled-from-scripted")
    else:
        backend = backends.build_backend(config.backend, seed=seeds[0])
    judge_backend = backends.build_backend(config.judge_backend, seed=seeds[0]) if config.judge_backend.kind \
        else backend
    plumbing = bool(config.plumbing) or config.backend.kind in ("mock", "distilled") or config.poems in ("sample", "gold") \
        or not config.hanzi
    results = runner.run_namegen(rows, store, table, backend, judge_backend, spec, workdir, manifest_extra={
        "data_dir": config.data_dir or data.default_data_dir(), "poems": config.poems,
        "hanzi": config.hanzi or "sample", "plumbing": plumbing, "tables": tables}, names=names,
        compound_surnames=compound)
    results["plumbing"] = plumbing
    results["tables"] = tables
    if len(spec.methods) == 1:  # flat headline keys for experiments/report.py tables (one run per variant)
        entry = results["methods"][spec.methods[0]]
        results.update({k: entry[k]["mean"] for k in METRICS if k in entry})
        results.update({k: entry[k] for k in ("n_scored", "n_failed", "n_dropped") if k in entry})
        if "Nov" in entry:
            results["Nov"] = entry["Nov"]["mean"]
    if distill is not None:
        results["distill"] = {**distill, "label": "plumbing run: our model, trained from scratch on the scripted "
                              "teacher's replies; it shows the pipeline runs on our model end to end, not quality",
                              "n_calls_prompt_truncated": backend.n_truncated, "n_calls_served": backend.n_calls,
                              "calls": call_outcomes(os.path.join(workdir, "traces.jsonl"), int(config.max_attempts))}
        if config.distill.scripted_reference:  # the scripted teacher on the same queries, for comparison
            ref = runner.run_namegen(rows, store, table, backends.mock_backend(), backends.mock_backend(), spec,
                                     os.path.join(workdir, "distill", "scripted_reference"), run_id="namegen.scripted")
            results["scripted_reference"] = ref["methods"]
    results["n_queries"] = len(rows)
    results["backend"] = getattr(backend, "name", "")
    results["workdir_files"] = sorted(f for f in os.listdir(workdir) if f in ("outputs.jsonl", "traces.jsonl",
                                                                            "manifest.json"))
    return results
