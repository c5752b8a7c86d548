#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, lists the Vulkan devices,
# writes a small random-weight LLaMA model with the project's own generator (no download)
# and generates text from it on the default device, then prints a llama-bench style table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
dir=${VKLLM_BUILD_DIR:-build}
./"$dir"/vkllm devices
model="$dir/demo-q4_0.gguf"
if [ ! -f "$model" ]; then
  ./"$dir"/tests/vkllm-gen-model --out "$model" --dim 512 --layers 4 --ffn 1536 --heads 8 \
      --kv-heads 4 --vocab 2000 --ctx 512 --type q4_0 --seed 1
fi
echo
echo "== vkllm run (random weights: the text is noise; the point is the pipeline) =="
./"$dir"/vkllm run -m "$model" -p "Once upon a time" -n 32 --temp 0.8 --seed 42
echo
echo "== vkllm bench =="
./"$dir"/vkllm bench -m "$model" -p 64 -n 16 -r 2
