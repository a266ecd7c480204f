#!/usr/bin/env bash
# The GPU checks as one timed script (a device session here has ~15 minutes of GPU time in all, so
# the most important checks run first and every step has its own time limit).
#   OUT=gpu_out bash experiments/benchmarks/gpu_checks.sh [part1|part2|all]
# part1: machine, cuDNN-vs-XLA attention parity, the ~1B Qwen2-style bf16 training step (ours vs
#        transformers+torch, MFU), parity/greedy tests on the GPU, ~1B decode at batch 1/16/64.
# part2: the platform benchmark's small model (f32 and bf16 training, decode with the RecLM
#        constraint) and the ~1B step on our own (XLA) attention.
# Both sides of each benchmark run in one process on the same GPU. One log per step under $OUT.
set -u
OUT=${OUT:-gpu_out}
PART=${1:-all}
mkdir -p "$OUT"
# torch shares the GPU in-process: JAX may hold at most 60% of it (its BFC pool keeps what it freed;
# uncapped, our ~1B step left torch 0.2 GiB on the first H200 run).
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_PYTHON_CLIENT_MEM_FRACTION=0.6
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
# ~1B Qwen2-style model (0.97 B matmul params + 67 M embedding): head dim 128, GQA 4:1, untied head.
ONE_B="--layers 20 --hidden 2048 --heads 16 --kv-heads 4 --intermediate 5632 --vocab 32768"

run() {  # run NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*" | tee "$OUT/$name.txt"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | grep -v "Writing model shards" | tee -a "$OUT/$name.txt"
  echo "=== $name exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$OUT/$name.txt"
}

if [[ $PART == part1 || $PART == all ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$OUT/machine.txt"
  $PY -c "import jax, jaxlib, torch, transformers; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, jax.devices(), '| torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0), '| transformers', transformers.__version__)" 2>&1 | tee -a "$OUT/machine.txt"
  run attn_parity 60 $PY -m experiments.benchmarks.attention_parity
  run train_1b_cudnn 170 $PY -m experiments.benchmarks.train_throughput $ONE_B --batch 4 --seq 2048 \
    --dtype bfloat16 --attention cudnn --steps 5 --rounds 2 --peak-n 8192
  JAX_PLATFORMS=cuda run tests 120 $PY -m pytest -q -x -p no:cacheprovider tests/test_backbone_hf.py \
    tests/test_decoding_engine.py
  run decode_1b_bf16 150 $PY -m experiments.benchmarks.decode_throughput $ONE_B --parts throughput \
    --batches 1,16,64 --repeats 2 --dtype bfloat16
fi
if [[ $PART == rerun ]]; then  # part1's training step alone, then part2 without its slowest step
  run train_1b_cudnn 170 $PY -m experiments.benchmarks.train_throughput $ONE_B --batch 4 --seq 2048 \
    --dtype bfloat16 --attention cudnn --steps 5 --rounds 2 --peak-n 8192
fi
if [[ $PART == part2 || $PART == all || $PART == rerun ]]; then
  run train_f32 60 $PY -m experiments.benchmarks.train_throughput --steps 5 --rounds 2 --peak-n 8192
  run train_bf16 60 $PY -m experiments.benchmarks.train_throughput --steps 5 --rounds 2 --peak-n 8192 \
    --dtype bfloat16 --batch 32 --seq 1024 --attention cudnn
  [[ $PART == rerun ]] || run train_1b_xla 100 $PY -m experiments.benchmarks.train_throughput $ONE_B --batch 8 --seq 2048 \
    --dtype bfloat16 --attention xla --steps 5 --rounds 1 --peak-n 8192 --skip-torch
  run decode_bf16 90 $PY -m experiments.benchmarks.decode_throughput --parts throughput \
    --batches 1,16,64 --repeats 2 --dtype bfloat16
fi
