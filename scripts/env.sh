# Sourced by the scripts in this folder: makes ROOT/.venv with a Python that
# TensorFlow 2.15 supports and installs the lock (requirements.txt, or
# requirements-test.txt, which holds the same versions plus test tools) and
# this package into it, again only when a lock or setup.py changed; then
# `pip check` must be clean.
# Usage: ensure_venv requirements.txt|requirements-test.txt

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}

_supported() {
  "$1" -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 11))' 2>/dev/null
}

_find_python() {
  local py
  for py in ${PYTHON:-} python3.11 python3.10 python3.9 python3; do
    if command -v "$py" >/dev/null 2>&1 && _supported "$py"; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

ensure_venv() {
  local py stamp
  if [[ -x $VENV/bin/python ]] && ! _supported "$VENV/bin/python"; then
    echo "error: $VENV runs $("$VENV/bin/python" --version 2>&1), but TensorFlow 2.15 (the last release with tf.estimator) needs Python 3.9-3.11; remove $VENV and rerun" >&2
    exit 1
  fi
  if [[ ! -x $VENV/bin/python ]]; then
    if ! py=$(_find_python); then
      echo "error: TensorFlow 2.15 (the last release with tf.estimator) needs Python 3.9-3.11, found $(python3 --version 2>&1 || echo 'no python3'); install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
      exit 1
    fi
    echo "creating $VENV with $("$py" --version 2>&1)"
    "$py" -m venv "$VENV"
  fi
  stamp=$(cd "$ROOT" && cat "$@" requirements.txt setup.py | sha256sum | cut -c1-64)
  if [[ $(cat "$VENV/.installed" 2>/dev/null) != "$stamp" ]]; then
    echo "installing the locked requirements into $VENV (first time: about a minute)"
    (cd "$ROOT" && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      $(printf -- '-r %s ' "$@") -e .)
    "$VENV/bin/python" -m pip check --disable-pip-version-check >/dev/null || {
      "$VENV/bin/python" -m pip check --disable-pip-version-check >&2
      echo "error: the packages in $VENV conflict (above); remove $VENV and rerun" >&2
      exit 1
    }
    echo "$stamp" > "$VENV/.installed"
  fi
}
