"""Errors a new user meets with Hugging Face directories name the file (and tensor) at fault; exports carry
`generation_config.json`. Tiny checkpoints are written by our own exporter (no torch needed)."""

from __future__ import annotations

import json

import jax
import pytest

from humanai_jax import backbone as bb
from humanai_jax.backbone.hf import CheckpointReader
from humanai_jax.data.tokenizer import load_tokenizer

TINY = dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, head_dim=8, mlp_dim=32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    config = bb.ModelConfig(**TINY, bos_token_id=2, eos_token_id=1, pad_token_id=0)
    params = bb.init_params(config, jax.random.key(0))
    path = tmp_path_factory.mktemp("export") / "hf"
    bb.save_pretrained(path, config, params)
    return config, path


def _truncated_copy(src, dst, keep):
    dst.mkdir()
    (dst / "config.json").write_bytes((src / "config.json").read_bytes())
    data = (src / "model.safetensors").read_bytes()
    (dst / "model.safetensors").write_bytes(data[:keep(len(data))])
    return dst / "model.safetensors"


@pytest.mark.parametrize("keep,match", [
    (lambda n: n // 2, r"is truncated: tensor model\.\S+ needs bytes up to \d+ but the file holds \d+"),
    (lambda n: 100, r"truncated or not a safetensors file: its header claims \d+ bytes"),
    (lambda n: 5, r"truncated or not a safetensors file: 5 bytes"),
])
def test_truncated_safetensors_names_the_file(exported, tmp_path, keep, match):
    _, src = exported
    file = _truncated_copy(src, tmp_path / "bad", keep)
    with pytest.raises(ValueError, match=match) as info:
        bb.load_pretrained(tmp_path / "bad")
    assert str(file) in str(info.value)


def test_failed_tensor_read_names_file_and_tensor(exported, tmp_path):
    _, src = exported
    file = _truncated_copy(src, tmp_path / "late", lambda n: n)
    reader = CheckpointReader(tmp_path / "late")  # header checked while the file was whole
    name = "model.norm.weight"
    file.write_bytes(file.read_bytes()[:200])  # then truncated (e.g. a copy still running)
    with pytest.raises(ValueError, match=f"Could not read tensor {name} from checkpoint file {file}"):
        reader.read(name)


def test_missing_directories_say_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"Checkpoint directory {tmp_path / 'nope'} does not exist"):
        bb.load_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=f"Tokenizer directory {tmp_path / 'nope'} does not exist"):
        load_tokenizer(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="holds no tokenizer.json"):  # exists, but no tokenizer in it
        load_tokenizer(str(tmp_path))


def test_export_writes_generation_config(exported):
    transformers = pytest.importorskip("transformers")
    config, path = exported
    assert json.loads((path / "generation_config.json").read_text()) == {
        "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0}
    gen = transformers.GenerationConfig.from_pretrained(path)
    assert (gen.bos_token_id, gen.eos_token_id, gen.pad_token_id) == (2, 1, 0)
    loaded, _ = bb.load_pretrained(path)
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (2, 1, 0)


def test_generation_config_lists_several_eos_ids():
    config = bb.ModelConfig(**TINY, eos_token_id=(1, 3))
    assert bb.hf.generation_config_dict(config) == {"eos_token_id": [1, 3]}


def test_no_generation_config_without_an_eos(exported, tmp_path):
    """Without an eos id the file would hide the tokenizer's eos from `decoding.text.stop_token_ids`."""
    config, src = exported
    params = bb.init_params(config, jax.random.key(0))
    (tmp_path / "generation_config.json").write_text("{}")  # stale, from an earlier export
    bb.save_pretrained(tmp_path, bb.ModelConfig(**TINY, pad_token_id=0), params)
    assert not (tmp_path / "generation_config.json").exists() and (tmp_path / "model.safetensors").exists()
