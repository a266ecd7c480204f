"""Variant-string parsing (`configs/<name>.py:variant,key=value`): a bad value names its key."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import REPO_ROOT
from humanai_jax import configs


@pytest.mark.parametrize("arg,match", [
    ("steps=abc", r"Config argument 'steps' in 'steps=abc': expected an int \(the type of its default 1\), got 'abc'"),
    ("lr=fast", r"Config argument 'lr' in 'lr=fast': expected a float .* got 'fast'"),
    ("tiny=maybe", r"Config argument 'tiny' in 'tiny=maybe': expected a boolean .* got 'maybe'"),
])
def test_bad_value_names_the_key(arg, match):
    with pytest.raises(ValueError, match=match):
        configs.parse_arg(arg, tiny=False, steps=1, lr=1.0)


def test_good_values_still_parse():
    out = configs.parse_arg("tiny=yes,steps=10,lr=1", tiny=False, steps=1, lr=0.5)
    assert (out.tiny, out.steps, out.lr) == (True, 10, 1.0)
    assert isinstance(out.lr, float)


def test_lm_config_variant_with_bad_value_names_the_key():
    spec = importlib.util.spec_from_file_location("_lm_config", REPO_ROOT / "configs" / "lm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ValueError, match=r"'steps'.*got 'abc'"):
        module.get_config("tiny,steps=abc")


def test_set_dotted_converts_to_the_current_type_and_names_bad_keys():
    import ml_collections

    from humanai_jax.configs import set_dotted

    c = ml_collections.ConfigDict(dict(a=dict(b=1, f=0.5, grid=[1, 2], on=True, name="x")))
    for assignment in ("a.b=3", "a.f=2", "a.grid=[3, 4]", "a.on=false", "a.name=y=z"):
        set_dotted(c, assignment)
    assert (c.a.b, c.a.f, list(c.a.grid), c.a.on, c.a.name) == (3, 2.0, [3, 4], False, "y=z")
    assert isinstance(c.a.f, float)
    with pytest.raises(KeyError, match="unknown config key 'a.zz'"):
        set_dotted(c, "a.zz=1")
    with pytest.raises(KeyError, match="unknown config key 'q.b'"):
        set_dotted(c, "q.b=1")
    with pytest.raises(ValueError, match="a.b: expected an int"):
        set_dotted(c, "a.b=abc")
    with pytest.raises(ValueError, match="expected key=value"):
        set_dotted(c, "a.b")
