#!/usr/bin/env bash
# Installs the Debian 12 packages vkllm builds and runs with, when any is missing.
# Run as root (or with sudo available). Safe to run again.
set -euo pipefail
# clang with its sanitizer and libFuzzer runtimes (libclang-rt-dev) and llvm-symbolizer (llvm,
# for readable sanitizer reports) are for scripts/fuzz.sh and scripts/sanitize.sh.
pkgs=(build-essential cmake pkg-config libvulkan-dev libvulkan-volk-dev glslang-dev glslang-tools
      spirv-tools libcjson-dev mesa-vulkan-drivers vulkan-validationlayers
      clang libclang-rt-dev llvm)
# The GTK 4 example (examples/gtk) and its test under a virtual X server: wanted, not needed.
# When they cannot be installed the example is not built and its test says SKIP.
optional=(libgtk-4-dev xvfb xauth xdotool)

missing_of() { # prints the packages of "$@" that are not installed
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t missing < <(missing_of "${pkgs[@]}")
mapfile -t missing_opt < <(missing_of "${optional[@]}")
if [ ${#missing[@]} -eq 0 ] && [ ${#missing_opt[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || [ ${#missing[@]} -eq 0 ]
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ${#missing_opt[@]} -gt 0 ]; then
  echo "setup: installing ${missing_opt[*]} (optional: the GTK example and its test)"
  $sudo apt-get install -y -qq --no-install-recommends "${missing_opt[@]}" ||
    echo "setup: could not install ${missing_opt[*]}; the GTK example is not built and its test is skipped"
fi
