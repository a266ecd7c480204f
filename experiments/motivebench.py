r"""MotiveBench on any chat model: load -> (model calls over every option order) -> two extraction rules
-> per-task and all-three accuracy with exact CIs, per source and overall, next to four LLM-free baselines.

  python -m experiments.run --config configs/motivebench.py:direct,base_url=URL,model=M --workdir DIR

Writes DIR/results.json (model, mode, `rules.<reference|robust|parse>.<overall|by_source.S>.<MR|BR|MBR|all>`,
`baselines.<random|first|longest|overlap>...`, `deviations`), DIR/traces.jsonl (one record per call) and
DIR/predictions.jsonl, and prints the table. See docs/motivebench.md.
"""

from __future__ import annotations

import os
import pathlib
import uuid

from humanai_jax import experiment
from humanai_jax.agents import GenConfig
from humanai_jax.data.jsonl import JsonlWriter, write_jsonl
from humanai_jax.methods.motivebench import backends, data, runner
from humanai_jax.methods.motivebench.metrics import METRICS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CHANCE = {"MR": 1 / 6, "BR": 1 / 6, "MBR": 1 / 6, "all": 1 / 216}


def data_dir(config) -> str:
    return config.data_dir or str(REPO_ROOT.parent / "shared" / "data" / "motivebench")


def gen_config(config, info: dict, deviations: list[str]) -> GenConfig:
    g = config.gen
    rp = float(g.repetition_penalty) or None
    if rp is not None and not info["repetition_penalty"]:
        deviations.append(f"repetition_penalty {rp} dropped: backend {info['kind']!r} does not implement it")
        rp = None
    if int(g.max_tokens) != 4096:
        deviations.append(f"max_tokens {g.max_tokens} instead of the reference 4096")
    return GenConfig(temperature=float(g.temperature), top_p=float(g.top_p), max_tokens=int(g.max_tokens),
                     repetition_penalty=rp, seed=int(g.seed))


def _cell(m: dict) -> str:
    lo, hi = m["ci95"]
    return f"{100 * m['mean']:5.1f} [{100 * lo:4.1f}-{100 * hi:4.1f}]"


def format_table(results: dict) -> str:
    """Rows: each extraction rule of the model, each baseline, chance; one block per source and overall."""
    rows = [(f"{results['model']} ({rule})", s) for rule, s in results["rules"].items()]
    rows += [(f"baseline: {name}", s) for name, s in results.get("baselines", {}).items()]
    head = f"{'':34s} {'MR':>19s} {'BR':>19s} {'MBR':>19s} {'all three':>19s} {'invalid':>8s}"
    lines = [f"MotiveBench, mode {results['mode']}, orders {results['permutations']} "
             f"(mean over orders, % [exact 95% CI over scenario x order trials])"]
    for scope in ["overall", *results["sources"]]:
        lines += ["", f"-- {scope} --", head]
        for label, scores in rows:
            s = scores["overall"] if scope == "overall" else scores["by_source"][scope]
            lines.append(f"{label[:34]:34s} " + " ".join(f"{_cell(s[m]):>19s}" for m in METRICS)
                         + f" {100 * s['invalid_rate']:7.1f}%")
        lines.append(f"{'chance':34s} " + " ".join(f"{100 * CHANCE[m]:19.1f}" for m in METRICS))
    return "\n".join(lines)


def run(config, workdir: str) -> dict:
    sources = [s.strip() for s in config.sources.split(",") if s.strip()]
    scenarios = data.load_sources(data_dir(config), sources, limit=int(config.limit))
    deviations: list[str] = []
    if config.limit:
        deviations.append(f"limit {config.limit}: first scenarios of each source only")
    results = {"mode": config.mode, "permutations": config.permutations, "sources": sources,
               "n_scenarios": {s: len(v) for s, v in scenarios.items()}, "limit": int(config.limit)}
    if config.baselines:
        results["baselines"] = runner.evaluate_baselines(scenarios, order_set=config.permutations, seed=config.seed)
    backend, info = backends.build_backend(config.backend, seed=config.seed)
    gen = gen_config(config, info, deviations)
    parse_backend = None
    if config.parse_backend.kind:
        parse_backend, _ = backends.build_backend(config.parse_backend, seed=config.seed)
    system = None if config.system == "" else ("" if config.system == "none" else config.system)
    with JsonlWriter(os.path.join(workdir, "traces.jsonl")) as trace:
        out = runner.evaluate(backend, scenarios, mode=config.mode, order_set=config.permutations, gen_cfg=gen,
                              system=system, chunk=int(config.chunk), trace=trace, run_id=uuid.uuid4().hex[:12],
                              parse_backend=parse_backend,
                              parse_cfg=GenConfig(max_tokens=int(config.parse_max_tokens)),
                              max_errors=int(config.max_errors), seed=config.seed)
    write_jsonl(os.path.join(workdir, "predictions.jsonl"), out.pop("predictions"))
    results.update(model=info["name"], backend_kind=info["kind"], gen_config=gen.to_dict(), deviations=deviations,
                   **out)
    table = format_table(results)
    print(table, flush=True)
    with open(os.path.join(workdir, "table.txt"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    return results


def replay_metrics(trace_path: str) -> dict:
    """`experiments.replay_metrics` hook: `{rules: {reference, robust}}` recomputed from traces.jsonl alone (each
    reply re-extracted with both rules; `parse` mode's second model is not in the trace) with the run's order
    set and bootstrap seed (DIR/config.json); they must equal results.json's `rules`."""

    from humanai_jax.methods.motivebench.orders import orders

    run_dir = os.path.dirname(os.path.abspath(trace_path))
    config = experiment.read_config(run_dir)
    n_orders = len(orders(config["permutations"]))
    rules = runner.scores_from_traces(trace_path, n_orders, seed=int(config["seed"]))
    return {"metrics": {"rules": rules}, "results": os.path.join(run_dir, "results.json"), "key": ""}
