r"""Results are generated, never typed: builds the headline tables of BENCHMARKS.md and the docs from runs.

  python -m experiments.report --runs DIR [--runs DIR2 ...]            # print the tables
  python -m experiments.report --runs DIR --write                     # rewrite them between the markers
  python -m experiments.report --runs DIR --write --allow-mixed-commits

Reads every `results.json` under the `--runs` folders (each run dir also holds its `config.json`; both
written by `python -m experiments.run`), groups the runs by experiment and variant (the `--config` spec
and overrides recorded in the results' `provenance` stamp, seeds left out), aggregates each metric over
the seeds (mean ± std with the number of seeds; an exact Clopper-Pearson 95% CI over the pooled counts
where the results carry counts) and writes each table named in `TABLES` between its markers

  <!-- report:NAME:begin -->
  ... generated, replaced on every --write ...
  <!-- report:NAME:end -->

in README.md, BENCHMARKS.md and docs/*.md. Hand-written prose outside the markers is left alone; a marker
pair whose table has no runs is left unchanged (with a warning). Every row names the commit and the date of
its runs; a table refuses to mix runs from different commits unless `--allow-mixed-commits`.
See docs/results.md.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import os
import pathlib
import re
import sys
from collections.abc import Iterable
from typing import Any

from humanai_jax.eval import stats
from humanai_jax.provenance import is_seed_key

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_FILES = ("README.md", "BENCHMARKS.md", "docs/*.md")
MARKER = re.compile(r"(<!-- report:(?P<name>[\w.-]+):begin -->)(?P<body>.*?)(<!-- report:(?P=name):end -->)", re.S)
ANY_MARKER = re.compile(r"<!-- report:([\w.-]+):(begin|end) -->")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)  # fenced code blocks: markers there are examples


class ReportError(Exception):
    """A refusal with a message for the user (mixed commits, malformed markers, unknown table)."""


# ------------------------------------------------------------------------------------------- tables
@dataclasses.dataclass(frozen=True)
class Metric:
    """One column: the value at `key` of results.json (a top-level key, or a dotted path into nested dicts).

    fmt: "pct" (a fraction shown in %), "float" (`digits` decimals), "int", "sci", "setting" (a chosen
    setting such as {"epochs": 16}, shown as `epochs 16`; distinct settings across runs joined with " / ").
    count_key: the results key holding the number of trials behind a "pct" value; then each run carries
    k = round(value * n) successes and the cell adds an exact 95% CI over the pooled counts.
    """

    label: str
    key: str
    fmt: str = "float"
    digits: int = 3
    count_key: str | None = None


@dataclasses.dataclass(frozen=True)
class Table:
    experiment: str  # config.json's `experiment` field (the module under experiments/)
    metrics: tuple[Metric, ...]
    title: str = ""


WALL = Metric("wall time (s)", "provenance.wall_time_s", "float", 0)
TABLES: dict[str, Table] = {
    "lm": Table("lm", (
        Metric("first loss", "first_loss"),
        Metric("final loss", "final_loss"),
        Metric("eval loss", "final_eval_loss"),
        Metric("eval ppl", "final_eval_ppl", digits=2),
        Metric("tokens/s", "tokens_per_s", "float", 0),
        WALL,
    ), "Generic causal LM (`configs/lm.py`)"),
    "sad": Table("sad", (
        Metric("SaD R@20 (honest)", "protocols.honest.sad.recall@20", digits=4),
        Metric("SaD NDCG@20 (honest)", "protocols.honest.sad.ndcg@20", digits=4),
        Metric("dense alone R@20 (honest)", "protocols.honest.dense_alone.recall@20", digits=4),
        Metric("dense+S→D R@20 (honest)", "protocols.honest.dense_s2d.recall@20", digits=4),
        Metric("SLIM R@20 (honest)", "protocols.honest.sparse_alone.recall@20", digits=4),
        Metric("SLIM after D→S R@20 (honest)", "protocols.honest.sparse_d2s.recall@20", digits=4),
        Metric("EASE R@20 (honest)", "protocols.honest.ease.recall@20", digits=4),
        Metric("ItemKNN R@20 (honest)", "protocols.honest.itemknn.recall@20", digits=4),
        Metric("SaD R@20 (BARS, test-selected)", "protocols.bars.sad.recall@20", digits=4),
        Metric("EASE R@20 (BARS, test-selected)", "protocols.bars.ease.recall@20", digits=4),
        WALL,
    ), "SaD on ML-1M, both protocols (`configs/sad.py:table`)"),
    "plus": Table("plus", (
        Metric("PLUS unseen", "methods.plus.unseen_accuracy", "pct"),
        Metric("untrained unseen", "methods.untrained.unseen_accuracy", "pct"),
        Metric("BTL unseen", "methods.btl.unseen_accuracy", "pct"),
        Metric("in-context unseen", "methods.in_context.unseen_accuracy", "pct"),
        Metric("oracle unseen", "methods.oracle.unseen_accuracy", "pct"),
        Metric("PLUS seen", "methods.plus.seen_accuracy", "pct"),
        Metric("context rule unseen", "rule_accuracy.unseen_context_rule", "pct"),
        Metric("user-blind rule unseen", "rule_accuracy.unseen_majority_rule", "pct"),
        Metric("transfer: PLUS summaries", "transfer.plus.unseen_accuracy", "pct"),
        Metric("transfer: untrained summaries", "transfer.untrained.unseen_accuracy", "pct"),
        Metric("RM updates", "rm_updates", "int"),
        WALL,
    ), "PLUS on Attributes, held-out attribute combinations (`configs/plus.py:table`)"),
    "humanllm": Table("humanllm", (
        Metric("model, rank", "item_selection.model_rank.accuracy", "pct", count_key="item_selection.model_rank.n"),
        Metric("model, generation (paper)", "item_selection.model_generate.accuracy", "pct",
               count_key="item_selection.model_generate.n"),
        Metric("popularity", "item_selection.popularity.accuracy", "pct", count_key="item_selection.popularity.n"),
        Metric("EASE", "item_selection.ease.accuracy", "pct", count_key="item_selection.ease.n"),
        Metric("ItemKNN", "item_selection.itemknn.accuracy", "pct", count_key="item_selection.itemknn.n"),
        Metric("SASRec", "item_selection.sasrec.accuracy", "pct", count_key="item_selection.sasrec.n"),
        Metric("genre", "item_selection.genre.accuracy", "pct", count_key="item_selection.genre.n"),
        Metric("random", "item_selection.random.accuracy", "pct", count_key="item_selection.random.n"),
        Metric("rating RMSE, model (expected)", "rating.model_expected.rmse"),
        Metric("rating RMSE, bias model", "rating.bias.rmse"),
        Metric("rating RMSE, global mean", "rating.global_mean.rmse"),
        Metric("writing NLL/token, model", "writing.model.nll_per_token"),
        Metric("writing NLL/token, bigram", "writing.bigram.nll_per_token"),
        Metric("writing NLL/token, unigram", "writing.unigram.nll_per_token"),
        WALL,
    ), "HumanLLM on MovieLens-100K held-out users (item selection, rating) and Blogger posts (writing) "
       "(`configs/humanllm_sft.py`)"),
    "motivebench": Table("motivebench", (
        Metric("MR (robust)", "rules.robust.overall.MR.mean", "pct", count_key="rules.robust.overall.MR.n"),
        Metric("BR (robust)", "rules.robust.overall.BR.mean", "pct", count_key="rules.robust.overall.BR.n"),
        Metric("MBR (robust)", "rules.robust.overall.MBR.mean", "pct", count_key="rules.robust.overall.MBR.n"),
        Metric("all three (robust)", "rules.robust.overall.all.mean", "pct"),
        Metric("MR (reference rule)", "rules.reference.overall.MR.mean", "pct"),
        Metric("invalid (robust)", "rules.robust.overall.invalid_rate", "pct"),
        Metric("longest-option MR", "baselines.longest.overall.MR.mean", "pct"),
        Metric("overlap MR", "baselines.overlap.overall.MR.mean", "pct"),
        Metric("first-option MR", "baselines.first.overall.MR.mean", "pct"),
        WALL,
    ), "MotiveBench (`configs/motivebench.py`)"),
    "learnarena": Table("learnarena", (
        Metric("win rate (model)", "overall.model.win_rate", "pct", count_key="overall.model.rounds"),
        Metric("judge score (model)", "overall.model.mean_score", digits=2),
        Metric("with concept", "overall.with_concept.win_rate", "pct"),
        Metric("without concept", "overall.without_concept.win_rate", "pct"),
        Metric("with experience", "overall.with_experience.win_rate", "pct"),
        Metric("without experience", "overall.without_experience.win_rate", "pct"),
        Metric("random-move baseline", "overall.baseline_random.win_rate", "pct"),
        Metric("heuristic baseline", "overall.baseline_heuristic.win_rate", "pct"),
        WALL,
    ), "LearnArena (`configs/learnarena.py`)"),
    "namegen": Table("namegen", (
        Metric("CMOC", "CMOC", digits=2),
        Metric("EMOC_w", "EMOC_w", digits=2),
        Metric("IMOC", "IMOC", digits=2),
        Metric("Acc", "Acc", digits=1),
        Metric("CRC", "CRC", digits=1),
        Metric("LR", "LR", digits=1),
        Metric("failed", "n_failed", "int"),
        Metric("plumbing (numbers mean nothing)", "plumbing", "int"),
        WALL,
    ), "NAMeGEn on CBNames (`configs/namegen.py`)"),
    "trendsim": Table("trendsim", (
        Metric("dE 1%", "sweep.share_1.dE"), Metric("dE 3%", "sweep.share_3.dE"),
        Metric("dE 10%", "sweep.share_10.dE"), Metric("dE 30%", "sweep.share_30.dE"),
        Metric("dS 30%", "sweep.share_30.dS"), Metric("E final (clean)", "sweep.share_0.E_final"),
        Metric("moderation F1 t=0", "moderation.split_0.f1"), Metric("moderation FPR t=0", "moderation.split_0.fpr"),
        Metric("moderation gain t=0", "moderation.split_0.gain_vs_none"),
        WALL,
    ), "TrendSim, rule policy (`configs/trendsim.py:sweep`)"),
    "genmentor": Table("genmentor", (
        Metric("goal-to-skill F1", "headline.g2s_f1"), Metric("F1 strict (name + level)", "headline.g2s_f1_strict"),
        Metric("BM25 F1", "headline.bm25_f1"), Metric("BM25 strict", "headline.bm25_f1_strict"),
        Metric("nearest-goal F1", "headline.knn_f1"), Metric("nearest-goal strict", "headline.knn_f1_strict"),
        Metric("failed learners", "headline.tutoring_failed", "int"),
        WALL,
    ), "GenMentor goal-to-skill on held-out goals (`configs/genmentor.py`)"),
    "reclm": Table("reclm", (
        Metric("cgen HR@10", "methods.cgen.hr@10", digits=4), Metric("cgen NDCG@10", "methods.cgen.ndcg@10", digits=4),
        Metric("cgen OOD@10", "methods.cgen.ood@10", digits=2),
        Metric("cgen HR@10 without the trie", "methods.cgen.unconstrained_hr@10", digits=4),
        Metric("cgen OOD@10 without the trie", "methods.cgen.unconstrained_ood@10", digits=2),
        Metric("ret HR@10", "methods.ret.hr@10", digits=4), Metric("ret NDCG@10", "methods.ret.ndcg@10", digits=4),
        Metric("SASRec HR@10", "methods.sasrec.hr@10", digits=4),
        Metric("SASRec NDCG@10", "methods.sasrec.ndcg@10", digits=4),
        Metric("popularity HR@10", "methods.popularity.hr@10", digits=4),
        Metric("popularity NDCG@10", "methods.popularity.ndcg@10", digits=4),
        WALL,
    ), "RecLM on ML-100K, leave-one-out (`configs/reclm.py`)"),
    "oversight": Table("oversight", (
        Metric("weak", "acc_weak"), Metric("strong ceiling", "acc_strong"),
        Metric("w2s xent", "acc_w2s.xent"), Metric("w2s logconf", "acc_w2s.logconf"),
        Metric("w2s product", "acc_w2s.product"),
        Metric("PGR xent", "pgr.xent"), Metric("PGR logconf", "pgr.logconf"), Metric("PGR product", "pgr.product"),
        Metric("majority class", "acc_majority_baseline"),
        Metric("xent setting (chosen on val)", "selected.xent", "setting"),
        Metric("logconf setting (chosen on val)", "selected.logconf", "setting"),
        WALL,
    ), "Weak-to-strong (`configs/oversight.py`)"),
}


# ------------------------------------------------------------------------------------------- runs
@dataclasses.dataclass
class Run:
    path: pathlib.Path
    experiment: str
    variant: str
    results: dict
    provenance: dict

    @property
    def commit(self) -> str:
        return self.provenance.get("commit") or "unknown"

    @property
    def seed_key(self) -> tuple:
        return tuple(sorted((k, json.dumps(v)) for k, v in self.provenance.get("seeds", {}).items()))

    @property
    def seed_label(self) -> str:
        seeds = self.provenance.get("seeds", {})
        if not seeds:
            return "?"
        values = {json.dumps(v) for v in seeds.values()}
        if len(values) == 1:  # e.g. {"seed": 0, "data.seed": 0}
            return values.pop()
        return " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(seeds.items()))


def _is_seed_key(key: str) -> bool:
    return is_seed_key(key.rsplit(".", 1)[-1])


def variant_of(provenance: dict, config: dict) -> str:
    """The run's variant: the `--config` spec's argument and the overrides, seed entries left out."""
    spec = provenance.get("config")
    parts: list[str] = []
    if spec:
        arg = spec.partition(":")[2]
        parts = [t.strip() for t in arg.split(",") if t.strip() and not _is_seed_key(t.split("=", 1)[0].strip())]
    elif config.get("variant"):
        parts = [str(config["variant"])]
    for key, value in sorted((provenance.get("overrides") or {}).items()):
        if not _is_seed_key(key):
            parts.append(f"{key}={json.dumps(value) if not isinstance(value, str) else value}")
    return ",".join(parts) or "default"


def load_runs(roots: Iterable[str | os.PathLike], *, warn=print) -> list[Run]:
    """Every run (a folder with results.json) under `roots`; runs without a provenance stamp are skipped
    with a warning (they predate the stamp, or were not written by experiments/run.py)."""
    runs = []
    for root in roots:
        root = pathlib.Path(root)
        if not root.exists():
            raise ReportError(f"--runs {root} does not exist")
        for results_file in sorted(root.rglob("results.json")):
            run_dir = results_file.parent
            results = json.loads(results_file.read_text())
            stamp = results.get("provenance")
            if not isinstance(stamp, dict):
                warn(f"skipping {run_dir}: results.json has no provenance stamp (re-run it with experiments.run)")
                continue
            config_file = run_dir / "config.json"
            config = json.loads(config_file.read_text()) if config_file.exists() else {}
            experiment = config.get("experiment")
            if not experiment:
                warn(f"skipping {run_dir}: no config.json with an `experiment` field next to results.json")
                continue
            runs.append(Run(run_dir, experiment, variant_of(stamp, config), results, stamp))
    return runs


# ------------------------------------------------------------------------------------------- cells
def lookup(results: dict, key: str) -> Any:
    """results[key] if present, else the dotted path (`stages.sad.recall@20`); None when absent."""
    if key in results:
        return results[key]
    node: Any = results
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _fmt(value: float, metric: Metric, *, bare: bool = False) -> str:
    if metric.fmt == "pct":
        return f"{100 * value:.1f}" + ("" if bare else "%")
    if metric.fmt == "int":
        return f"{value:,.0f}"
    if metric.fmt == "sci":
        return f"{value:.3g}"
    return f"{value:.{metric.digits}f}"


def seed_values(value: Any) -> list[float]:
    """The per-seed numbers behind one results value: a number is one seed; a `{mean, std, per_seed}` dict
    (a `:table` variant that ran its seeds inside one run) is its `per_seed` list. [] when neither."""
    if isinstance(value, dict) and isinstance(value.get("per_seed"), list):
        xs = [_number(v) for v in value["per_seed"]]
        return [x for x in xs if x is not None]
    x = _number(value)
    return [] if x is None else [x]


def setting_cell(runs: list[Run], metric: Metric) -> str:
    """The distinct values of a chosen setting ({name: value} or a scalar) across the runs."""
    shown = []
    for run in runs:
        value = lookup(run.results, metric.key)
        if value is None:
            continue
        text = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
        if text not in shown:
            shown.append(text)
    return " / ".join(shown) or "—"


def cell(runs: list[Run], metric: Metric) -> str:
    """mean ± std (n seeds) over the runs that have the metric; with counts, the pooled exact 95% CI.

    Seeds come from separate runs or from one run's `{mean, std, per_seed}` value (both pooled)."""
    if metric.fmt == "setting":
        return setting_cell(runs, metric)
    if any(isinstance(lookup(run.results, metric.key), dict) for run in runs):
        xs = [x for run in runs for x in seed_values(lookup(run.results, metric.key))]
        if not xs:
            return "—"
        agg = stats.mean_std(xs)
        if agg.n == 1:
            return _fmt(agg.mean, metric)
        unit = "%" if metric.fmt == "pct" else ""
        return f"{_fmt(agg.mean, metric, bare=True)} ± {_fmt(agg.std, metric, bare=True)}{unit} (n={agg.n})"
    values = [(run, _number(lookup(run.results, metric.key))) for run in runs]
    values = [(run, v) for run, v in values if v is not None]
    if not values:
        return "—"
    xs = [v for _, v in values]
    agg = stats.mean_std(xs)  # sample std (ddof = 1) over seeds
    if agg.n == 1:
        text = _fmt(agg.mean, metric)
    else:
        unit = "%" if metric.fmt == "pct" else ""
        text = f"{_fmt(agg.mean, metric, bare=True)} ± {_fmt(agg.std, metric, bare=True)}{unit} (n={agg.n})"
    if metric.count_key:
        counts = [_number(lookup(run.results, metric.count_key)) for run, _ in values]
        if all(c is not None and c > 0 for c in counts):
            n = int(sum(counts))
            k = int(sum(round(v * c) for (_, v), c in zip(values, counts)))
            lo, hi = stats.binomial_ci(k, n)
            pooled = "pooled " if len(xs) > 1 else ""
            text += f" ({pooled}95% CI {100 * lo:.1f}-{100 * hi:.1f}, {k}/{n})"
    return text


