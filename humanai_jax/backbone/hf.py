"""Hugging Face checkpoints <-> our parameter tree (spec 4.3).

Reading: `config.json` + `model.safetensors` (or shards listed in `model.safetensors.index.json`),
through `safetensors.safe_open(framework="numpy")`; bfloat16 tensors, which numpy cannot name,
are read from the same file through a memory map. Every tensor is checked (missing, extra,
mis-shaped: the error names it, with expected and found shapes) before anything is placed.
With a mesh, each leaf is built with `jax.make_array_from_callback`, so each device receives only
its shard and the host holds one HF tensor at a time.

Writing is the exact inverse (Phi-3 re-fuses qkv_proj and gate_up_proj; lm_head omitted when
tied), streamed tensor by tensor into one or several safetensors files plus an index.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import struct
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from jax.experimental import multihost_utils
from safetensors import safe_open

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.params import param_info

_ST_DTYPES = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_ST_CODES = {v: k for k, v in _ST_DTYPES.items()}
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # non-persistent buffers some old exports contain

LAYER = "model.layers.{i}."


# ------------------------------------------------------------------------------------ HF layout
def hf_tensor_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name of the HF checkpoint for this config, with its HF shape ([out, in])."""
    c = config
    D, H, K, Dh, F, V = c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.mlp_dim, c.vocab_size
    per_layer: dict[str, tuple[int, ...]] = {
        "input_layernorm.weight": (D,),
        "post_attention_layernorm.weight": (D,),
        "self_attn.o_proj.weight": (D, H * Dh),
        "mlp.down_proj.weight": (D, F),
    }
    if c.model_type == "phi3":
        per_layer["self_attn.qkv_proj.weight"] = ((H + 2 * K) * Dh, D)
        per_layer["mlp.gate_up_proj.weight"] = (2 * F, D)
    else:
        per_layer.update({
            "self_attn.q_proj.weight": (H * Dh, D),
            "self_attn.k_proj.weight": (K * Dh, D),
            "self_attn.v_proj.weight": (K * Dh, D),
            "mlp.gate_proj.weight": (F, D),
            "mlp.up_proj.weight": (F, D),
        })
    if c.qkv_bias:
        per_layer.update({
            "self_attn.q_proj.bias": (H * Dh,),
            "self_attn.k_proj.bias": (K * Dh,),
            "self_attn.v_proj.bias": (K * Dh,),
        })
    if c.o_bias:
        per_layer["self_attn.o_proj.bias"] = (D,)
    if c.qk_norm:
        per_layer["self_attn.q_norm.weight"] = (Dh,)
        per_layer["self_attn.k_norm.weight"] = (Dh,)
    shapes = {"model.embed_tokens.weight": (V, D)}
    for i in range(c.n_layers):
        shapes.update({LAYER.format(i=i) + k: v for k, v in per_layer.items()})
    shapes["model.norm.weight"] = (D,)
    if not c.tie_embeddings:
        shapes["lm_head.weight"] = (V, D)
    return shapes


# A source is (hf_name, row_slice or None); `combine` maps the read arrays to one layer's leaf.
Source = tuple[str, slice | None]


