#!/usr/bin/env bash
# Builds vkllm and its tests with sanitizers and runs them on lavapipe with validation on.
#   bash scripts/sanitize.sh address   ASan+UBSan in ./build-asan, the whole ctest suite
#   bash scripts/sanitize.sh thread    TSan in ./build-tsan, the tests that run threads
#                                      (test_threads*, test_startup*, and test_e2e_cpu: the
#                                      CPU path's pool and executor thread)
# Extra arguments go to ctest. The sanitizer options the tests run with are set in
# tests/CMakeLists.txt; suppressions (the uninstrumented driver's own reports only) are in
# tests/sanitizers/lsan.supp and tsan.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
kind=${1:-}
shift || true
case "$kind" in
  address) dir=${VKLLM_ASAN_BUILD_DIR:-build-asan} ;;
  thread) dir=${VKLLM_TSAN_BUILD_DIR:-build-tsan} ;;
  *) echo "usage: bash scripts/sanitize.sh address|thread [ctest args]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKLLM_SANITIZE="$kind" >/dev/null

if [ "$kind" = address ]; then
  cmake --build "$dir" -j"$(nproc)"
  cd "$dir"
  ctest --output-on-failure -j2 --timeout 1800 "$@"
  exit 0
fi

# TSan: only the tests that start threads of their own. Build just those (and the CLI, which
# such a test may drive).
tests=()
for src in tests/test_threads*.c tests/test_startup*.c tests/test_e2e_cpu.c; do
  [ -e "$src" ] && tests+=("$(basename "$src" .c)")
done
if [ ${#tests[@]} -eq 0 ]; then
  echo "sanitize thread: NOTE: no tests/test_threads*.c or tests/test_startup*.c yet; nothing" \
       "runs threads under TSan (the build is configured in $dir)"
  exit 0
fi
cmake --build "$dir" -j"$(nproc)" --target vkllm_cli "${tests[@]}"
cd "$dir"
ctest --output-on-failure -j2 --timeout 1800 -R 'test_threads|test_startup|test_e2e_cpu$' "$@"
