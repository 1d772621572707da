#!/usr/bin/env bash
# Creates .venv from uv.lock (the project editable, with the dev dependency group), once per
# change of pyproject.toml or uv.lock. Sourced by scripts/demo.sh and scripts/test.sh; needs only
# Python 3.11+ and network to PyPI. uv itself is bootstrapped into .uv-bootstrap/ when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# Byte-code caching makes every later start much faster (imports of dagster and pandas).
unset PYTHONDONTWRITEBYTECODE

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)'; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "Python 3.11-3.13 is required (set PYTHON=/path/to/python)" >&2
  return 1
}

find_uv() {
  if [ -x .uv-bootstrap/bin/uv ]; then
    echo .uv-bootstrap/bin/uv
  elif command -v uv >/dev/null 2>&1; then
    command -v uv
  else
    echo "Bootstrapping uv into .uv-bootstrap/ ..." >&2
    "$1" -m venv .uv-bootstrap
    .uv-bootstrap/bin/python -m pip install --quiet --disable-pip-version-check uv
    echo .uv-bootstrap/bin/uv
  fi
}

STAMP=.venv/.mdm-installed
WANT="$(cat pyproject.toml uv.lock | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "Installing the hub and its dependencies into .venv (first time: a few minutes) ..." >&2
  PY="$(pick_python)"
  UV="$(find_uv "$PY")"
  # The lock is resolved against PyPI alone; a Python found here is used, never downloaded.
  # --compile-bytecode is left off: byte-code is written on first import, only where used.
  UV_PROJECT_ENVIRONMENT=.venv UV_PYTHON_DOWNLOADS=never \
    "$UV" sync --frozen --quiet --python "$PY"
  echo "$WANT" > "$STAMP"
fi
