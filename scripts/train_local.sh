#!/usr/bin/env bash
# Sets up .venv (first run only), then trains, evaluates and exports the
# default model on MNIST into a new job dir under $JOBS_DIR (default
# jobs/). Arguments go to
# trainer.task, e.g. --model-type custom, --data-dir DIR, --job-dir DIR.
# If the run stops on a signal (Ctrl-C, kill), prints the command that
# resumes it, with its job dir.
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
  jobs=${JOBS_DIR:-$ROOT/jobs}
  [[ $jobs == /* ]] || jobs=$PWD/$jobs  # relative to where the user is
  job_dir=$jobs/mnist-$(date +%Y%m%d-%H%M%S)
  extra=(--job-dir "$job_dir")
fi

cd "$ROOT"
status=0
"$VENV/bin/python" -m trainer.task "${extra[@]}" "$@" || status=$?
if (( status >= 128 )) && [[ -e $job_dir/checkpoint ]]; then
  # Stopped by a signal (Ctrl-C, kill, preemption) with a checkpoint to keep:
  # a rerun without --job-dir would start a new job dir from step 0.
  printf 'to resume:  scripts/train_local.sh'
  for arg in "${extra[@]}" "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then printf ' %s' "$arg"
    else printf ' %q' "$arg"; fi
  done
  printf '\n'
fi
(( status == 0 )) || exit "$status"
echo
echo "results:    $job_dir/results.json"
echo "SavedModel: $job_dir/export/latest/ (newest) and $job_dir/export/best/ (most accurate)"
echo "TensorBoard: $VENV/bin/tensorboard --logdir $job_dir"
