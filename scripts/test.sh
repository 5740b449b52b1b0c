#!/usr/bin/env bash
# Sets up .venv with the test requirements (first run only), then runs the
# test suite. Arguments go to pytest. With none, the whole suite: the tests
# marked serial (bounds on how long killed processes take) one at a time,
# then the rest on every core (pytest-xdist, a test file per worker). Set
# MNIST_DATA_DIR to also run the tests that train on the real MNIST files.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ensure_venv requirements-test.txt
cd "$ROOT"
if (( $# )); then
  exec "$VENV/bin/python" -m pytest "$@"
fi
status=0
"$VENV/bin/python" -m pytest -m serial || status=$?
"$VENV/bin/python" -m pytest -m 'not serial' -n auto --dist loadfile || status=$?
exit "$status"
