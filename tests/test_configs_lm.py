"""configs/lm.py variants, and the memory plan of a real-size config from shapes alone."""

import pytest

from configs.lm import get_config
from experiments.memory_plan import memory_plan


def test_tiny_is_the_default_and_variants_build():
    tiny = get_config("tiny")
    assert get_config().to_dict() == tiny.to_dict()
    assert tiny.experiment == "lm" and tiny.model.hf_path == "" and tiny.mesh.fsdp == -1
    assert get_config("tiny,steps=7").train.steps == 7
    hf = get_config("hf,hf_path=/some/dir")
    assert hf.model.hf_path == "/some/dir" and hf.ckpt.export_hf
    big = get_config("qwen2.5_7b_fsdp8")
    assert (big.model.d_model, big.mesh.fsdp, big.model.dtype, big.model.remat) == (3584, 8, "bfloat16", "full")
    with pytest.raises(ValueError, match="valid variants"):
        get_config("tiny_typo")
    with pytest.raises(ValueError, match="valid arguments"):
        get_config("tiny,stepz=3")


def test_config_is_locked_against_misspelled_keys():
    c = get_config("tiny")
    c.lock()
    with pytest.raises(AttributeError, match="steps"):  # ml_collections suggests the valid key
        c.train.stepz = 3


def _qwen25_7b_param_count():
    """By hand from Qwen2.5-7B's config.json: untied head, q/k/v biases, two norms per layer."""
    V, D, L, H, K, Dh, F = 152064, 3584, 28, 28, 4, 128, 18944
    per_layer = D * H * Dh + 2 * D * K * Dh + H * Dh * D + (H + 2 * K) * Dh + 3 * D * F + 2 * D
    return V * D * 2 + L * per_layer + D, per_layer, (V, D, L, H, K, Dh, F)


def test_qwen25_7b_fsdp8_memory_plan_without_allocation():
    plan = memory_plan(get_config("qwen2.5_7b_fsdp8"))
    total, _, (V, D, L, H, K, Dh, F) = _qwen25_7b_param_count()
    assert plan["n_params"] == total == 7_615_616_512  # the published count
    assert plan["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
    # FSDP shards every matrix's D axis 8 ways; biases and norms (no `embed` axis) are replicated.
    replicated = L * ((H + 2 * K) * Dh + 2 * D) + D
    sharded = total - replicated
    assert plan["params_bytes_per_device"] == 4 * (sharded // 8 + replicated)
    # Adam: mu and nu shaped and sharded like the params, plus replicated int32 counters
    assert 2 * plan["params_bytes_per_device"] <= plan["opt_state_bytes_per_device"] <= 2 * plan["params_bytes_per_device"] + 64
    assert 3.5 * 2**30 < plan["params_bytes_per_device"] < 3.6 * 2**30
    assert plan["batch_per_device"] == 1 and plan["activations_bytes_per_device_estimate"] > 0


def test_memory_plan_follows_the_mesh_config():
    c = get_config("qwen2.5_0.5b")
    c.mesh.update(fsdp=4)
    fsdp4 = memory_plan(c)
    c.mesh.update(fsdp=1, tensor=4)
    tp4 = memory_plan(c)
    c.mesh.update(fsdp=1, tensor=1, data=4)
    dp4 = memory_plan(c)
    assert fsdp4["n_params"] == tp4["n_params"] == dp4["n_params"] == 494_032_768  # Qwen2.5-0.5B
    assert dp4["params_bytes_per_device"] == 4 * dp4["n_params"]  # replicated
    assert fsdp4["params_bytes_per_device"] < 0.26 * dp4["params_bytes_per_device"]
    # TP over 4: vocab and MLP split; H=14 query heads and K=2 kv heads do not divide by 4, so the
    # attention projections stay replicated (the rules replicate non-divisible dims).
    V, D, L, H, K, Dh, F = 151936, 896, 24, 14, 2, 64, 4864
    split = V * D + L * 3 * D * F
    whole = L * (2 * D * H * Dh + 2 * D * K * Dh + (H + 2 * K) * Dh + 2 * D) + D
    assert split + whole == dp4["n_params"]
    assert tp4["params_bytes_per_device"] == 4 * (split // 4 + whole)


def test_multihost_launch_detection():
    from humanai_jax.train.runtime import maybe_initialize_distributed, multihost_env_detected

    assert multihost_env_detected({}) is None
    assert multihost_env_detected({"SLURM_NTASKS": "1"}) is None  # a single-task SLURM job is one host
    assert multihost_env_detected({"SLURM_NTASKS": "16"}) == "SLURM_NTASKS"
    assert multihost_env_detected({"TPU_WORKER_HOSTNAMES": "10.0.0.2"}) is None  # single-host TPU VM
    assert multihost_env_detected({"TPU_WORKER_HOSTNAMES": "10.0.0.2,10.0.0.3"}) == "TPU_WORKER_HOSTNAMES"
    assert multihost_env_detected({"OMPI_COMM_WORLD_SIZE": "4"}) == "OMPI_COMM_WORLD_SIZE"
    assert maybe_initialize_distributed("auto", environ={}) is False
    assert maybe_initialize_distributed("off", environ={"SLURM_NTASKS": "16"}) is False
    with pytest.raises(ValueError, match="auto, on or off"):
        maybe_initialize_distributed("maybe", environ={})
