#!/usr/bin/env bash
# Creates .venv and installs the project with its dev extra, once per change of pyproject.toml.
# Sourced by scripts/demo.sh and scripts/test.sh; needs only Python 3.11+ and network to PyPI.
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
      echo "$candidate"
      return 0
    fi
  done
  echo "Python 3.11-3.13 is required (set PYTHON=/path/to/python)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
STAMP=.venv/.mdm-installed
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "Installing the hub and its dependencies into .venv (first time: a few minutes) ..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  # --no-compile: byte-code is written on first import, only for the modules actually used.
  .venv/bin/python -m pip install --quiet --no-compile -e '.[dev]'
  echo "$WANT" > "$STAMP"
fi
