#!/usr/bin/env bash
# The README's test command: installs everything (scripts/setup.sh), lints and checks the
# formatting (ruff), runs the tests.
# Tests start their own real local stack on free ports; nothing needs to be running.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || exit 1
.venv/bin/ruff check . || { echo "ruff found problems" >&2; exit 1; }
.venv/bin/ruff format --check . || { echo "not formatted: run .venv/bin/ruff format ." >&2; exit 1; }
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: treating that as a failure" >&2
    exit 1
fi
exit "$status"
