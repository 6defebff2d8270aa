#!/usr/bin/env bash
# What `make bench` measures with: Debian's wrk, the load generator of every serving table (bench/loadgen.py
# falls back to an asyncio client without it, which takes far more of the 2 cores from the servers it measures).
# Idempotent: returns at once when wrk is on PATH.
set -euo pipefail
exec bash "$(dirname "$0")/apt-ensure.sh" "wrk" "wrk"
