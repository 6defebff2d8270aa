#!/usr/bin/env bash
# What the browser tests need: Debian's chromium (the monitoring report and the DVC plots are opened
# headless and fail on any console error) and, for the plots page, the Vega libraries DVC's HTML loads
# from a CDN, installed from the npm registry into tests/fixtures/vega (tests run offline).
# No browser download (playwright & co.): the closed network only reaches Debian apt, PyPI and npm.
# Idempotent: returns at once when both are there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/apt-ensure.sh" "chromium" "chromium"
vega="$root/tests/fixtures/vega"
if [ ! -f "$vega/node_modules/vega-embed/build/vega-embed.min.js" ]; then
    command -v npm >/dev/null || bash "$root/scripts/apt-ensure.sh" "npm" "npm"
    npm install --prefix "$vega" --no-audit --no-fund --loglevel=error --legacy-peer-deps  # the versions DVC pairs
fi
