#!/usr/bin/env bash
# What the alerting tests need: Debian's Prometheus server and promtool (`promtool check rules`, `promtool test
# rules`, and a real Prometheus scraping a live service in tests/service/test_alerting.py). Debian's package does
# not start a daemon where there is no systemd; the tests run their own with a temp config and data dir.
# And a C compiler: `make monitor` builds scripts/make_exit.c to exit with the monitor's own code.
# Idempotent: returns at once when every command is on PATH.
set -euo pipefail
exec bash "$(dirname "$0")/apt-ensure.sh" "prometheus promtool cc" "prometheus gcc libc6-dev"