def _commit_label(runs: list[Run]) -> str:
    commits = sorted({run.commit for run in runs})
    dirty = any(run.provenance.get("dirty") for run in runs)
    label = ", ".join(f"`{c[:10]}`" if c != "unknown" else "unknown" for c in commits)
    return label + (" (dirty tree)" if dirty else "")


def _date_label(runs: list[Run]) -> str:
    days = sorted({str(run.provenance.get("date") or "?")[:10] for run in runs})
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def check_commits(name: str, runs: list[Run], allow_mixed: bool) -> None:
    by_commit: dict[str, list[str]] = collections.defaultdict(list)
    for run in runs:
        by_commit[run.commit].append(str(run.path))
    if len(by_commit) > 1 and not allow_mixed:
        lines = "\n".join(f"  {commit}: {', '.join(sorted(paths))}" for commit, paths in sorted(by_commit.items()))
        raise ReportError(
            f"table {name!r} would mix runs from {len(by_commit)} commits:\n{lines}\n"
            "Re-run them at one commit, or pass --allow-mixed-commits (each row then lists its commits).")


def dedupe_seeds(runs: list[Run], warn=print) -> list[Run]:
    """One run per (variant, seeds): the newest by date; repeated runs of one seed would weigh it twice."""
    newest: dict[tuple, Run] = {}
    for run in sorted(runs, key=lambda r: str(r.provenance.get("date") or "")):
        key = (run.variant, run.seed_key)
        if key in newest:
            warn(f"{run.experiment}/{run.variant}: seeds {run.seed_label} ran twice; using {run.path}, "
                 f"not {newest[key].path}")
        newest[key] = run
    return list(newest.values())


