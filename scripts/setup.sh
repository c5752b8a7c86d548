#!/usr/bin/env bash
# Installs the Debian 12 packages vkllm builds and runs with, when any is missing.
# Run as root (or with sudo available). Safe to run again.
set -euo pipefail
# clang with its sanitizer and libFuzzer runtimes (libclang-rt-dev) and llvm-symbolizer (llvm,
# for readable sanitizer reports) are for scripts/fuzz.sh and scripts/sanitize.sh.
pkgs=(build-essential cmake pkg-config libvulkan-dev libvulkan-volk-dev glslang-dev glslang-tools
      spirv-tools libcjson-dev mesa-vulkan-drivers vulkan-validationlayers
      clang libclang-rt-dev llvm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
