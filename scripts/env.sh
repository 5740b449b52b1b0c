# Sourced by the scripts in this folder: makes ROOT/.venv with a Python that
# TensorFlow 2.15 supports and installs the lock (requirements.txt, or
# requirements-test.txt, which holds the same versions plus test tools) and
# this package into it, again only when a lock or setup.py changed; then
# `pip check` must be clean.
# Where the machine has no Python 3.9-3.11 (Ubuntu 24.04 ships 3.12; Debian
# 13, Fedora 41+ and Homebrew 3.13), uv installs CPython 3.11 for .venv: uv
# from $UV or PATH, else fetched once from PyPI by scripts/get_uv.py (any
# python3 runs it) into ~/.cache/mnist-estimator-trainer/. uv, where there
# is one, also installs the lock (much faster than pip).
# Usage: ensure_venv requirements.txt|requirements-test.txt

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PROVISIONED_PYTHON=3.11  # what uv installs where the machine has no 3.9-3.11

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

_found_python() {
  if command -v python3 >/dev/null 2>&1; then python3 --version 2>&1; else echo 'no python3'; fi
}

_uv_version() {
  sed -n 's/^uv==\([^ ;]*\).*/\1/p' "$ROOT/requirements-test.txt"
}

_uv_cache() {
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/mnist-estimator-trainer/uv-$(_uv_version)"
}

# The uv this machine has: $UV, on PATH, or fetched before; nothing if none.
_uv_here() {
  if [[ -n ${UV:-} ]]; then echo "$UV"
  elif command -v uv >/dev/null 2>&1; then command -v uv
  elif [[ -x $(_uv_cache)/uv ]]; then echo "$(_uv_cache)/uv"
  fi
}

# A uv, fetched from the package index if need be; else the reason, status 1.
_uv_or_fetch() {
  local py
  if [[ -n $(_uv_here) ]]; then _uv_here; return 0; fi
  for py in python3 python; do
    if command -v "$py" >/dev/null 2>&1; then
      "$py" "$ROOT/scripts/get_uv.py" "$(_uv_version)" "$(_uv_cache)" 2>&1
      return
    fi
  done
  echo 'no python3 to fetch it with'
  return 1
}

# uv's error lines (error:, Caused by:) as one clause.
_one_line() {
  sed -E -e 's/^ *(error|Caused by|cause): *//' -e '/^ *$/d' | paste -sd ';' - | sed 's/;/; /g'
}

_create_venv() {
  local py uv found out existed=
  if py=$(_find_python); then
    echo "creating $VENV with $("$py" --version 2>&1)"
    "$py" -m venv "$VENV"
    return
  fi
  found=$(_found_python)
  if ! uv=$(_uv_or_fetch); then
    echo "error: TensorFlow 2.15 (the last release with tf.estimator) needs Python 3.9-3.11, found $found, and uv, which would install one, could not be fetched (${uv#error: }); install uv (curl -LsSf https://astral.sh/uv/install.sh | sh) and rerun, or set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  echo "creating $VENV with Python $PROVISIONED_PYTHON from uv (found $found; TensorFlow 2.15 needs 3.9-3.11)"
  [[ -e $VENV ]] && existed=1
  if ! out=$("$uv" venv --quiet --seed --python "$PROVISIONED_PYTHON" "$VENV" 2>&1); then
    [[ -n $existed ]] || rm -rf "$VENV"  # only what this attempt made
    echo "error: uv could not make $VENV with Python $PROVISIONED_PYTHON ($(_one_line <<<"$out")); rerun once online, or install Python 3.11 and set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
}

_stamp() {
  local sum=sha256sum
  command -v sha256sum >/dev/null 2>&1 || sum='shasum -a 256'  # macOS
  (cd "$ROOT" && cat "$@" requirements.txt setup.py | $sum | cut -c1-64)
}

ensure_venv() {
  local stamp installed uv
  if [[ -x $VENV/bin/python ]] && ! _supported "$VENV/bin/python"; then
    echo "error: $VENV runs $("$VENV/bin/python" --version 2>&1), but TensorFlow 2.15 (the last release with tf.estimator) needs Python 3.9-3.11; remove $VENV and rerun" >&2
    exit 1
  fi
  [[ -x $VENV/bin/python ]] || _create_venv
  stamp=$(_stamp "$@")
  installed=$(cat "$VENV/.installed" 2>/dev/null || true)
  # The test lock holds the trainer's versions too: a test venv trains.
  if [[ $installed == "$stamp" ]] || [[ $* == requirements.txt && $installed == "$(_stamp requirements-test.txt)" ]]; then
    return 0
  fi
  echo "installing the locked requirements into $VENV (first time: about a minute)"
  uv=$(_uv_here)
  if [[ -n $uv ]]; then
    (cd "$ROOT" && "$uv" pip install --quiet --python "$VENV/bin/python" \
      $(printf -- '-r %s ' "$@") -e .)
  else
    (cd "$ROOT" && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      $(printf -- '-r %s ' "$@") -e .)
  fi
  "$VENV/bin/python" -m pip check --disable-pip-version-check >/dev/null || {
    "$VENV/bin/python" -m pip check --disable-pip-version-check >&2
    echo "error: the packages in $VENV conflict (above); remove $VENV and rerun" >&2
    exit 1
  }
  echo "$stamp" > "$VENV/.installed"
}
