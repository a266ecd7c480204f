#!/usr/bin/env bash
# Copies this repository to every worker of $TPU_NAME and installs it (with jax[tpu]) there.
#   TPU_NAME=... ZONE=... tpu/install.sh            # EXTRA_COPY=/path/to/hf_dir also copies that dir
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
PROJECT_FLAG=${PROJECT:+--project=$PROJECT}
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ARCHIVE=/tmp/humanai_jax_src.tar.gz
git -C "$REPO_ROOT" archive --format=tar.gz -o "$ARCHIVE" HEAD
ssh_all() { gcloud compute tpus tpu-vm ssh "$TPU_NAME" $PROJECT_FLAG --zone="$ZONE" --worker=all --command="$1"; }
gcloud compute tpus tpu-vm scp "$ARCHIVE" "$TPU_NAME":~/humanai_jax_src.tar.gz $PROJECT_FLAG --zone="$ZONE" --worker=all
if [[ -n "${EXTRA_COPY:-}" ]]; then
  gcloud compute tpus tpu-vm scp --recurse "$EXTRA_COPY" "$TPU_NAME":~/ $PROJECT_FLAG --zone="$ZONE" --worker=all
fi
ssh_all 'set -e; rm -rf ~/humanai_jax && mkdir -p ~/humanai_jax && tar -xzf ~/humanai_jax_src.tar.gz -C ~/humanai_jax
python3 -m venv ~/venv && . ~/venv/bin/activate && pip install -q -U pip
pip install -q "jax[tpu]" && pip install -q -e "$HOME/humanai_jax[all]"
python -c "import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())"'
