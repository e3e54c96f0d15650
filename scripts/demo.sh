#!/usr/bin/env bash
# Install newsbot into .venv and run the demo: a sample news site and stand-in platforms on
# loopback, no accounts needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Install only when pyproject.toml changed since the last install (the code itself is an
# editable install: edits need no reinstall).
stamp=".venv/.newsbot-demo-install"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing newsbot into .venv (once per change of pyproject.toml)..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
  echo "$want" >"$stamp"
fi
exec .venv/bin/newsbot demo "$@"
