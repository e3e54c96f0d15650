#!/usr/bin/env bash
# Install newsbot with its test extras into .venv and run the whole test suite and ruff, then
# the install check (a fresh venv with Python's own pip, `pip install .`, the demo end to end).
# The check runs with the whole suite only (no pytest arguments); NEWSBOT_SKIP_INSTALL_CHECK=1
# skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
# The web desk's browser test drives Debian's chromium through chromedriver (no download).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
            || echo "chromium could not be installed: the browser test will skip" >&2
    fi
fi
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
if [ $# -eq 0 ] && [ -z "${NEWSBOT_SKIP_INSTALL_CHECK:-}" ]; then
  ./scripts/check_install.sh
fi
