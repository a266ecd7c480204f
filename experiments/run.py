r"""The one entry point for every experiment.

  python -m experiments.run --config configs/<name>.py[:variant] --workdir DIR [--config.key=value]

The config is locked: an override naming a field that does not exist fails and lists the valid
fields. The config's `experiment` field names a module `experiments.<experiment>` that defines
`run(config, workdir) -> dict`; the returned headline metrics are written to `DIR/results.json`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

from humanai_jax import experiment

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, optionally with `:variant`.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.mark_flags_as_required(["config", "workdir"])


def run_experiment(config, workdir: str) -> dict:
    """Runs `config.experiment` in `workdir`; writes config.json and results.json. Usable from tests."""
    os.makedirs(workdir, exist_ok=True)
    if "experiment" not in config:
        raise ValueError("The config has no `experiment` field naming the module under experiments/ to run.")
    experiment.write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
    module = importlib.import_module(f"experiments.{config.experiment}")
    start = time.time()
    results = dict(module.run(config, workdir))
    results.setdefault("wall_time_s", time.time() - start)
    path = experiment.write_results(workdir, results)
    logging.info("Wrote %s", path)
    return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    results = run_experiment(_CONFIG.value, _WORKDIR.value)
    print(json.dumps(experiment.to_jsonable(results), indent=2, sort_keys=True))


if __name__ == "__main__":
    sys.exit(app.run(main))
