#!/usr/bin/env bash
# Runs one config on every worker of $TPU_NAME at once; each worker logs to ~/run.log.
#   TPU_NAME=... ZONE=... tpu/launch.sh configs/lm.py:VARIANT [--config.key=value ...] --workdir DIR
# Use a shared checkpoint dir for multi-host runs: --config.ckpt.dir=gs://bucket/run/ckpt
# The trainer detects the pod (TPU_WORKER_HOSTNAMES) and calls jax.distributed.initialize().
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
PROJECT_FLAG=${PROJECT:+--project=$PROJECT}
CONFIG="${1:?usage: launch.sh configs/<name>.py[:variant] [flags...]}"; shift
ARGS="$(printf '%q ' "$@")"
gcloud compute tpus tpu-vm ssh "$TPU_NAME" $PROJECT_FLAG --zone="$ZONE" --worker=all --command="
  cd ~/humanai_jax && . ~/venv/bin/activate &&
  nohup python -m experiments.run --config $CONFIG $ARGS > ~/run.log 2>&1 &
  echo started on \$(hostname)"
echo "Follow process 0: gcloud compute tpus tpu-vm ssh $TPU_NAME --zone=$ZONE --worker=0 --command='tail -f ~/run.log'"
