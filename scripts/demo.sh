#!/usr/bin/env bash
# Install newsbot into .venv and run the demo: a sample news site and stand-in platforms on
# loopback, no accounts needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/newsbot demo "$@"
