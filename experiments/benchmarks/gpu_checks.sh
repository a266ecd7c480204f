#!/usr/bin/env bash
# The GPU checks, as one script (the device sessions here have ~15 minutes of GPU time in all).
# Run from the repo root on a CUDA machine with jax[cuda], torch and transformers installed:
#   OUT=gpu_out bash experiments/benchmarks/gpu_checks.sh
# Written 2026-11-29; not yet run on a GPU here (the session's device time ran out first).
# Writes one log per check under $OUT. Each step has its own time limit so a slow one cannot eat
# the others' time; both sides of each benchmark run in the same process on the same GPU.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false  # torch shares the GPU in-process
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$OUT/machine.txt"
$PY -c "import jax, torch, transformers; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__, torch.cuda.get_device_name(0), '| transformers', transformers.__version__)" 2>&1 | tee -a "$OUT/machine.txt"

run() {  # run NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*" | tee "$OUT/$name.txt"
  timeout "$limit" "$@" 2>&1 | grep -v "Writing model shards" | tee -a "$OUT/$name.txt"
  echo "=== $name exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.txt"
}

# Training throughput: the config in float32, then mixed precision at a GPU-sized batch.
run train_f32 100 $PY -m experiments.benchmarks.train_throughput --steps 5 --rounds 3 --peak-n 8192
run train_bf16 100 $PY -m experiments.benchmarks.train_throughput --steps 5 --rounds 3 --peak-n 8192 \
  --dtype bfloat16 --batch 32 --seq 1024
# Decode throughput vs transformers generate (and the RecLM constraint overhead in bf16).
run decode_f32 100 $PY -m experiments.benchmarks.decode_throughput --parts throughput --batches 1,16,64 --repeats 3
run decode_bf16 120 $PY -m experiments.benchmarks.decode_throughput --parts throughput,constraint \
  --batches 1,16,64 --repeats 3 --dtype bfloat16
# Correctness on the GPU: logits parity with transformers for every family and greedy == HF generate
# (f32 at 'highest' matmul precision, as conftest sets).
JAX_PLATFORMS=cuda run tests 150 $PY -m pytest -q -x -p no:cacheprovider tests/test_backbone_hf.py tests/test_decoding_engine.py
