#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite on lavapipe with validation layers on.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
bash scripts/build.sh -DVKLLM_WERROR=$werror
cd "${VKLLM_BUILD_DIR:-build}"
ctest --output-on-failure -j2 --timeout 900
