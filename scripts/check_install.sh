#!/usr/bin/env bash
# Install check, as a newcomer installs: a fresh virtual environment with the pip this Python
# ships (not upgraded), `pip install .`, then the demo end to end from outside the source tree
# (real article pages through extraction, rendering and every platform stand-in). Fails on a
# setuptools warning about the project's own metadata, and on any import the install lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${NEWSBOT_CHECK_VENV:-${TMPDIR:-/tmp}/newsbot-install-check}"
unset PYTHONPATH  # the installed package, not this tree, must be what runs

"$PYTHON" -m venv --clear "$VENV"
echo "install check: $("$VENV/bin/python" -m pip --version)"
# setuptools reuses build/: a stale copy there could hide a file missing from the package.
rm -rf build ./*.egg-info

"$VENV/bin/python" -m pip wheel --verbose --no-deps --wheel-dir "$VENV/wheel" . >"$VENV/build.log" 2>&1 \
  || { cat "$VENV/build.log"; exit 1; }
if grep -E "Setuptools[A-Za-z]*Warning|is deprecated" "$VENV/build.log"; then
  echo "install check: the build warns about the project's packaging metadata (above)" >&2
  exit 1
fi

"$VENV/bin/python" -m pip install --quiet . || exit 1
rm -rf build ./*.egg-info
cd "$VENV"
"$VENV/bin/newsbot" --version
# Every sample must be posted: an extraction that fails on a missing import posts nothing.
"$VENV/bin/newsbot" demo --every 0.3 >"$VENV/demo.log" 2>&1 || { cat "$VENV/demo.log"; exit 1; }
tail -n 7 "$VENV/demo.log"
