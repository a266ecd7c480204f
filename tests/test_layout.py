"""The import contract that keeps the architecture readable (docs/architecture.md):

- the core (`humanai_jax/` outside `methods/`) never imports `humanai_jax.methods` or `experiments`;
- a method (`humanai_jax/methods/<name>/`) never imports another method or `experiments`;
- an experiment (`experiments/<name>.py`) never imports another experiment (benchmarks included; the
  entry point `experiments.run` is infrastructure and may be imported):
  shared code belongs in the core.

Imports are read with `ast` (static: a lazy import inside a function counts too).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "humanai_jax"


def imported_modules(path: pathlib.Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def method_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if parts[:2] == ["humanai_jax", "methods"] and len(parts) > 2 else None


def core_files():
    return [p for p in PKG.rglob("*.py") if "methods" not in p.relative_to(PKG).parts]


def test_core_never_imports_methods_or_experiments():
    bad = [(str(p.relative_to(ROOT)), m) for p in core_files() for m in imported_modules(p)
           if (m.startswith("humanai_jax.methods") and m != "humanai_jax.methods") or m.split(".")[0] == "experiments"]
    assert not bad, f"core modules import methods/experiments: {bad}"


def test_methods_never_import_each_other():
    bad = []
    for path in (PKG / "methods").rglob("*.py"):
        rel = path.relative_to(PKG / "methods").parts
        if len(rel) < 2:
            continue
        own = rel[0]
        for m in imported_modules(path):
            other = method_of(m)
            if (other and other != own) or m.split(".")[0] == "experiments":
                bad.append((str(path.relative_to(ROOT)), m))
    assert not bad, f"methods import another method or experiments: {bad}"


def test_experiments_never_import_each_other():
    bad = []
    for path in (ROOT / "experiments").rglob("*.py"):
        if path.name == "__init__.py":
            continue
        for m in imported_modules(path):
            infrastructure = m in ("experiments", "experiments.benchmarks") or m.startswith("experiments.run")
            if m.split(".")[0] == "experiments" and not infrastructure:
                bad.append((str(path.relative_to(ROOT)), m))
    assert not bad, f"experiments import other experiments (move the shared code to the core): {bad}"


@pytest.mark.parametrize("source, expect", [
    ("from humanai_jax.methods.plus import loop", {"humanai_jax.methods.plus", "humanai_jax.methods.plus.loop"}),
    ("import experiments.lm", {"experiments.lm"}),
])
def test_import_reader_on_known_sources(tmp_path, source, expect):
    """The checker itself: a known import is seen (so the contract tests above can fail)."""
    f = ROOT / "humanai_jax" / "_layout_probe_tmp.py"
    try:
        f.write_text(source + "\n")
        assert expect <= imported_modules(f)
    finally:
        f.unlink()
