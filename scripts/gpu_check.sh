#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, in one call: install the GPU build of
# TensorFlow 2.15 into .venv-gpu, confirm TensorFlow sees the GPU, then run
# the benchmark there: the premade model, the custom model at
# --steps-per-run 1 and at its default, with and without dropout, beside the
# bare tf.function loop (also with the trainer's dropout masks and with
# Keras's Dropout layers) and Keras, at batch sizes 128, 1024 and 8192; then
# one GPU against all of them. Arguments go to scripts/benchmark.py
# (e.g. --steps-per-run 100 to measure another K).
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then  # the comment above
  awk '/^set /{exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"
  exit 0
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VENV=$ROOT/.venv-gpu
source "$ROOT/scripts/env.sh"

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "error: nvidia-smi not found; run this on a machine with an NVIDIA GPU and its driver" >&2
  exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

ensure_venv requirements.txt
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  'tensorflow[and-cuda]==2.15.1'
"$VENV/bin/python" - <<'PY'
import sys
import tensorflow as tf
gpus = tf.config.list_physical_devices('GPU')
print('TensorFlow', tf.__version__, 'sees', gpus, file=sys.stderr)
if not gpus:
    sys.exit('error: TensorFlow does not see the GPU; check the driver and CUDA libraries')
PY
cd "$ROOT"
"$VENV/bin/python" scripts/benchmark.py --batch-sizes 128,1024,8192 \
  --parts session_run,input,input_dropout,matmul,bare,bare_dropout,keras_dropout,keras,premade_k1,premade,custom_k1,custom,custom_dropout_k1,custom_dropout \
  "$@"
# One GPU (custom_k1, custom: --distribute none, K = 1 and default K) against
# all of this machine's GPUs (gpus_all, gpus_all_k: MirroredStrategy, K = 1
# and default K; the same as one GPU on a 1-GPU machine).
exec "$VENV/bin/python" scripts/benchmark.py --batch-sizes 128,1024,8192 \
  --parts custom_k1,custom,gpus_all,gpus_all_k "$@"
