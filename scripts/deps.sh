#!/usr/bin/env bash
# Install the Debian 12 packages skelex needs to build and test (idempotent:
# apt-get runs only when something is missing).
#   g++, libdcmtk-dev: the DICOM reader (a C++17 shim over DCMTK); libdcmtk-dev
#     brings libdcmtk17, whose data dictionary DCMTK reads at run time;
#   dcmtk: DCMTK's command-line tools (dump2dcm, dcmcjpeg, dcmcjpls, dcmcrle,
#     dcmconv, dcmodify, img2dcm), which the tests use to make DICOM fixtures.
# Fuzzing (clang-14, libFuzzer) is for developers: scripts/dev-deps.sh.
set -euo pipefail
PKGS=(gcc g++ make libdnnl-dev libcjson-dev libspng-dev libjpeg62-turbo-dev libpng-dev libdcmtk-dev dcmtk)
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
