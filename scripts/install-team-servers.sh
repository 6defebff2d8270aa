#!/usr/bin/env bash
# What the team-mode tests start on loopback: Debian's openssh-server (a real SSH DVC remote) and
# postgresql (the MLflow server's backend store). The tests run their own sshd and cluster in temp dirs
# on free ports; nothing is started here, and no system service is enabled.
# Idempotent: returns at once when both are installed.
set -euo pipefail
exec bash "$(dirname "$0")/apt-ensure.sh" \
  "/usr/sbin/sshd ssh-keygen pg_ctlcluster" \
  "openssh-server openssh-client postgresql"
