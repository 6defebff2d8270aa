#!/usr/bin/env bash
# Installs what building and running the Bento's image needs on a Debian machine with no Docker engine:
# rootful podman/buildah with runc (crun 1.8 fails on these hybrid-cgroup hosts), overlay helpers,
# and debootstrap for the registry-free base image (see scripts/container.py base-image).
# Idempotent: when every tool is already on PATH it returns at once, without touching apt.
set -euo pipefail

packages=(podman buildah runc fuse-overlayfs slirp4netns uidmap debootstrap)
commands=(podman buildah runc fuse-overlayfs slirp4netns newuidmap debootstrap)

missing=()
for cmd in "${commands[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "container tools present: ${commands[*]}"
  exit 0
fi
echo "container tools missing: ${missing[*]}; installing ${packages[*]}"

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "error: installing ${packages[*]} needs root (or sudo)" >&2
    exit 1
  fi
else
  sudo=()
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null
echo "installed: $(podman --version), $(buildah --version | cut -d' ' -f1-3), $(runc --version | head -n1)"
