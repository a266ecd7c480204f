r"""NAMeGEn on CBNames: generation (NAMeGEn, ablations, baselines) + the CBNames metric suite.

  python -m experiments.run --config configs/namegen.py[:variant,...] --workdir DIR

Writes DIR/outputs.jsonl (one record per method × seed × query; a re-run resumes), DIR/traces.jsonl (one
line per model call), DIR/manifest.json, and returns results.json's body: `methods.<method>.<metric>` =
{mean, std, n} for EMOC_w, EMOC_std, CRC, LR, Acc, IMOC, IMOC_std, CMOC, CMOC_std (and Nov when `names` is set),
plus failures and rounds; `tables` says which poem corpus, Hanzi table and names table the numbers used;
a single-method run also carries the means flat (`CMOC`, `EMOC_w`, ..., `n_scored`, `n_failed`) for report tables.
`plumbing: true` marks runs whose numbers mean nothing (mock model, sample poems or gold poems).
See docs/namegen.md.
"""

from __future__ import annotations

import os

from humanai_jax import experiment
from humanai_jax.agents import GenConfig


def _gen(block) -> GenConfig:
    return GenConfig(temperature=float(block.temperature), top_p=float(block.top_p), max_tokens=int(block.max_tokens))


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
    metrics = runner.metrics_from_traces(trace_path, rows, poem_list, table, compat=bool(config.loop.compat))
    return {"metrics": metrics, "results": os.path.join(run_dir, "results.json"), "key": "methods"}


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
    backend = backends.build_backend(config.backend, seed=seeds[0])
    judge_backend = backends.build_backend(config.judge_backend, seed=seeds[0]) if config.judge_backend.kind \
        else backend
    spec = runner.RunSpec(methods=tuple(m.strip() for m in config.methods.split(",") if m.strip()), seeds=seeds,
                          settings=pipeline.Settings(**config.loop.to_dict()), gen=_gen(config.gen),
                          judge_gen=_gen(config.judge_gen), max_attempts=int(config.max_attempts),
                          judge=bool(config.judge))
    for m in spec.methods:
        if m not in runner.METHODS:
            raise ValueError(f"config.methods: unknown method {m!r}; valid: {runner.METHODS}")
    plumbing = bool(config.plumbing) or config.backend.kind == "mock" or config.poems in ("sample", "gold") \
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
    results["n_queries"] = len(rows)
    results["backend"] = getattr(backend, "name", "")
    results["workdir_files"] = sorted(f for f in os.listdir(workdir) if f in ("outputs.jsonl", "traces.jsonl",
                                                                            "manifest.json"))
    return results
