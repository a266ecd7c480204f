"""The experiment runner, config variant parsing and workdir files."""

import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from conftest import REPO_ROOT
from experiments import run as runner
from humanai_jax import configs, experiment

CONFIG_SOURCE = '''
import ml_collections
def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "none"
    c.optim = ml_collections.ConfigDict(dict(lr=1e-3, steps=3))
    return c
'''


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text(CONFIG_SOURCE)
    return str(path)


def test_unknown_override_lists_valid_keys(config_file):
    with pytest.raises(SystemExit, match=r"'lrr' is not a field of optim. Valid keys there: \['lr', 'steps'\]"):
        runner.check_overrides(["--config", config_file, "--config.optim.lrr=3"])
    with pytest.raises(SystemExit, match=r"Valid keys there: \['experiment', 'optim'\]"):
        runner.check_overrides([f"--config={config_file}", "--config.optimizer.lr=3"])
    runner.check_overrides(["--config", config_file, "--config.optim.lr=3"])  # valid: no error


def test_cli_rejects_misspelled_key(config_file, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.run", "--config", config_file, "--workdir", str(tmp_path / "w"),
         "--config.optim.lrr=3"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "Valid keys there: ['lr', 'steps']" in proc.stderr


def test_parse_arg_types_and_unknown_keys():
    out = configs.parse_arg("tiny,steps=7,lr=0.5,name=x", tiny=False, steps=1, lr=1.0, name="")
    assert (out.tiny, out.steps, out.lr, out.name) == (True, 7, 0.5, "x")
    assert isinstance(out.steps, int) and isinstance(out.lr, float)
    with pytest.raises(ValueError, match=r"valid arguments: \['lr', 'steps'\]"):
        configs.parse_arg("stpes=3", steps=1, lr=1.0)


def test_choose_variant():
    variants = {"tiny": {}, "big": {}}
    assert configs.choose_variant(None, variants, "tiny") == ("tiny", "")
    assert configs.choose_variant("big,steps=3", variants, "tiny") == ("big", "steps=3")
    assert configs.choose_variant("steps=3", variants, "tiny") == ("tiny", "steps=3")
    with pytest.raises(ValueError, match=r"valid variants: \['big', 'tiny'\]"):
        configs.choose_variant("huge", variants, "tiny")


def test_metrics_and_results_files(tmp_path):
    log = experiment.MetricsLog(str(tmp_path))
    log.write(1, loss=np.float32(2.5), acc=np.array(0.25))
    log.write(2, loss=1.5)
    rows = experiment.read_metrics(str(tmp_path))
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 2.5), (2, 1.5)]
    assert rows[0]["acc"] == 0.25
    path = experiment.write_results(str(tmp_path), {"recall@20": np.float64(0.3), "curve": np.arange(3)})
    assert json.load(open(path)) == {"recall@20": 0.3, "curve": [0, 1, 2]}


BLOCKED_IMPORT_CHECK = r'''
import importlib, sys

class Blocker:  # transformers, datasets and openai are extras (pyproject.toml): pretend they are absent
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("transformers", "datasets", "openai", "torch"):
            raise ImportError(f"No module named {name!r} (blocked)")

sys.meta_path.insert(0, Blocker())
for module in ["humanai_jax", "humanai_jax.backbone", "humanai_jax.train", "humanai_jax.data", "humanai_jax.agents",
               "humanai_jax.methods.sad.pipeline", "experiments.sad", "experiments.run", "experiments.report"]:
    importlib.import_module(module)
from humanai_jax.data import train_tokenizer
try:
    train_tokenizer(["a b"], 300, "/nonexistent")
except ImportError as e:
    assert "pip install -e '.[hf]'" in str(e), e
else:
    raise AssertionError("train_tokenizer ran without transformers")
print("ok")
'''


def test_sad_and_core_import_without_the_hf_and_agents_extras():
    """A SaD-only install (`pip install -e .`) has no transformers, datasets or openai: the core and the SaD
    path import without them (every import of an extra is inside a function), and the first function that
    needs one says which extra to install."""
    proc = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT_CHECK], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_a_different_config_json_is_kept_not_overwritten(tmp_path):
    from experiments.run import _write_config

    _write_config(str(tmp_path), {"model": {"d_model": 32}})
    _write_config(str(tmp_path), {"model": {"d_model": 32}})  # the same: nothing to keep
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    _write_config(str(tmp_path), {"model": {"d_model": 64}})
    kept = [p for p in tmp_path.iterdir() if p.name != "config.json"]
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == {"model": {"d_model": 32}}
    assert json.loads((tmp_path / "config.json").read_text()) == {"model": {"d_model": 64}}


def test_run_seeds_sets_every_seed_key_writes_each_result_and_stops_at_a_preemption(tmp_path):
    from humanai_jax.experiment import run_seeds

    config = ml_collections.ConfigDict(dict(seed=0, seeds=(3, 4, 5), data=dict(seed=0)))
    seen = []

    def run_one(sub, workdir):
        seen.append((sub.seed, sub.data.seed, tuple(sub.seeds), workdir))
        return {"acc": sub.seed / 10, "preempted": sub.seed == 4}

    out = run_seeds(config, str(tmp_path), run_one, seed_keys=("seed", "data.seed"))
    assert [s[:3] for s in seen] == [(3, 3, ()), (4, 4, ())]  # seed 5 never starts after the preemption
    assert seen[0][3] == str(tmp_path / "seed_3") and config.seed == 0 and config.seeds == (3, 4, 5)
    assert list(out) == [3, 4] and out[4]["preempted"] and out[3]["wall_time_s"] >= 0
    assert json.loads((tmp_path / "seed_3" / "results.json").read_text())["acc"] == 0.3
    assert not (tmp_path / "seed_4" / "results.json").exists()


def test_read_config_returns_what_the_runner_wrote(tmp_path, monkeypatch):
    module = type(sys)("experiments._fake_read_config")
    module.run = lambda config, workdir: {"score": 1.0}
    monkeypatch.setitem(sys.modules, "experiments._fake_read_config", module)
    config = ml_collections.ConfigDict({"experiment": "_fake_read_config", "seed": 7, "data": {"path": "x"}})
    runner.run_experiment(config, str(tmp_path))
    assert experiment.read_config(str(tmp_path)) == json.loads(config.to_json_best_effort())
