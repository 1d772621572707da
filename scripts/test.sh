#!/usr/bin/env bash
# One command: set up, then run the whole test suite (unit, orchestration, PostgreSQL).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec .venv/bin/python -m pytest "$@"
