#!/usr/bin/env bash
# Install the Debian 12 packages skelex needs to build and test (idempotent:
# apt-get runs only when something is missing).
#   g++, libdcmtk-dev: the DICOM reader (a C++17 shim over DCMTK); libdcmtk-dev
#     brings libdcmtk17, whose data dictionary DCMTK reads at run time;
#   dcmtk: DCMTK's command-line tools (dump2dcm, dcmcjpeg, dcmcjpls, dcmcrle,
#     dcmconv, dcmodify, img2dcm), which the tests use to make DICOM fixtures.
#   libmicrohttpd-dev: the HTTP server of `skelex serve`;
#   chromium, nodejs + npm: the browser test (tests/browser, playwright-core
#     from npm, pinned in tests/browser/package-lock.json); wrk: the serve
#     load test (bench/serve_load.sh).
# Fuzzing (clang-14, libFuzzer) is for developers: scripts/dev-deps.sh.
set -euo pipefail
PKGS=(gcc g++ make libdnnl-dev libcjson-dev libspng-dev libjpeg62-turbo-dev libpng-dev libdcmtk-dev dcmtk
      libmicrohttpd-dev chromium wrk libopenmpi-dev openmpi-bin)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from elsewhere (e.g. NodeSource's nodejs, which
# bundles npm): ask Debian for them only when the commands are missing.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "skelex: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# playwright-core for the browser test, at the version the lock file pins
# (only when it is not installed yet at that version).
here="$(cd "$(dirname "$0")/.." && pwd)"
if command -v npm >/dev/null 2>&1 && [ -f "$here/tests/browser/package-lock.json" ]; then
  want=$(sed -n 's/.*"playwright-core": "\([0-9.]*\)".*/\1/p' "$here/tests/browser/package.json" | head -n 1)
  have=$( { sed -n 's/.*"version": "\([0-9.]*\)".*/\1/p' "$here/tests/browser/node_modules/playwright-core/package.json" 2>/dev/null || true; } | head -n 1)
  if [ "$want" != "$have" ]; then
    echo "skelex: npm ci in tests/browser (playwright-core $want)"
    (cd "$here/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
