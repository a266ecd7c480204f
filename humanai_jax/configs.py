"""Helpers for ml-collections experiment configs (big_vision style).

Every `configs/<name>.py` defines `get_config(arg=None) -> ml_collections.ConfigDict` and
parses its variant string with `parse_arg`, e.g. `configs/sad.py:ml1m_m1` or
`configs/lm.py:tiny,steps=100`.
"""

from __future__ import annotations

import ml_collections


def parse_arg(arg: str | None, *, lazy: bool = False, **defaults) -> ml_collections.ConfigDict:
    """Parses a variant string `"a,b=3,c=x"` into a ConfigDict of typed values.

    A bare word `a` sets a boolean field `a=True`. `key=value` entries take the type of
    `defaults[key]`. Unknown keys raise (listing the valid ones) unless `lazy=True`, in
    which case they are kept as strings.
    """
    out = ml_collections.ConfigDict(dict(defaults))
    if not arg:
        return out
    for token in arg.split(","):
        token = token.strip()
        if not token:
            continue
        key, sep, raw = token.partition("=")
        if key not in defaults and not lazy:
            raise ValueError(
                f"Unknown config argument {key!r} in {arg!r}; valid arguments: {sorted(defaults)}"
            )
        if not sep:
            out[key] = True
            continue
        default = defaults.get(key)
        try:
            out[key] = _convert(raw, default)
        except ValueError as e:
            raise ValueError(f"Config argument {key!r} in {arg!r}: {e}") from None
    return out


def _convert(raw: str, like):
    if isinstance(like, bool):
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean (true/false, yes/no, 1/0), got {raw!r}")
    for kind in (int, float):
        if isinstance(like, kind):
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"expected {'an' if kind is int else 'a'} {kind.__name__} "
                                 f"(the type of its default {like!r}), got {raw!r}") from None
    return raw


def choose_variant(arg: str | None, variants: dict[str, dict], default: str) -> tuple[str, dict]:
    """Splits `"variant,key=val"` into the named variant's overrides and the rest.

    Returns `(variant_name, rest_string)`. Raises on an unknown variant, listing the valid ones.
    """
    first, _, rest = (arg or default).partition(",")
    if "=" in first:  # only overrides were given: use the default variant
        first, rest = default, arg or ""
    if first not in variants:
        raise ValueError(f"Unknown variant {first!r}; valid variants: {sorted(variants)}")
    return first, rest
