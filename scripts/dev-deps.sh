#!/usr/bin/env bash
# Developer-only packages: the PyTorch twin (fixtures, benchmark peer), the
# Pillow fixture scripts, and clang-14 with libFuzzer for `make fuzz`. Not
# needed to build, run or test skelex.
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
# libopenblas0-openmp: without it torch falls back to the reference BLAS (about 15x slower)
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch python3-numpy python3-pil libopenblas0-openmp >/dev/null
# make fuzz: clang-14 and its sanitizer/libFuzzer runtimes
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null
