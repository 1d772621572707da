#!/usr/bin/env bash
# One command: set up, generate sample silos, consolidate them on the embedded default
# (SQLite hub and local folders under ./.mdm, nothing to start), print a summary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec .venv/bin/mdm demo "$@"
