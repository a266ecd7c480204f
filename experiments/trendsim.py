r"""TrendSim under poisoning attacks: clean vs attacked runs per seed, a moderation sweep, docs/trendsim.md §10 metrics
from traces, plots and results.json (docs/trendsim.md).

  python -m experiments.run --config configs/trendsim.py[:sweep|:llm] --workdir DIR

Layout: DIR/runs/<name>/{traces.jsonl, state.json, final_state.json} per simulation (a finished run is
reused, an unfinished one resumes from its checkpoint), DIR/plots/*.png, DIR/results.json with
`sweep.share_<pct>.<metric>.{mean,std,n,per_seed}`, `moderation.<split>.<metric>...` (with `gain_vs_none`:
E(defended) - E(undefended) paired by seed), `monotone_dE`, `runs`.
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from humanai_jax.eval.stats import mean_std
from humanai_jax.experiment import write_json
from humanai_jax.methods.trendsim import backends, data, metrics, rules
from humanai_jax.methods.trendsim.simulator import SimConfig, Simulator, population_for_share

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _floats(spec: str) -> list[float]:
    return [float(x) for x in spec.split(",") if x.strip()]


def _pct(x: float) -> int:
    return int(round(100 * x))


def simulate(name: str, sim_cfg: SimConfig, post, users, backend, workdir: str) -> list[dict]:
    """Runs (or resumes, or reuses) one simulation; returns its trace events."""
    run_dir = os.path.join(workdir, "runs", name)
    final = os.path.join(run_dir, "final_state.json")
    if os.path.exists(final):  # reuse a finished run, but never one of another config
        with open(final, encoding="utf-8") as f:
            done = json.load(f)
        if (done["configuration"], done["post_index"], done["backend"]) != (sim_cfg.to_json(), post.index,
                                                                             backend.name):
            raise ValueError(f"{final} was written by another configuration or backend ({done['backend']}); "
                             "use a fresh workdir")
    else:
        Simulator(sim_cfg, post, users, backend, run_dir, resume=True, name=name).run()
    return metrics.read_events(os.path.join(run_dir, "traces.jsonl"))


def replay_metrics(trace_path: str) -> dict:
    """Hook of `python -m experiments.replay_metrics --trace DIR/runs/<name>/traces.jsonl`: the run's summary
    (engagement, exposure, moderation, decisions, arrivals, E/S final) recomputed from its trace alone, to be
    checked against `runs.<name>` of DIR/results.json (hourly curves live in DIR/curves.json, not compared)."""
    run_dir = pathlib.Path(trace_path).resolve().parent
    if run_dir.parent.name != "runs":
        raise ValueError(f"{trace_path}: expected DIR/runs/<name>/traces.jsonl (the layout experiments.trendsim writes)")
    summary = metrics.summarize(metrics.read_events(str(trace_path)))
    return {"metrics": {k: v for k, v in summary.items() if k != "curves"},
            "results": str(run_dir.parent.parent / "results.json"), "key": f"runs.{run_dir.name}"}


def _stat(values: list[float | None]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "per_seed": values}
    ms = mean_std(vals)
    return {"mean": ms.mean, "std": ms.std if len(vals) > 1 else 0.0, "n": len(vals), "per_seed": values}


def _exposure_by_hour(events: list[dict], window_s: int) -> list[float | None]:
    bins: list[list[float]] = [[] for _ in range(window_s // 3600 + 1)]
    for e in events:
        if e["name"] == "main_view" and e["data"]["type"] == "normal" and e["data"]["types"]:
            types = e["data"]["types"]
            bins[e["time"] // 3600].append(sum(t != "normal" for t in types) / len(types))
    return [float(np.mean(b)) if b else None for b in bins]


def run(config, workdir: str) -> dict:
    data_dir = config.data_dir or str(REPO_ROOT.parent / "shared" / "data" / "trendsim")
    posts = data.load_tweets(os.path.join(data_dir, "tweets.csv"))
    users = data.load_users(os.path.join(data_dir, "user_1000.csv"))
    post = data.tweet_by_index(posts, int(config.tweet_index))
    lang = config.sim.lang
    backend, info = backends.build_backend(config.backend, seed=int(config.seed), lang=lang)
    seeds = [int(config.seed) + i for i in range(int(config.n_seeds))]
    shares = [s for s in _floats(config.attack_shares) if s > 0]
    splits = [s.strip() for s in config.moderation_sweep.split(",") if s.strip()]
    base = dict(config.sim)
    keywords = rules.load_rules()["interest_keywords"]

    def sim_cfg(seed, share, moderation, split_time=0.0):
        return SimConfig(population=population_for_share(int(config.n_agents), share), seed=seed,
                         moderation=moderation, split_time=split_time, **base)

    per_seed: dict = {}
    run_summaries: dict = {}
    for seed in seeds:
        clean = simulate(f"s{seed}_clean", sim_cfg(seed, 0.0, False), post, users, backend, workdir)
        run_summaries[f"s{seed}_clean"] = metrics.summarize(clean)
        per_seed[seed] = {"clean": clean, "share": {}, "moderation": {}}
        for share in shares:
            name = f"s{seed}_share{_pct(share)}" + ("_mod" if config.share_moderation else "")
            ev = simulate(name, sim_cfg(seed, share, bool(config.share_moderation)), post, users, backend, workdir)
            per_seed[seed]["share"][share] = (ev, metrics.compare(ev, clean, keywords))
            run_summaries[name] = metrics.summarize(ev)
        for split in splits:
            moderated = split != "none"
            name = f"s{seed}_share{_pct(config.moderation_share)}_split" + (str(_pct(float(split))) if moderated
                                                                            else "none")
            ev = simulate(name, sim_cfg(seed, float(config.moderation_share), moderated,
                                        float(split) if moderated else 0.0), post, users, backend, workdir)
            per_seed[seed]["moderation"][split] = (ev, metrics.compare(ev, clean, keywords))
            run_summaries[name] = metrics.summarize(ev)

    results: dict = {"backend": info["name"], "backend_kind": info["kind"], "post_index": post.index,
                     "n_agents": int(config.n_agents), "seeds": seeds, "attack_shares": shares,
                     "moderation_share": float(config.moderation_share), "share_moderation": bool(config.share_moderation),
                     "lang": lang, "label": "plumbing (tiny LM is not a chat model)" if info["kind"] == "project"
                     else ("rule policy" if info["kind"] == "rules" else "LLM")}
    sweep = {}
    for share in shares:
        cmp = [per_seed[s]["share"][share][1] for s in seeds]
        summ = [metrics.summarize(per_seed[s]["share"][share][0]) for s in seeds]
        groups = sorted({g for c in cmp for g in c.get("vulnerability", {})})
        sweep[f"share_{_pct(share)}"] = {
            "dE": _stat([c["dE"] for c in cmp]), "dS": _stat([c["dS"] for c in cmp]),
            "dE_paired": _stat([c["dE_paired"] for c in cmp]), "dS_paired": _stat([c["dS_paired"] for c in cmp]),
            "E_final": _stat([m["E_final"] for m in summ]), "S_final": _stat([m["S_final"] for m in summ]),
            "first_page_attacker_share": _stat([m["exposure"]["first_page_attacker_share"] for m in summ]),
            "final_hot_attacker_share": _stat([m["exposure"]["final_hot_attacker_share"] for m in summ]),
            "attacker_comments_read_per_user": _stat([m["exposure"]["attacker_comments_read_per_user"]
                                                      for m in summ]),
            "views": _stat([m["engagement"]["views"] for m in summ]),
            "likes": _stat([m["engagement"]["likes"] for m in summ]),
            "comments": _stat([m["engagement"]["comments"] for m in summ]),
            "invalid_decision_rate": _stat([m["decisions"]["invalid_decision_rate"] for m in summ]),
            "vulnerability": {g: _stat([c.get("vulnerability", {}).get(g, {}).get("dE_paired") for c in cmp])
                              for g in groups}}
    clean_summ = [run_summaries[f"s{s}_clean"] for s in seeds]
    sweep["share_0"] = {"E_final": _stat([m["E_final"] for m in clean_summ]),
                        "S_final": _stat([m["S_final"] for m in clean_summ]),
                        "views": _stat([m["engagement"]["views"] for m in clean_summ]),
                        "likes": _stat([m["engagement"]["likes"] for m in clean_summ]),
                        "comments": _stat([m["engagement"]["comments"] for m in clean_summ])}
    if info["kind"] == "rules":  # the page tone the rule policy's reflection acts on (docs: why dE saturates)
        suffix = "_mod" if config.share_moderation else ""
        for share in shares:
            tones = [rules.page_tone(os.path.join(workdir, "runs", f"s{s}_share{_pct(share)}{suffix}", "traces.jsonl"),
                                     lang) for s in seeds]
            sweep[f"share_{_pct(share)}"].update({k: _stat([t[k] for t in tones])
                                                  for k in ("main_page_negativity", "main_page_hostility")})
        tones = [rules.page_tone(os.path.join(workdir, "runs", f"s{s}_clean", "traces.jsonl"), lang) for s in seeds]
        sweep["share_0"].update({k: _stat([t[k] for t in tones]) for k in ("main_page_negativity",
                                                                           "main_page_hostility")})
    results["sweep"] = sweep
    curve = [0.0] + [sweep[f"share_{_pct(s)}"]["dE"]["mean"] for s in sorted(shares)]
    results["dE_curve"] = {"shares": [0.0] + sorted(shares), "dE_mean": curve}
    results["monotone_dE"] = bool(all(b <= a for a, b in zip(curve[:-1], curve[1:])))
    moderation = {}
    for split in splits:
        cmp = [per_seed[s]["moderation"][split][1] for s in seeds]
        mods = [metrics.moderation(per_seed[s]["moderation"][split][0]) for s in seeds]
        key = "none" if split == "none" else f"split_{_pct(float(split))}"
        moderation[key] = {"dE": _stat([c["dE"] for c in cmp]), "dS": _stat([c["dS"] for c in cmp]),
                           **{k: _stat([m[k] for m in mods]) for k in ("precision", "recall", "f1", "fpr")},
                           "tp": sum(m["tp"] for m in mods), "fp": sum(m["fp"] for m in mods),
                           "fn": sum(m["fn"] for m in mods), "tn": sum(m["tn"] for m in mods)}
    if "none" in moderation:  # the defence's own effect: E(defended) - E(undefended), paired by seed
        none = moderation["none"]["dE"]["per_seed"]
        for row in moderation.values():
            row["gain_vs_none"] = _stat([a - b for a, b in zip(row["dE"]["per_seed"], none)])
    results["moderation"] = moderation
    results["runs"] = {k: {kk: vv for kk, vv in v.items() if kk != "curves"} for k, v in run_summaries.items()}
    write_json(os.path.join(workdir, "curves.json"), {k: v["curves"] for k, v in run_summaries.items()})
    if config.plots:
        results["plots"] = make_plots(workdir, seeds, shares, splits, per_seed, run_summaries, config)
    _print_table(results)
    return results


def _print_table(results: dict) -> None:
    print(f"TrendSim ({results['label']}, backend {results['backend']}, post {results['post_index']}, "
          f"{results['n_agents']} agents, seeds {results['seeds']})")
    for key, row in results["sweep"].items():
        if "dE" in row:
            print(f"  {key:10s} dE {row['dE']['mean']:+.4f} +- {row['dE']['std']:.4f}   "
                  f"dS {row['dS']['mean']:+.4f} +- {row['dS']['std']:.4f}   E_final {row['E_final']['mean']:.4f}")
        else:
            print(f"  {key:10s} E_final {row['E_final']['mean']:.4f}")
    for key, row in results["moderation"].items():
        f = lambda s: "n/a" if s["mean"] is None else f"{s['mean']:.3f}"  # noqa: E731
        gain = row.get("gain_vs_none", {"mean": None})
        print(f"  mod {key:9s} dE {row['dE']['mean']:+.4f} +- {row['dE']['std']:.4f}  "
              f"gain {f(gain)}  P {f(row['precision'])} "
              f"R {f(row['recall'])} F1 {f(row['f1'])} FPR {f(row['fpr'])}")
    print(f"  monotone dE: {results['monotone_dE']}", flush=True)


def make_plots(workdir, seeds, shares, splits, per_seed, run_summaries, config) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = os.path.join(workdir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    s0 = seeds[0]
    window = int(config.sim.window_s)
    for key, label in (("E", "mean emotion E(t)"), ("S", "mean social confidence S(t)")):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        c = run_summaries[f"s{s0}_clean"]["curves"]
        ax.plot(c["hours"], c[key], label="clean", color="k")
        for share in shares:
            name = f"s{s0}_share{_pct(share)}" + ("_mod" if config.share_moderation else "")
            c = run_summaries[name]["curves"]
            ax.plot(c["hours"], c[key], label=f"{_pct(share)}% attackers")
        ax.set_xlabel("hours from window start")
        ax.set_ylabel(label)
        ax.set_title(f"{label}, seed {s0}")
        ax.legend()
        fig.tight_layout()
        paths.append(os.path.join(out_dir, f"{key}_t.png"))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for share in shares:
        ys = np.array([[np.nan if v is None else v for v in _exposure_by_hour(per_seed[s]["share"][share][0], window)]
                       for s in seeds])
        counts = np.isfinite(ys).sum(axis=0)
        mean = np.where(counts > 0, np.nansum(ys, axis=0) / np.maximum(counts, 1), np.nan)
        ax.plot(np.arange(ys.shape[1]), mean, marker="o", label=f"{_pct(share)}% attackers")
    ax.set_xlabel("hour")
    ax.set_ylabel("attacker share of first-page comments")
    ax.set_title("exposure (mean over seeds)")
    ax.legend()
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "exposure.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    if splits:
        labels = splits
        means = [np.mean([per_seed[s]["moderation"][k][1]["dE"] for s in seeds]) for k in labels]
        stds = [np.std([per_seed[s]["moderation"][k][1]["dE"] for s in seeds], ddof=1) if len(seeds) > 1 else 0.0
                for k in labels]
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.errorbar(range(len(labels)), means, yerr=stds, marker="o", capsize=4)
        ax.set_xticks(range(len(labels)), [f"split {k}" if k != "none" else "no defence" for k in labels])
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylabel("dE vs clean")
        ax.set_title(f"moderation sweep at {_pct(config.moderation_share)}% attackers")
        fig.tight_layout()
        paths.append(os.path.join(out_dir, "moderation_sweep.png"))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    arr = run_summaries[f"s{s0}_clean"]["arrivals"]
    if arr.get("observed"):
        edges = np.array(arr["bin_edges"])
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.bar(edges[:-1], arr["observed"], width=np.diff(edges), align="edge", alpha=0.6, label="sampled x")
        ax.step(edges[:-1], arr["expected"], where="post", color="k", label="density mass")
        ax.set_xlabel("x")
        ax.legend()
        ax.set_title(f"arrival draws vs density (TV {arr['tv_distance']:.3f})")
        fig.tight_layout()
        paths.append(os.path.join(out_dir, "arrivals.png"))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return [os.path.relpath(p, workdir) for p in paths]

