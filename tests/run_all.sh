#!/usr/bin/env bash
# make test: the sanitized C suite, then the browser test, then one closing
# line "total: N passed, N failed, N skipped" over both (the browser test
# counts as one test). Exit status non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1 \
  OMP_NUM_THREADS=2 ./build/test_skelex 2>&1 | tee build/test_c.log
c_rc=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' build/test_c.log | tail -n 1)
p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p'); p=${p:-0}
f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p'); f=${f:-1}
s=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p'); s=${s:-0}
[ "$c_rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1   # a crash after the summary still fails
if command -v node >/dev/null 2>&1; then
  node tests/browser/page.test.mjs 2>&1 | tee build/test_browser.log
  b_rc=${PIPESTATUS[0]}
else
  echo "browser test: SKIP (node not installed; scripts/deps.sh installs nodejs)" | tee build/test_browser.log
  b_rc=0
fi
if grep -q '^browser test: PASS' build/test_browser.log; then p=$((p + 1))
elif grep -q '^browser test: SKIP' build/test_browser.log && [ "$b_rc" -eq 0 ]; then s=$((s + 1))
else f=$((f + 1)); fi
echo "total: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
