#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) in ./build-fuzz (or $VKLLM_FUZZ_BUILD_DIR),
# writes their seed corpora and runs each target for SECONDS (default 60). Prints executions
# and corpus size per target; exits non-zero if any target crashed, leaked, hit a sanitizer
# report or broke one of its checks (the input that did it is kept under fuzz-artifacts/).
# Usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
secs=${1:-60}
shift || true
dir=${VKLLM_FUZZ_BUILD_DIR:-build-fuzz}
CC=${CC_FUZZ:-clang} CXX=${CXX_FUZZ:-clang++} cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DVKLLM_FUZZ=ON -DVKLLM_BUILD_TESTS=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target fuzz >/dev/null

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for t in fuzz/fuzz_*.c; do targets+=("$(basename "$t" .c)"); done
fi

# Seeds are rewritten every run; the working corpus (what the fuzzer found) is kept between
# runs, so longer and repeated runs build on each other.
export VKLLM_TEST_DATA=${VKLLM_TEST_DATA:-$PWD/../shared/models}
rm -rf "$dir/fuzz-seeds"
"$dir/fuzz/vkllm-fuzz-seeds" "$dir/fuzz-seeds" "$VKLLM_TEST_DATA"
mkdir -p "$dir/fuzz-artifacts" "$dir/fuzz-logs"

# The run must not write into the user's shader cache; leaks fail the run like crashes.
export VKLLM_CACHE_DIR=""
# no_huge_pages_for_shadow=0: the cache readers may allocate up to 256 MiB for one input, and
# ASan poisons the shadow of each such block (see tests/CMakeLists.txt); this makes it cheap.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:no_huge_pages_for_shadow=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
# executions: inputs run; coverage: edges reached; corpus: the inputs libFuzzer keeps (seeds
# that add coverage and what it found), as count and bytes; new: inputs saved this run.
printf '%-20s %11s %8s %8s %15s %6s  %s\n' target executions exec/s coverage corpus new result
for t in "${targets[@]}"; do
  corpus="$dir/fuzz-corpus/$t"
  mkdir -p "$corpus"
  log="$dir/fuzz-logs/$t.log"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  rc=0
  # -rss_limit_mb: the readers may legitimately allocate what a header asks for up to their
  # own caps (256 MiB for a pipeline cache); more than this is a finding.
  "$dir/fuzz/$t" "$corpus" "$dir/fuzz-seeds/$t" -max_total_time="$secs" -print_final_stats=1 \
      -rss_limit_mb=2048 -timeout=30 -artifact_prefix="$dir/fuzz-artifacts/$t-" "${dict[@]}" \
      >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (exit $rc, see $log)"; failed+=("$t"); fi
  printf '%-20s %11s %8s %8s %15s %6s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
      "${corp:-?}" "${added:-?}" "$result"
done
if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo
    echo "== $t: end of $dir/fuzz-logs/$t.log =="
    tail -n 60 "$dir/fuzz-logs/$t.log"
  done
  exit 1
fi