def _leaf_sources(config: ModelConfig) -> dict[tuple[str, ...], tuple[bool, Callable[[int], list[Source]], Callable]]:
    """leaf path -> (is_layered, sources(layer_index), combine(arrays) -> leaf slice)."""
    c = config
    D, H, K, Dh, F = c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.mlp_dim
    phi3 = c.model_type == "phi3"

    def attn(name):
        return lambda i: [(LAYER.format(i=i) + "self_attn." + name, None)]

    def mlp_src(name):
        return lambda i: [(LAYER.format(i=i) + "mlp." + name, None)]

    def fused(name, start, stop):
        return lambda i: [(LAYER.format(i=i) + name, slice(start, stop))]

    def in_proj(n):  # [n*Dh, D] -> [D, n, Dh]
        return lambda a: a[0].T.reshape(D, n, Dh)

    first = lambda a: a[0]
    transpose = lambda a: a[0].T
    rules: dict[tuple[str, ...], tuple[bool, Callable, Callable]] = {
        ("embed",): (False, lambda i: [("model.embed_tokens.weight", None)], first),
        ("final_norm",): (False, lambda i: [("model.norm.weight", None)], first),
        ("layers", "attn_norm"): (True, lambda i: [(LAYER.format(i=i) + "input_layernorm.weight", None)], first),
        ("layers", "mlp_norm"): (
            True, lambda i: [(LAYER.format(i=i) + "post_attention_layernorm.weight", None)], first),
        ("layers", "wo"): (True, attn("o_proj.weight"), lambda a: a[0].T.reshape(H, Dh, D)),
        ("layers", "w_down"): (True, mlp_src("down_proj.weight"), transpose),
    }
    if phi3:
        q_end, k_end = H * Dh, (H + K) * Dh
        rules[("layers", "wq")] = (True, fused("self_attn.qkv_proj.weight", 0, q_end), in_proj(H))
        rules[("layers", "wk")] = (True, fused("self_attn.qkv_proj.weight", q_end, k_end), in_proj(K))
        rules[("layers", "wv")] = (True, fused("self_attn.qkv_proj.weight", k_end, k_end + K * Dh), in_proj(K))
        rules[("layers", "w_gate")] = (True, fused("mlp.gate_up_proj.weight", 0, F), transpose)
        rules[("layers", "w_up")] = (True, fused("mlp.gate_up_proj.weight", F, 2 * F), transpose)
    else:
        rules[("layers", "wq")] = (True, attn("q_proj.weight"), in_proj(H))
        rules[("layers", "wk")] = (True, attn("k_proj.weight"), in_proj(K))
        rules[("layers", "wv")] = (True, attn("v_proj.weight"), in_proj(K))
        rules[("layers", "w_gate")] = (True, mlp_src("gate_proj.weight"), transpose)
        rules[("layers", "w_up")] = (True, mlp_src("up_proj.weight"), transpose)
    if c.qkv_bias:
        rules[("layers", "bq")] = (True, attn("q_proj.bias"), lambda a: a[0].reshape(H, Dh))
        rules[("layers", "bk")] = (True, attn("k_proj.bias"), lambda a: a[0].reshape(K, Dh))
        rules[("layers", "bv")] = (True, attn("v_proj.bias"), lambda a: a[0].reshape(K, Dh))
    if c.o_bias:
        rules[("layers", "bo")] = (True, attn("o_proj.bias"), first)
    if c.qk_norm:
        rules[("layers", "q_norm")] = (True, attn("q_norm.weight"), first)
        rules[("layers", "k_norm")] = (True, attn("k_norm.weight"), first)
    if not c.tie_embeddings:
        rules[("lm_head",)] = (False, lambda i: [("lm_head.weight", None)], transpose)
    return rules


def _export_tensors(config: ModelConfig) -> dict[str, Callable[[Any], np.ndarray]]:
    """HF name -> function(params) -> numpy array in HF layout (inverse of `_leaf_sources`)."""
    c = config
    D, H, Dh = c.d_model, c.n_heads, c.head_dim

    def host(x) -> np.ndarray:
        # Multi-host: one tensor (one layer's slice) at a time is gathered to every process; every
        # process runs this in the same order, only process 0 writes (see save_pretrained).
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = multihost_utils.process_allgather(x, tiled=True)
        return np.asarray(jax.device_get(x))

    def out_proj(leaf, i):  # [D, n, Dh] -> [n*Dh, D]
        return lambda p: host(p["layers"][leaf][i]).reshape(D, -1).T

    fns: dict[str, Callable] = {
        "model.embed_tokens.weight": lambda p: host(p["embed"]),
        "model.norm.weight": lambda p: host(p["final_norm"]),
    }
    if not c.tie_embeddings:
        fns["lm_head.weight"] = lambda p: host(p["lm_head"]).T
    for i in range(c.n_layers):
        pre = LAYER.format(i=i)
        leaf = lambda name, i=i: (lambda p: host(p["layers"][name][i]))
        fns[pre + "input_layernorm.weight"] = leaf("attn_norm")
        fns[pre + "post_attention_layernorm.weight"] = leaf("mlp_norm")
        fns[pre + "self_attn.o_proj.weight"] = lambda p, i=i: host(p["layers"]["wo"][i]).reshape(H * Dh, D).T
        fns[pre + "mlp.down_proj.weight"] = lambda p, i=i: host(p["layers"]["w_down"][i]).T
        if c.model_type == "phi3":
            fns[pre + "self_attn.qkv_proj.weight"] = lambda p, i=i: np.concatenate(
                [out_proj(n, i)(p) for n in ("wq", "wk", "wv")], axis=0)
            fns[pre + "mlp.gate_up_proj.weight"] = lambda p, i=i: np.concatenate(
                [host(p["layers"][n][i]).T for n in ("w_gate", "w_up")], axis=0)
        else:
            fns[pre + "self_attn.q_proj.weight"] = out_proj("wq", i)
            fns[pre + "self_attn.k_proj.weight"] = out_proj("wk", i)
            fns[pre + "self_attn.v_proj.weight"] = out_proj("wv", i)
            fns[pre + "mlp.gate_proj.weight"] = lambda p, i=i: host(p["layers"]["w_gate"][i]).T
            fns[pre + "mlp.up_proj.weight"] = lambda p, i=i: host(p["layers"]["w_up"][i]).T
        if c.qkv_bias:
            for proj, name in (("q_proj", "bq"), ("k_proj", "bk"), ("v_proj", "bv")):
                fns[pre + f"self_attn.{proj}.bias"] = lambda p, i=i, name=name: host(p["layers"][name][i]).reshape(-1)
        if c.o_bias:
            fns[pre + "self_attn.o_proj.bias"] = leaf("bo")
        if c.qk_norm:
            fns[pre + "self_attn.q_norm.weight"] = leaf("q_norm")
            fns[pre + "self_attn.k_norm.weight"] = leaf("k_norm")
    return fns


