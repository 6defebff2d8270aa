#!/usr/bin/env bash
# Installs Debian's chromium for the monitoring report's browser test (tests/test_monitoring.py opens
# the HTML report headless and fails on any console error). No browser download (playwright & co.):
# the closed network only reaches Debian apt, PyPI and npm.
# Idempotent: when chromium is already on PATH it returns at once, without touching apt.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "test browser present: chromium"
  exit 0
fi
echo "test browser missing; installing Debian's chromium"

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "error: installing chromium needs root (or sudo)" >&2
    exit 1
  fi
else
  sudo=()
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq chromium >/dev/null
echo "installed: $(chromium --version 2>/dev/null)"
