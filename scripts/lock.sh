#!/usr/bin/env bash
# Refreshes the lock: requirements.txt (the trainer) and requirements-test.txt
# (the trainer plus test tools, the trainer's versions held fixed) from
# requirements*.in and setup.py's ranges, for Python 3.9-3.11 at once; and
# requirements-serving.txt (the serving image, current TensorFlow, Python
# 3.10+), which shares nothing with them.
# Versions already in a lock are kept unless an .in file needs others; pass
# --upgrade (or --upgrade-package NAME) to move them. Needs uv
# (pip install uv; the test venv has it).
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then  # the comment above
  awk '/^set /{exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"
  exit 0
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV=${UV:-$(command -v uv || echo .venv/bin/uv)}
if [[ ! -x $UV ]]; then
  echo "error: uv not found; pip install uv (or run scripts/test.sh once, which installs it into .venv)" >&2
  exit 1
fi
compile() {
  "$UV" pip compile --quiet --universal --python-version "${PYTHON_FLOOR:-3.9}" \
    --no-emit-package mnist-estimator-trainer \
    --custom-compile-command scripts/lock.sh "$@"
}
compile requirements.in -o requirements.txt "${@}"
compile requirements-test.in -c requirements.txt -o requirements-test.txt "${@}"
PYTHON_FLOOR=3.10 compile requirements-serving.in -o requirements-serving.txt "${@}"
