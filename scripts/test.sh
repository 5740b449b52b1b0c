#!/usr/bin/env bash
# Sets up .venv with the test requirements (first run only), then runs the
# test suite. Arguments go to pytest. Set MNIST_DATA_DIR to also run the
# tests that train on the real MNIST files.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ensure_venv requirements-test.txt
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
