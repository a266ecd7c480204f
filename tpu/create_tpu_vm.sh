#!/usr/bin/env bash
# Creates a TPU VM (single host) or pod slice (several hosts).
#   TPU_NAME=hj-v5e-8 ZONE=us-west4-a ACCELERATOR=v5litepod-8 RUNTIME=v2-alpha-tpuv5-lite tpu/create_tpu_vm.sh
# Accelerator/runtime pairs: v4-8..v4-N / tpu-ubuntu2204-base; v5litepod-N / v2-alpha-tpuv5-lite;
# v5p-N / v2-alpha-tpuv5; v6e-N / v2-alpha-tpuv6e. Add SPOT=1 for a spot (preemptible) slice.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${ACCELERATOR:?set ACCELERATOR, e.g. v5litepod-8}"
RUNTIME="${RUNTIME:-tpu-ubuntu2204-base}"
PROJECT_FLAG=${PROJECT:+--project=$PROJECT}
extra=()
if [[ "${SPOT:-0}" == 1 ]]; then extra+=(--spot); fi
gcloud compute tpus tpu-vm create "$TPU_NAME" $PROJECT_FLAG --zone="$ZONE" \
  --accelerator-type="$ACCELERATOR" --version="$RUNTIME" "${extra[@]}"
gcloud compute tpus tpu-vm describe "$TPU_NAME" $PROJECT_FLAG --zone="$ZONE" --format="value(state,networkEndpoints)"
