#!/usr/bin/env bash
# Install the Debian 12 packages skelex needs to build and test (idempotent:
# apt-get runs only when something is missing).
set -euo pipefail
PKGS=(gcc make libdnnl-dev libcjson-dev libspng-dev libjpeg62-turbo-dev libpng-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "skelex: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
