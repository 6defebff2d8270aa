#!/usr/bin/env bash
# apt-ensure.sh "CMD1 CMD2 ..." "PKG1 PKG2 ..." — install Debian packages unless every command is on PATH.
# Shared by install-container-tools.sh and install-test-browser.sh: idempotent (returns at once when the
# tools are there), root or sudo, quiet apt.
set -euo pipefail
read -r -a commands <<< "$1"
read -r -a packages <<< "$2"

missing=()
for cmd in "${commands[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "present: ${commands[*]}"
  exit 0
fi
echo "missing: ${missing[*]}; installing ${packages[*]}"

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: installing ${packages[*]} needs root (or sudo)" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null
echo "installed: ${packages[*]}"
