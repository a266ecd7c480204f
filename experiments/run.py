r"""The one entry point for every experiment.

  python -m experiments.run --config configs/<name>.py[:variant] --workdir DIR [--config.key=value]

The config is locked: an override naming a field that does not exist fails and lists the valid
fields. The config's `experiment` field names a module `experiments.<experiment>` that defines
`run(config, workdir) -> dict`; the returned headline metrics are written to `DIR/results.json`
with a `provenance` stamp (commit, dirty tree, UTC date, machine, seeds, wall time; see
humanai_jax/provenance.py) that `python -m experiments.report` turns into the docs' tables.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

from humanai_jax import experiment, host, provenance

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, optionally with `:variant`.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.mark_flags_as_required(["config", "workdir"])


def run_experiment(config, workdir: str, *, config_spec: str | None = None, overrides: dict | None = None) -> dict:
    """Runs `config.experiment` in `workdir`; writes config.json and results.json. Usable from tests.

    results.json (and the returned dict, on process 0) carries `provenance`: `provenance.stamp(config, ...)`;
    config_spec / overrides (the command line's `--config` value and `--config.key=value` pairs) go into it.

    In a multi-host run every process runs the experiment, but only process 0 writes these files
    (the workdir is usually shared storage; checkpoints coordinate their own writes).
    """
    import jax

    from humanai_jax.train.runtime import maybe_initialize_distributed

    if "experiment" not in config:
        raise ValueError("The config has no `experiment` field naming the module under experiments/ to run.")
    # Join the other hosts before anything touches a device (process_index below does).
    train = config.get("train")
    maybe_initialize_distributed(train.get("distributed", "auto") if train is not None else "auto")
    writer = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    if writer:
        _write_config(workdir, json.loads(config.to_json_best_effort()))
    module = importlib.import_module(f"experiments.{config.experiment}")
    git_at_start = provenance.git_state() if writer else None  # the code this run imports, not the end's
    start = time.time()
    results = dict(module.run(config, workdir))
    wall = time.time() - start
    results.setdefault("wall_time_s", wall)
    if writer:
        # Results are generated, never typed: experiments/report.py builds the docs' tables from these stamps.
        results["provenance"] = provenance.stamp(config, wall_time_s=wall, config_spec=config_spec,
                                                 overrides=overrides, git_at_start=git_at_start)
        logging.info("Wrote %s", experiment.write_results(workdir, results))
    return results


def _write_config(workdir: str, config: dict) -> None:
    """WORKDIR/config.json; a different one already there (an earlier run in this workdir) is kept as
    config.<UTC time>.json rather than overwritten, so a refused resume loses nothing."""
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != config:
            kept = os.path.join(workdir, f"config.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
            os.replace(path, kept)
            logging.warning("%s differs from this run's config: the old one is kept as %s", path, kept)
    experiment.write_json(path, config)


def _load_config_file(spec: str):
    """Imports `path.py[:arg]` and returns `get_config(arg)` (as config_flags does)."""
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_config_for_validation", path)
    if module_spec is None:
        raise SystemExit(f"Config file not found: {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def check_overrides(argv: list[str]) -> None:
    """Fails early, listing the valid keys, when a `--config.a.b=v` override names no existing field.

    ml_collections would also refuse it (the config is locked) but only suggests one close match.
    """
    config_spec = None
    overrides = []
    for i, token in enumerate(argv):
        if token.startswith("--config="):
            config_spec = token.split("=", 1)[1]
        elif token == "--config" and i + 1 < len(argv):
            config_spec = argv[i + 1]
        elif token.startswith("--config."):
            overrides.append(token[len("--config."):].split("=", 1)[0])
    if not config_spec or not overrides:
        return
    config = _load_config_file(config_spec)
    for dotted in overrides:
        node = config
        for depth, key in enumerate(dotted.split(".")):
            valid = list(node.keys()) if hasattr(node, "keys") else []
            if key not in valid:
                where = ".".join(dotted.split(".")[:depth]) or "<top level>"
                raise SystemExit(
                    f"Unknown config key {dotted!r}: {key!r} is not a field of {where}. "
                    f"Valid keys there: {sorted(valid)}"
                )
            node = node[key]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config_flag = flags.FLAGS["config"]
    results = run_experiment(_CONFIG.value, _WORKDIR.value, config_spec=config_flags.get_config_filename(config_flag),
                             overrides=config_flags.get_override_values(config_flag))
    print(json.dumps(experiment.to_jsonable(results), indent=2, sort_keys=True))


if __name__ == "__main__":
    host.reexec_with_malloc_tunables()  # before any work: see humanai_jax/host.py
    check_overrides(sys.argv[1:])
    sys.exit(app.run(main))
