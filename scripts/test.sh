#!/usr/bin/env bash
# One command: set up, then run the whole test suite (unit, orchestration, PostgreSQL, daemon,
# browser).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# The UI test drives Debian's Chromium. Install it where we can (root with apt); elsewhere the
# test skips and says why. A browser is never downloaded by Playwright.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the UI test ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 ||
    echo "chromium could not be installed; the UI test will skip" >&2
fi
# Both cores (pytest-xdist): a test file runs whole on one worker, so its module fixtures (a
# mastered hub, a served API) are built once. MDM_TEST_WORKERS=0 runs in this process.
exec .venv/bin/python -m pytest -n "${MDM_TEST_WORKERS:-2}" --dist loadfile "$@"
