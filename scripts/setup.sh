#!/usr/bin/env bash
# Installs everything alphafactory needs on a fresh Debian machine:
# the Debian packages behind the local stack and tests, and a pinned Python
# environment in .venv. Safe to re-run: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium-driver: the dashboard's browser tests drive Debian's chromium through it (Selenium)
# prometheus: promtool checks deploy/monitoring, and a real Prometheus scrapes the test stack
DEBIAN_PACKAGES=(postgresql redis-server kcat curl chromium chromium-driver libgomp1 prometheus)
VENV=${ALPHAFACTORY_VENV:-.venv}
PYTHON=${PYTHON:-python3.11}

missing_debian_packages() {
    local pkg
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
    done
}

install_debian_packages() {
    local missing
    missing=$(missing_debian_packages | tr '\n' ' ')
    [ -z "${missing// /}" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "alphafactory setup: missing Debian packages: $missing" >&2
        echo "  install them with: sudo apt-get install -y $missing" >&2
        exit 1
    fi
    echo "alphafactory setup: installing Debian packages: $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # Debian starts the packaged servers as system services; the local stack runs its
    # own instances on its own ports, so the system ones are not needed.
    if command -v service >/dev/null; then
        service redis-server stop >/dev/null 2>&1 || true
        service postgresql stop >/dev/null 2>&1 || true
        service prometheus stop >/dev/null 2>&1 || true
    fi
}

find_python() {
    if ! command -v "$PYTHON" >/dev/null; then
        PYTHON=python3
    fi
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        echo "alphafactory setup: Python 3.11 is required, found $("$PYTHON" --version 2>&1)" >&2
        echo "  set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
}

install_python_environment() {
    local stamp="$VENV/.alphafactory-installed"
    local want
    want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    find_python
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    echo "alphafactory setup: installing the Python environment into $VENV"
    # requirements.lock pins the whole dependency tree; torch==2.13.0 is the CPU wheel.
    "$VENV/bin/python" -m pip install -q -c requirements.lock -e ".[test]" 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -c "import alphafactory, torch, pytriton, kafka, psycopg, celery, onnxruntime, onnxscript" \
        || { echo "alphafactory setup: the Python environment is incomplete" >&2; exit 1; }
    echo "$want" >"$stamp"
}

install_debian_packages
install_python_environment
