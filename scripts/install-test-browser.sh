#!/usr/bin/env bash
# What the browser tests need: Debian's chromium (the monitoring report and the DVC plots page are opened
# headless and fail on any console error; the plots page carries its Vega scripts inline, .dvc/plots/page.html).
# No browser download (playwright & co.): the closed network only reaches Debian apt, PyPI and npm.
# Idempotent: returns at once when chromium is there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/apt-ensure.sh" "chromium" "chromium"
