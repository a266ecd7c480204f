"""Meshes and logical-axis sharding rules.

Every weight and key activation carries a tuple of *logical* axis names (`("embed", "mlp")`).
A `ShardingRules` table maps each logical name to zero or more *mesh* axes, so moving between
data parallelism, FSDP and tensor parallelism is a config change, never a model change.

Mesh axes are `("data", "fsdp", "tensor")`. Their sizes come from the config; one may be -1
("fill with whatever devices remain").

Both JAX sharding modes take the same rules tables. On an Auto mesh (`make_mesh(...)`, the
default) `constrain` is `with_sharding_constraint` and GSPMD propagates shardings and inserts the
collectives. On an Explicit mesh (`make_mesh(..., axis_type="explicit")`, "sharding in types")
every array's sharding is part of its type (`jax.typeof(x).sharding`): `constrain` is
`jax.sharding.reshard`, `gather_weight` all-gathers a weight's FSDP shards before use, and the
backbone's matmuls name their output sharding, so each collective is written in the program.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axes (a tuple; empty = replicated).
DEFAULT_RULES: dict[str, tuple[str, ...]] = {
    "batch": ("data", "fsdp"),
    "cache_batch": ("data", "fsdp"),
    "embed": ("fsdp",),
    "vocab": ("tensor",),
    "q_heads": ("tensor",),
    "kv_heads": ("tensor",),
    "mlp": ("tensor",),
    "layers": (),
    "head_dim": (),
    "norm": (),
    "seq": (),
    "act_embed": (),
    "cache_seq": (),
}


@dataclasses.dataclass(frozen=True)
class ShardingRules:
    """A logical-axis -> mesh-axes table bound to a mesh. Hashable, so it can be a static jit argument."""

    mesh: jax.sharding.Mesh
    table: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def create(cls, mesh, table: Mapping[str, Sequence[str]] | None = None) -> ShardingRules:
        table = dict(DEFAULT_RULES if table is None else table)
        return cls(mesh, tuple((k, tuple(v)) for k, v in sorted(table.items())))

    def mesh_axes(self, logical: str | None) -> tuple[str, ...]:
        if logical is None:
            return ()
        table = dict(self.table)
        if logical not in table:
            raise KeyError(f"Logical axis {logical!r} has no sharding rule; known: {sorted(table)}")
        return tuple(a for a in table[logical] if a in self.mesh.axis_names)

    def spec(self, logical_axes: Sequence[str | None], shape: Sequence[int] | None = None) -> P:
        """PartitionSpec for an array with these logical axes.

        A mesh axis may appear only once per spec. When `shape` is given, a dimension that does
        not divide evenly by its mesh axes is replicated instead (logged), e.g. 2 KV heads on
        `tensor=4`.
        """
        used: set[str] = set()
        parts = []
        for i, name in enumerate(logical_axes):
            axes = self.mesh_axes(name)
            for a in axes:
                if a in used:
                    raise ValueError(f"Mesh axis {a!r} used twice in spec for logical axes {tuple(logical_axes)}")
            size = math.prod(self.mesh.shape[a] for a in axes)
            if shape is not None and axes and shape[i] % size:
                logging.log_first_n(
                    logging.INFO,
                    "Replicating dim %d (%s, size %d): not divisible by mesh axes %s (size %d)",
                    8, i, name, shape[i], axes, size,
                )
                axes = ()
            # Axes of size 1 are dropped: the spec stays readable and equal across meshes.
            axes = tuple(a for a in axes if self.mesh.shape[a] > 1)
            used.update(axes)
            parts.append(_spec_entry(axes))
        return P(*parts)

    def sharding(self, logical_axes: Sequence[str | None], shape: Sequence[int] | None = None) -> NamedSharding:
        return NamedSharding(self.mesh, self.spec(logical_axes, shape))


def _spec_entry(axes: tuple[str, ...]):
    """One PartitionSpec entry for a dimension sharded over `axes`: None, a name, or a tuple."""
    return None if not axes else axes[0] if len(axes) == 1 else axes


def make_mesh(shape: Mapping[str, int], *, axis_type: str = "auto", devices=None) -> jax.sharding.Mesh:
    """Builds a `("data", "fsdp", "tensor")` mesh from sizes; one size may be -1 (fill).

    `axis_type` is "auto" (GSPMD propagation; default, as in MaxText) or "explicit".
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = [int(shape.get(a, 1)) for a in MESH_AXES]
    if sizes.count(-1) > 1:
        raise ValueError(f"At most one mesh axis may be -1, got {dict(zip(MESH_AXES, sizes))}")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(f"{len(devices)} devices cannot fill mesh {dict(zip(MESH_AXES, sizes))}")
        sizes[sizes.index(-1)] = len(devices) // known
    if math.prod(sizes) != len(devices):
        if math.prod(sizes) > len(devices):
            raise ValueError(
                f"Mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, have {len(devices)}"
            )
        devices = devices[: math.prod(sizes)]
    types = {"auto": AxisType.Auto, "explicit": AxisType.Explicit}[axis_type]
    return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=(types,) * 3, devices=devices)


def tree_shardings(rules: ShardingRules, logical_tree: Any, abstract_tree: Any) -> Any:
    """Maps a tree of logical-axis tuples (and a matching tree of shapes) to NamedShardings."""
    return jax.tree.map(
        lambda axes, x: rules.sharding(axes, x.shape),
        logical_tree,
        abstract_tree,
        is_leaf=lambda t: isinstance(t, tuple) and all(isinstance(a, (str, type(None))) for a in t),
    )


def is_explicit(rules: ShardingRules | None) -> bool:
    """Whether `rules` sit on a mesh with Explicit axes (shardings are part of array types)."""
    return rules is not None and AxisType.Explicit in rules.mesh.axis_types


def constrain(x: jax.Array, logical_axes: Sequence[str | None], rules: ShardingRules | None) -> jax.Array:
    """Shards x by logical names: `with_sharding_constraint` on Auto meshes, `reshard` on Explicit ones.

    The identity when `rules` is None (single device).
    """
    if rules is None:
        return x
    sharding = rules.sharding(logical_axes, x.shape)
    if is_explicit(rules):
        return jax.sharding.reshard(x, sharding)
    return jax.lax.with_sharding_constraint(x, sharding)


def gather_weight(w: jax.Array, rules: ShardingRules | None) -> jax.Array:
    """A weight as a matmul uses it: its FSDP shards all-gathered (Explicit meshes only).

    FSDP shards weights over mesh axes that also shard the activations' batch (the `batch` rule,
    default data x fsdp). On an Explicit mesh a matmul of such operands has no well-defined
    sharding, so the weight is resharded to its own spec with those axes dropped, as MaxText
    does; its gradient is reduce-scattered back by the transpose of the reshard. Tensor-parallel
    axes stay. On Auto meshes (or without rules) w is returned as is: GSPMD inserts the same
    all-gather itself.
    """
    if not is_explicit(rules):
        return w
    batch_axes = set(rules.mesh_axes("batch"))
    parts = []
    for part in jax.typeof(w).sharding.spec:
        axes = (part,) if isinstance(part, str) else part or ()
        parts.append(_spec_entry(tuple(a for a in axes if a not in batch_axes)))
    return jax.sharding.reshard(w, NamedSharding(rules.mesh, P(*parts)))


def host_local_batch_to_global(local: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Builds a global batch from each host's slice (multi-host data loading)."""
    return jax.make_array_from_process_local_data(sharding, local)
