"""Shared config blocks (humanai_jax/configs.py): the same keys mean the same thing in every config."""

from __future__ import annotations

import importlib
import pathlib

import pytest

from conftest import REPO_ROOT
from humanai_jax import configs

CONFIG_FILES = sorted(p.stem for p in (pathlib.Path(REPO_ROOT) / "configs").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_config_uses_the_shared_block_keys(name):
    module = importlib.import_module(f"configs.{name}")
    variants = getattr(module, "_VARIANTS", None) or {None: None}
    for variant in variants:
        try:
            c = module.get_config(variant)
        except ValueError as e:  # a variant that needs an argument (a path) names it
            assert "needs" in str(e) or "hf_path" in str(e) or "=" in str(e), (name, variant, e)
            continue
        for block, keys in configs.BLOCK_KEYS.items():
            if block not in c:
                continue
            # A multi-model experiment (PLUS: actor, critic, rm, sft) holds one block per role.
            roles = dict(c[block]) if not keys & set(c[block]) else {"": c[block]}
            for role, sub in roles.items():
                missing = keys - set(sub)
                assert not missing, f"configs/{name}.py:{variant} `{block}{'.' + role if role else ''}` lacks {sorted(missing)}"


def test_blocks_refuse_unknown_keys_and_keep_defaults():
    with pytest.raises(ValueError, match=r"train block: unknown key\(s\) \['stpes'\]; valid keys: .*'steps'"):
        configs.train_block(stpes=3)
    t = configs.train_block(steps=7)
    assert t.steps == 7 and t.batch_size == 16 and set(t) == configs.BLOCK_KEYS["train"]
    assert configs.ckpt_block().async_save is True
    assert configs.rules_block() == configs.rules_block() and configs.mesh_block().fsdp == -1


def test_shared_keys_an_experiment_does_not_implement_are_refused_when_changed():
    train = configs.train_block(steps=0)
    configs.refuse_unsupported("train", train, {"steps"}, "RecLM")  # defaults elsewhere: fine
    train.grad_accum, train.eval_every = 4, 10
    with pytest.raises(ValueError, match=r"RecLM does not implement train.eval_every, train.grad_accum; leave them "
                                         r"at the default \(eval_every=50, grad_accum=1\)"):
        configs.refuse_unsupported("train", train, {"steps"}, "RecLM")