def render_table(name: str, runs: list[Run], *, allow_mixed_commits: bool = False, warn=print) -> str | None:
    """The markdown table `name` from the runs of its experiment (None when there are none)."""
    if name not in TABLES:
        raise ReportError(f"unknown report table {name!r}; tables: {sorted(TABLES)}")
    table = TABLES[name]
    mine = dedupe_seeds([r for r in runs if r.experiment == table.experiment], warn=warn)
    if not mine:
        return None
    check_commits(name, mine, allow_mixed_commits)
    groups: dict[str, list[Run]] = collections.defaultdict(list)
    for run in mine:
        groups[run.variant].append(run)
    header = ["variant", *[m.label for m in table.metrics], "seeds", "commit", "date"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant in sorted(groups):
        group = sorted(groups[variant], key=lambda r: r.seed_label)
        seeds = "; ".join(run.seed_label for run in group)
        row = [f"`{variant}`", *[cell(group, m) for m in table.metrics], seeds, _commit_label(group),
               _date_label(group)]
        lines.append("| " + " | ".join(row) + " |")
    machines = sorted({_machine_label(run.provenance.get("machine") or {}) for run in mine})
    note = (f"Generated by `python -m experiments.report` from {len(mine)} run(s) "
            f"(mean ± std over seeds, n = number of seeds); machine: {'; '.join(machines)}. Do not edit by hand.")
    return "\n".join(lines) + "\n\n" + note


def _machine_label(m: dict) -> str:
    device = m.get("device_kind") or m.get("backend") or "?"
    return f"{m.get('device_count', '?')}x {device}, {m.get('cpu_count', '?')} CPUs, jax {m.get('jax', '?')}"


# ------------------------------------------------------------------------------------------- markers
def replace_markers(text: str, tables: dict[str, str | None], *, where: str = "<text>", warn=print) -> str:
    """Replaces the body of every `report:NAME` marker pair whose table is in `tables` (and not None).

    The generated body is surrounded by one blank line on each side, so a second pass with the same
    tables returns the same text (idempotent). Unpaired or nested markers raise ReportError. Markers inside
    fenced code blocks (```) are examples in prose and are left alone.
    """
    fences = [f.span() for f in FENCE.finditer(text)]
    in_fence = lambda pos: any(start <= pos < end for start, end in fences)
    stack: list[str] = []
    for m in ANY_MARKER.finditer(text):
        if in_fence(m.start()):  # a marker shown in a code block is documentation, not a marker
            continue
        name, kind = m.group(1), m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        if kind == "begin":
            if stack:
                raise ReportError(f"{where}:{line}: marker report:{name}:begin inside report:{stack[-1]}")
            stack.append(name)
        else:
            if not stack or stack[-1] != name:
                raise ReportError(f"{where}:{line}: report:{name}:end without its report:{name}:begin")
            stack.pop()
    if stack:
        raise ReportError(f"{where}: report:{stack[-1]}:begin has no report:{stack[-1]}:end")

    def substitute(m: re.Match) -> str:
        if in_fence(m.start()):
            return m.group(0)
        name = m.group("name")
        if name not in TABLES:
            raise ReportError(f"{where}: unknown report table {name!r} in a marker; tables: {sorted(TABLES)}")
        body = tables.get(name)
        if body is None:
            warn(f"{where}: no runs for table {name!r}; left unchanged")
            return m.group(0)
        return f"{m.group(1)}\n\n{body.strip()}\n\n{m.group(4)}"

    return MARKER.sub(substitute, text)


def marker_files(root: pathlib.Path, patterns: Iterable[str] = DEFAULT_FILES) -> list[pathlib.Path]:
    files: list[pathlib.Path] = []
    for pattern in patterns:
        files.extend(sorted(root.glob(pattern)))
    return [f for f in files if f.is_file()]


def build_tables(runs: list[Run], *, allow_mixed_commits: bool = False, warn=print) -> dict[str, str | None]:
    return {name: render_table(name, runs, allow_mixed_commits=allow_mixed_commits, warn=warn) for name in TABLES}


def write_reports(tables: dict[str, str | None], files: Iterable[pathlib.Path], *, write: bool,
                  warn=print) -> list[pathlib.Path]:
    """Rewrites the marker blocks of `files` (only when `write`); returns the files that change."""
    changed = []
    for file in files:
        text = file.read_text()
        if not ANY_MARKER.search(text):
            continue
        new = replace_markers(text, tables, where=str(file), warn=warn)
        if new != text:
            changed.append(file)
            if write:
                file.write_text(new)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", action="append", required=True,
                        help="folder holding run dirs (searched recursively for results.json); repeatable")
    parser.add_argument("--write", action="store_true", help="rewrite the marker blocks in the files")
    parser.add_argument("--allow-mixed-commits", action="store_true",
                        help="let a table hold runs from different commits (each row lists its commits)")
    parser.add_argument("--files", nargs="*", default=list(DEFAULT_FILES),
                        help=f"globs, relative to --root, of the files holding markers (default: {DEFAULT_FILES})")
    parser.add_argument("--root", default=str(REPO_ROOT), help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    warn = lambda message: print(f"report: {message}", file=sys.stderr)
    try:
        runs = load_runs(args.runs, warn=warn)
        tables = build_tables(runs, allow_mixed_commits=args.allow_mixed_commits, warn=warn)
        for name, body in tables.items():
            if body is not None:
                print(f"## {name}: {TABLES[name].title}\n\n{body}\n")
        changed = write_reports(tables, marker_files(pathlib.Path(args.root), args.files), write=args.write,
                                warn=warn)
    except ReportError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    verb = "rewrote" if args.write else "would rewrite (pass --write)"
    print(f"{verb}: {', '.join(str(f) for f in changed) or 'nothing (no marker block changes)'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
