#!/usr/bin/env bash
# Sets up .venv (first run only), then trains, evaluates and exports the
# default model on MNIST into a new local job dir. Arguments go to
# trainer.task, e.g. --model-type custom, --data-dir DIR, --job-dir DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ensure_venv requirements.txt

job_dir=
for arg in "$@"; do
  case $arg in --job-dir=*|--job_dir=*) job_dir=${arg#*=} ;; esac
done
prev=
for arg in "$@"; do
  [[ $prev == --job-dir || $prev == --job_dir ]] && job_dir=$arg
  prev=$arg
done
extra=()
if [[ -z $job_dir ]]; then
  job_dir=$ROOT/jobs/mnist-$(date +%Y%m%d-%H%M%S)
  extra=(--job-dir "$job_dir")
fi

cd "$ROOT"
"$VENV/bin/python" -m trainer.task "${extra[@]}" "$@"
echo
echo "results:    $job_dir/results.json"
echo "SavedModel: $job_dir/export/latest/ (newest) and $job_dir/export/best/ (most accurate)"
echo "TensorBoard: $VENV/bin/tensorboard --logdir $job_dir"
