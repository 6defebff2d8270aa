#!/usr/bin/env bash
# Installs Debian's chromium for the monitoring report's browser test (tests/test_monitoring.py opens
# the HTML report headless and fails on any console error). No browser download (playwright & co.):
# the closed network only reaches Debian apt, PyPI and npm.
# Idempotent: when chromium is already on PATH it returns at once, without touching apt.
set -euo pipefail
exec bash "$(dirname "$0")/apt-ensure.sh" "chromium" "chromium"
