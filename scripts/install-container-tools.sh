#!/usr/bin/env bash
# Installs what building and running the Bento's image needs on a Debian machine with no Docker engine:
# rootful podman/buildah with runc (crun 1.8 fails on these hybrid-cgroup hosts), overlay helpers,
# and debootstrap for the registry-free base image (see scripts/container.py base-image).
# Idempotent: when every tool is already on PATH it returns at once, without touching apt.
set -euo pipefail
exec bash "$(dirname "$0")/apt-ensure.sh" \
  "podman buildah runc fuse-overlayfs slirp4netns newuidmap debootstrap" \
  "podman buildah runc fuse-overlayfs slirp4netns uidmap debootstrap"