# ------------------------------------------------------------------------------------ reading
class CheckpointReader:
    """Reads tensors by name from a HF checkpoint directory (single file or sharded with index)."""

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        index = self.path / "model.safetensors.index.json"
        single = self.path / "model.safetensors"
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            self.files = {name: self.path / fname for name, fname in weight_map.items()}
        elif single.exists():
            self.files = None
        else:
            raise FileNotFoundError(f"No model.safetensors or model.safetensors.index.json in {self.path}")
        self._headers: dict[pathlib.Path, tuple[int, dict]] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, str] = {}
        self.file_of: dict[str, pathlib.Path] = {}
        for file in sorted(set(self.files.values())) if self.files else [single]:
            header_len, header = self._header(file)
            for name, meta in header.items():
                if name == "__metadata__":
                    continue
                self.shapes[name] = tuple(meta["shape"])
                self.dtypes[name] = meta["dtype"]
                self.file_of[name] = file

    def _header(self, file: pathlib.Path) -> tuple[int, dict]:
        """(header length, header) of one safetensors file, checked against the file's size.

        A truncated file (an interrupted download or copy) raises here, naming the file and, when the
        header is intact, the first tensor whose bytes lie past the end of the file.
        """
        if file not in self._headers:
            if not file.exists():
                raise FileNotFoundError(f"Checkpoint file {file} does not exist (listed in the index of {self.path})")
            size = file.stat().st_size
            with open(file, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    raise ValueError(f"Checkpoint file {file} is truncated or not a safetensors file: "
                                     f"{size} bytes, shorter than the 8-byte header length")
                (n,) = struct.unpack("<Q", head)
                if 8 + n > size:
                    raise ValueError(f"Checkpoint file {file} is truncated or not a safetensors file: its header "
                                     f"claims {n} bytes but the file holds {size} bytes in all")
                try:
                    header = json.loads(f.read(n))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise ValueError(f"Checkpoint file {file} has an unreadable safetensors header: {e}") from e
            tensors = sorted((int(m["data_offsets"][1]), k) for k, m in header.items() if k != "__metadata__")
            for end, name in tensors:  # in file order: the first tensor the truncation cuts
                end += 8 + n
                if end > size:
                    raise ValueError(f"Checkpoint file {file} is truncated: tensor {name} needs bytes up to {end} but "
                                     f"the file holds {size} (an interrupted download or copy?)")
            self._headers[file] = (n, header)
        return self._headers[file]

    def read(self, name: str, rows: slice | None = None) -> np.ndarray:
        """The tensor (or a slice of its rows) as a numpy array; a failed read names the file and tensor."""
        file = self.file_of[name]
        try:
            return self._read(file, name, rows)
        except Exception as e:
            raise ValueError(f"Could not read tensor {name} from checkpoint file {file}: "
                             f"{type(e).__name__}: {e}") from e

    def _read(self, file: pathlib.Path, name: str, rows: slice | None) -> np.ndarray:
        code = self.dtypes[name]
        if code == "BF16":  # numpy has no bfloat16: map the bytes and view them with ml_dtypes
            header_len, header = self._header(file)
            start, end = header[name]["data_offsets"]
            flat = np.memmap(file, dtype=ml_dtypes.bfloat16, mode="r", offset=8 + header_len + start,
                             shape=((end - start) // 2,))
            array = flat.reshape(self.shapes[name])
            return np.array(array if rows is None else array[rows])
        with safe_open(file, framework="numpy") as f:
            if rows is None:
                return f.get_tensor(name)
            return f.get_slice(name)[rows]


def _check_tensors(reader: CheckpointReader, config: ModelConfig) -> None:
    expected = hf_tensor_shapes(config)
    found = {n: s for n, s in reader.shapes.items() if not n.endswith(_IGNORED_SUFFIXES)}
    if config.tie_embeddings:
        found.pop("lm_head.weight", None)  # tied: transformers ignores a stored copy too
    missing = [n for n in expected if n not in found]
    if missing:
        raise ValueError(
            f"Checkpoint {reader.path} is missing {len(missing)} tensor(s): "
            + ", ".join(f"{n} (expected shape {expected[n]})" for n in missing[:8])
        )
    extra = [n for n in found if n not in expected]
    if extra:
        raise ValueError(
            f"Checkpoint {reader.path} has {len(extra)} unexpected tensor(s) for {config.model_type}: "
            + ", ".join(f"{n} (shape {found[n]})" for n in extra[:8])
        )
    for name, shape in expected.items():
        if tuple(found[name]) != tuple(shape):
            raise ValueError(f"Tensor {name} has shape {tuple(found[name])}, expected {tuple(shape)}")


def _set_path(tree: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def load_pretrained(path, dtype=jnp.float32, mesh=None, rules=None, **config_overrides):
    """Loads a HF checkpoint directory -> (ModelConfig, params).

    dtype: parameter and compute dtype (the config's `dtype`/`param_dtype`; override either with
    `config_overrides`, e.g. `param_dtype="float32", dtype="bfloat16"`).
    mesh / rules: place each leaf sharded as it loads (`humanai_jax.sharding.ShardingRules`;
    default rules when only a mesh is given). Without either, leaves go to the default device.
    """
    from humanai_jax.sharding import ShardingRules  # core module; imported lazily to keep hf.py light

    path = pathlib.Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Checkpoint directory {path} does not exist" if not path.exists()
                                else f"Checkpoint path {path} is not a directory (expected a HF checkpoint directory)")
    config_file = path / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"No config.json in {path}")
    hf_config = json.loads(config_file.read_text())
    name = jnp.dtype(dtype).name
    config = ModelConfig.from_hf_dict(hf_config, **{"dtype": name, "param_dtype": name, **config_overrides})
    reader = CheckpointReader(path)
    _check_tensors(reader, config)

    if rules is None and mesh is not None:
        rules = ShardingRules.create(mesh)
    if rules is not None and mesh is not None and rules.mesh != mesh:
        raise ValueError("load_pretrained: `rules` is bound to a different mesh than `mesh`")
    infos = param_info(config)
    params: dict[str, Any] = {}
    target = config.params_dtype
    for leaf_path, (layered, sources, combine) in _leaf_sources(config).items():
        info = infos[leaf_path[0]] if len(leaf_path) == 1 else infos[leaf_path[0]][leaf_path[1]]

        def read_layer(i, sources=sources, combine=combine) -> np.ndarray:
            return combine([reader.read(n, rows) for n, rows in sources(i)])

        if rules is None:
            if layered:
                value = np.stack([read_layer(i).astype(target) for i in range(config.n_layers)])
            else:
                value = read_layer(None).astype(target)
            array = jnp.asarray(value)
        else:
            sharding = rules.sharding(info.logical_axes, info.shape)

            def callback(index, layered=layered, read_layer=read_layer) -> np.ndarray:
                if not layered:
                    return np.ascontiguousarray(read_layer(None)[index]).astype(target)
                layer_ids = range(config.n_layers)[index[0]]
                return np.stack([read_layer(i)[index[1:]].astype(target) for i in layer_ids])

            array = jax.make_array_from_callback(info.shape, sharding, callback)
        _set_path(params, leaf_path, array)
    return config, params


# ------------------------------------------------------------------------------------ writing
def _write_safetensors(file: pathlib.Path | str, names: list[str], shapes, dtypes, produce) -> None:
    """Streams tensors into one safetensors file: header first, then each tensor's bytes.

    `file` may be `os.devnull`: a multi-host process that does not write still produces every
    tensor, in the same order, to take part in its gathers.
    """
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in names:
        nbytes = math.prod(shapes[name]) * dtypes[name].itemsize
        header[name] = {"dtype": _ST_CODES[dtypes[name]], "shape": list(shapes[name]),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(file, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in names:
            array = np.ascontiguousarray(produce(name), dtype=dtypes[name])
            if array.shape != tuple(shapes[name]):
                raise ValueError(f"Exported tensor {name} has shape {array.shape}, expected {shapes[name]}")
            f.write(array.tobytes())


def _check_params(config: ModelConfig, params) -> None:
    """Raises ValueError naming the first leaf that is missing, extra or mis-shaped for `config`."""
    is_info = lambda x: hasattr(x, "logical_axes")
    expected = {jax.tree_util.keystr(k): i.shape
                for k, i in jax.tree_util.tree_leaves_with_path(param_info(config), is_leaf=is_info)}
    found = {jax.tree_util.keystr(k): tuple(x.shape) for k, x in jax.tree_util.tree_leaves_with_path(params)}
    for name in expected.keys() - found.keys():
        raise ValueError(f"params lack leaf {name} (expected shape {expected[name]}) for this config")
    for name in found.keys() - expected.keys():
        raise ValueError(f"params have leaf {name} (shape {found[name]}) that this config does not use")
    for name, shape in expected.items():
        if found[name] != shape:
            raise ValueError(f"params leaf {name} has shape {found[name]}, expected {shape}")


def generation_config_dict(config: ModelConfig) -> dict[str, Any]:
    """The `generation_config.json` of an export: the special-token ids `generate` reads (those that are set).

    transformers' `GenerationConfig.from_pretrained(dir)` loads it, and `decoding.text` takes its stop ids
    from it (the eos list of instruct models lives there), so an exported checkpoint stops where it did.
    """
    eos = config.eos_token_id
    ids = {"bos_token_id": config.bos_token_id,
           "eos_token_id": list(eos) if isinstance(eos, tuple) else eos,
           "pad_token_id": config.pad_token_id}
    return {k: v for k, v in ids.items() if v is not None}


def save_pretrained(path, config: ModelConfig, params, max_shard_bytes: int = 5 * 1024**3) -> None:
    """Writes `config.json` (transformers v5 layout), `generation_config.json` (bos/eos/pad ids; when the
    config knows its eos) and safetensors weights to directory `path`.

    One `model.safetensors` if it fits in `max_shard_bytes`, else `model-0000k-of-0000n.safetensors`
    files plus `model.safetensors.index.json`. All tensors are written in the dtype of
    `params["embed"]` (the `dtype` recorded in config.json).

    Multi-host: call it on every process with the (sharded, not fully addressable) params. Each
    tensor is gathered on its own, so no host ever holds more than one whole tensor beyond its
    shards; process 0 writes the files and all processes return once they are complete.
    """
    path = pathlib.Path(path)
    writer = jax.process_index() == 0
    _check_params(config, params)
    if writer:
        path.mkdir(parents=True, exist_ok=True)

    producers = _export_tensors(config)
    shapes = hf_tensor_shapes(config)
    leaf_dtype = np.dtype(params["embed"].dtype)
    dtypes = {n: leaf_dtype for n in shapes}
    names = list(shapes)
    hf_config = config.to_hf_dict()
    hf_config["dtype"] = leaf_dtype.name
    if writer:
        (path / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
        generation = generation_config_dict(config)
        if "eos_token_id" in generation:
            (path / "generation_config.json").write_text(json.dumps(generation, indent=2, sort_keys=True) + "\n")
        else:  # no eos known: no file, so readers (decoding.text.stop_token_ids) fall back to the tokenizer's eos
            (path / "generation_config.json").unlink(missing_ok=True)

    shards: list[list[str]] = [[]]
    size = 0
    for name in names:
        nbytes = math.prod(shapes[name]) * leaf_dtype.itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    produce = lambda name: producers[name](params)
    if writer:
        for stale in list(path.glob("model*.safetensors")) + list(path.glob("model.safetensors.index.json")):
            stale.unlink()
    fnames = (["model.safetensors"] if len(shards) == 1
              else [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))])
    for fname, shard in zip(fnames, shards):
        _write_safetensors(path / fname if writer else os.devnull, shard, shapes, dtypes, produce)
    if writer and len(shards) > 1:
        total = sum(math.prod(shapes[n]) * leaf_dtype.itemsize for n in names)
        weight_map = {n: fname for fname, shard in zip(fnames, shards) for n in shard}
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    if jax.process_count() > 1:  # nobody reads the directory before process 0 has finished it
        multihost_utils.sync_global_devices(f"save_pretrained {path}")
