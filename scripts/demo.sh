#!/usr/bin/env bash
# The README's main-job command: installs everything (scripts/setup.sh), runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
exec .venv/bin/alphafactory demo "$@"
