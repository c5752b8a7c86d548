#!/usr/bin/env bash
# `vkllm plan` on full-size LLaMA-65B files that are holes after their header (vkllm-gen-model
# --sparse): the placement on two 24 GiB cards, one card plus host memory, a 3:1 split, -ngl,
# and a refusal, checked from --json. Each plan must answer in under a second with under
# 200 MB resident: it reads the header, never the 36 GiB of weights.
# Usage: bash cli_plan.sh PATH_TO_vkllm (ctest sets VKLLM_BIN_DIR and VKLLM_TEST_TMP).
set -u

VKLLM=${1:?usage: cli_plan.sh PATH_TO_vkllm}
GEN=${VKLLM_BIN_DIR:?VKLLM_BIN_DIR is not set}/tests/vkllm-gen-model
TMP=$(mktemp -d "${VKLLM_TEST_TMP:-${TMPDIR:-/tmp}}/cli_plan.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT

GIB=$((1024 * 1024 * 1024))
# A plan takes ~0.2-0.4 s here when the machine is quiet; reading 36 GB of weights would take
# tens of seconds. The limit leaves room for a loaded machine; the peak-RSS check below is the
# sharper evidence that the weights are not touched.
MAX_MS=3000
MAX_RSS_KB=$((200 * 1024))
# Sanitizer builds (their options are in the test environment) run several times slower and
# hold more memory of their own; reading the weights would still take gigabytes.
[ -n "${ASAN_OPTIONS:-}${TSAN_OPTIONS:-}" ] && MAX_MS=10000 && MAX_RSS_KB=$((1024 * 1024))

ok() { echo "ok - $*"; }
fail() {
    echo "not ok - $*"
    [ -s "$TMP/err" ] && { echo "--- stderr:"; head -c 4000 "$TMP/err"; echo; }
    exit 1
}

command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read the JSON"; exit 0; }
[ -x "$GEN" ] || fail "no generator at $GEN"
TIME_BIN=
[ -x /usr/bin/time ] && TIME_BIN=/usr/bin/time

# ---------------------------------------------------------------- the files ----
gen_sparse() { # FILE TYPE
    "$GEN" --out "$1" --llama-65b --type "$2" --sparse 2>"$TMP/err" >"$TMP/out" ||
        fail "vkllm-gen-model --llama-65b --type $2 --sparse"
    local apparent disk_kb
    apparent=$(stat -c %s "$1")
    disk_kb=$(du -k "$1" | cut -f1)
    [ "$disk_kb" -lt $((64 * 1024)) ] || fail "$2: the sparse file occupies ${disk_kb} KiB of disk"
    ok "$2: sparse 65B file of $apparent bytes occupies ${disk_kb} KiB of disk"
    echo "$apparent" >"$TMP/size"
}

Q4KM=$TMP/llama-65b-q4_K_M.gguf
Q40=$TMP/llama-65b-q4_0.gguf
gen_sparse "$Q4KM" q4_K_M
size=$(cat "$TMP/size")
[ "$size" -ge $((36 * GIB)) ] && [ "$size" -le $((37 * GIB)) ] ||
    fail "q4_K_M: file size $size is not 36-37 GiB"
ok "q4_K_M: file size $(python3 -c "print(f'{$size / 2**30:.2f}')") GiB, as LLaMA-65B Q4_K_M"
gen_sparse "$Q40" q4_0
size=$(cat "$TMP/size")
# 65.3e9 weights at 4.5 bits, plus F32 norms: 34.2 GiB.
[ "$size" -ge $((33 * GIB)) ] && [ "$size" -le $((35 * GIB)) ] ||
    fail "q4_0: file size $size is not 33-35 GiB"
ok "q4_0: file size $(python3 -c "print(f'{$size / 2**30:.2f}')") GiB, as LLaMA-65B Q4_0"

# ------------------------------------------------------------- running plan ----
# plan NAME EXPECTED_RC ARGS...: runs `vkllm plan ARGS`, stdout to $TMP/out, stderr to
# $TMP/err; checks the exit status, the wall time and the peak resident memory.
# A run over the time limit is repeated (up to three runs, the fastest counts): a loaded CI
# machine can stall one run, but no run that reads 36 GiB comes in under a second.
plan() {
    local name=$1 want=$2 rc t0 t1 ms=999999 run_ms rss= try
    shift 2
    for try in 1 2 3; do
        t0=$(date +%s%N)
        if [ -n "$TIME_BIN" ]; then
            "$TIME_BIN" -f %M -o "$TMP/rss" "$VKLLM" plan "$@" >"$TMP/out" 2>"$TMP/err"
            rc=$?
            rss=$(tail -n 1 "$TMP/rss")
        else
            "$VKLLM" plan "$@" >"$TMP/out" 2>"$TMP/err"
            rc=$?
        fi
        t1=$(date +%s%N)
        run_ms=$(((t1 - t0) / 1000000))
        [ "$run_ms" -lt "$ms" ] && ms=$run_ms
        [ "$rc" -eq "$want" ] || { head -c 4000 "$TMP/out"; fail "$name: exit status $rc, expected $want (vkllm plan $*)"; }
        [ "$ms" -lt "$MAX_MS" ] && break
    done
    [ "$ms" -lt "$MAX_MS" ] || fail "$name: took $ms ms (limit $MAX_MS): does it read the weights?"
    if [ -n "$rss" ]; then
        [ "$rss" -lt "$MAX_RSS_KB" ] ||
            fail "$name: peak resident memory $rss KiB (limit $MAX_RSS_KB): does it read the weights?"
        ok "$name: exit $rc in $ms ms, peak RSS $((rss / 1024)) MiB"
    else
        ok "$name: exit $rc in $ms ms (no /usr/bin/time: RSS not checked)"
    fi
}

# The helpers every JSON check starts with: p is the plan, L its layers, D its devices.
cat >"$TMP/prelude.py" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
GIB = 2**30
L = p["layers"]
D = p["devices"]
host_layers = [l["index"] for l in L if l["where"] == "host"]
def dev_layers(i):
    return [l["index"] for l in L if l["where"] == i]
# One layer of LLaMA-65B: its weights (about weight_bytes / 80; the Q6_K "more bits" layers
# a quarter more) and its K and V caches (n_ctx x 8192 x 2 bytes each, F16).
layer_bytes = p["weight_bytes"] / len(L) * 1.25 + 2 * p["n_ctx"] * 8192 * 2
def fits():
    for d in D:
        assert 0 < d["used_bytes"] <= d["budget_bytes"], \
            f"device {d['index']}: used {d['used_bytes']} > budget {d['budget_bytes']}"
        assert d["used_bytes"] == d["weights_bytes"] + d["kv_bytes"] + d["scratch_bytes"], \
            f"device {d['index']}: used != weights + kv + scratch"
    assert p["host_bytes"] <= p["host_budget_bytes"], \
        f"host {p['host_bytes']} > budget {p['host_budget_bytes']}"
def contiguous():
    # Each device's layers form one range, the ranges follow each other in device order, and
    # every layer a device holds is computed by it.
    nxt = 0
    for d in D:
        mine = dev_layers(d["index"])
        if not mine:
            continue
        assert mine == list(range(mine[0], mine[0] + len(mine))), \
            f"device {d['index']}: layers {mine} are not one range"
        assert mine[0] >= nxt, f"device {d['index']} starts at {mine[0]}, before {nxt}"
        assert d["first_layer"] == mine[0], \
            f"device {d['index']}: first_layer {d['first_layer']}, its layers start at {mine[0]}"
        nxt = mine[-1] + 1
    for l in L:
        if l["where"] != "host":
            assert l["compute"] == l["where"], \
                f"layer {l['index']} is on {l['where']} but computed by {l['compute']}"
EOF

# check NAME <<'PY' ... PY: the prelude, then the Python on stdin, over the JSON plan in
# $TMP/out; a failed assert names the wrong value.
check() {
    cat "$TMP/prelude.py" - >"$TMP/check.py"
    python3 "$TMP/check.py" "$TMP/out" >"$TMP/check" 2>&1 || { cat "$TMP/check"; fail "$1"; }
    ok "$1"
}

TWO24=(--device 0,0 --device-mem 24G,24G)

# ------------------------------------------------------ two 24 GiB cards ----
plan "q4_K_M on 2 x 24 GiB" 0 -m "$Q4KM" "${TWO24[@]}" --host-mem 64G --json
check "q4_K_M on 2 x 24 GiB: 80 layers, none on the host, 40/40 within one layer, each device within its budget" <<'PY'
assert len(L) == 80, f"{len(L)} layers"
assert [l["index"] for l in L] == list(range(80))
assert not host_layers, f"host layers {host_layers}"
assert len(D) == 2, f"{len(D)} devices"
assert [d["device_index"] for d in D] == [0, 0]
assert all(d["budget_bytes"] == 24 * GIB for d in D), [d["budget_bytes"] for d in D]
fits(); contiguous()
n = [len(dev_layers(i)) for i in (0, 1)]
assert sum(n) == 80 and all(abs(k - 40) <= 1 for k in n), f"layers per device {n}"
assert [d["n_layers"] for d in D] == n, f"n_layers {[d['n_layers'] for d in D]} vs {n}"
assert p["n_ctx"] == 2048, p["n_ctx"]
assert p["hop_bytes_per_token"] > 0, "two devices but no bytes cross between them"
assert p["est_decode_tps"] > 0 and p["bandwidth_measured"] is False
PY

plan "q4_K_M on 2 x 24 GiB at 900 GB/s" 0 -m "$Q4KM" "${TWO24[@]}" --host-mem 64G \
    --bandwidth 900,900 --json
check "decode estimate: the bytes each device reads per token at 900 GB/s" <<'PY'
assert [d["read_gbps"] for d in D] == [900, 900], [d["read_gbps"] for d in D]
t = sum(d["read_bytes_per_token"] / 900e9 for d in D)
assert sum(d["read_bytes_per_token"] for d in D) >= 0.9 * p["weight_bytes"], "a token reads less than the weights"
want = 1 / t
assert abs(p["est_decode_tps"] - want) <= 0.1 * want, f"estimate {p['est_decode_tps']:.2f} t/s, bytes/bandwidth gives {want:.2f}"
PY

plan "q4_K_M on 2 x 24 GiB, table" 0 -m "$Q4KM" "${TWO24[@]}" --host-mem 64G
grep -q 'layers 0-' "$TMP/out" || fail "the table has no 'layers 0-' line"
grep -q 'nominal' "$TMP/out" || fail "the table does not say the bandwidths are nominal"
grep -q 'decode estimate' "$TMP/out" || fail "the table has no decode estimate"
ok "the table prints the layer ranges and a nominal decode estimate"

# ------------------------------------------- one 24 GiB card + host memory ----
plan "q4_K_M on 1 x 24 GiB + 64 GiB host" 0 -m "$Q4KM" --device 0 --device-mem 24G --host-mem 64G \
    --bandwidth 900 --host-bandwidth 25 --json
check "q4_K_M on 1 x 24 GiB + 64 GiB host: the device full to within one layer, the rest in host memory" <<'PY'
assert len(L) == 80 and len(D) == 1
fits()
d = D[0]
assert d["budget_bytes"] - d["used_bytes"] <= layer_bytes, f"device left {d['budget_bytes'] - d['used_bytes']} bytes free, more than a layer ({layer_bytes:.0f})"
assert all(l["compute"] == 0 for l in L), "a layer is computed by no device"
assert host_layers or p["host_ffn_tensors"] > 0, "nothing in host memory"
assert host_layers == list(range(80 - len(host_layers), 80)), f"host layers {host_layers} are not the last ones"
assert p["host_bytes"] > 0
placed = d["weights_bytes"] + d["host_weight_bytes"]
assert abs(placed - p["weight_bytes"]) <= 0.02 * p["weight_bytes"], f"device {d['weights_bytes']} + host {d['host_weight_bytes']} != weights {p['weight_bytes']}"
assert d["host_read_bytes_per_token"] > 0
t = d["read_bytes_per_token"] / 900e9 + d["host_read_bytes_per_token"] / 25e9
assert abs(p["est_decode_tps"] - 1 / t) <= 0.1 / t, f"estimate {p['est_decode_tps']:.3f} t/s, bytes/bandwidth gives {1 / t:.3f}"
PY

# ------------------------------------- one 24 GiB card + the CPU path ----
plan "q4_K_M on 1 x 24 GiB + cpu" 0 -m "$Q4KM" --device 0,cpu --device-mem 24G --host-mem 64G \
    --bandwidth 900,50 --json
check "q4_K_M on 1 x 24 GiB + cpu: whole layers on the CPU path, computed from the file" <<'PY'
assert len(D) == 2 and D[1]["device_index"] == "cpu" and D[0]["device_index"] == 0
d, c = D
assert 0 < d["used_bytes"] <= d["budget_bytes"]
assert d["budget_bytes"] - d["used_bytes"] <= layer_bytes, "the card is not full to within one layer"
assert c["used_bytes"] == 0 and c["weights_bytes"] == 0, "the CPU path holds device memory"
assert p["host_ffn_tensors"] == 0, "single FFN matrices in host memory beside a CPU path"
cpu_layers = [l["index"] for l in L if l["compute"] == 1]
assert cpu_layers and cpu_layers == host_layers, f"cpu computes {cpu_layers}, host layers {host_layers}"
assert all(l["kv"] == "host" for l in L if l["compute"] == 1)
assert c["first_layer"] == cpu_layers[0] and c["n_layers"] == len(cpu_layers)
assert p["output_device"] == 1 and p["stream_min_batch"] == 0
assert p["host_bytes"] <= p["host_budget_bytes"]
t = d["read_bytes_per_token"] / 900e9 + c["host_read_bytes_per_token"] / 50e9
assert abs(p["est_decode_tps"] - 1 / t) <= 0.1 / t, f"estimate {p['est_decode_tps']:.3f} t/s, bytes/bandwidth gives {1 / t:.3f}"
PY
plan "q4_K_M on cpu alone" 0 -m "$Q4KM" --device cpu --host-mem 64G --json
check "q4_K_M on cpu alone: every layer on the CPU path" <<'PY'
assert len(D) == 1 and D[0]["device_index"] == "cpu" and D[0]["n_layers"] == 80
assert all(l["compute"] == 0 and l["where"] == "host" for l in L)
PY

# -------------------------------------------------------- --tensor-split 3,1 ----
plan "q4_K_M, --tensor-split 3,1 on 2 x 48 GiB" 0 -m "$Q4KM" --device 0,0 --device-mem 48G,48G \
    --host-mem 64G --tensor-split 3,1 --json
check "--tensor-split 3,1: 60/20 layers within one, none on the host" <<'PY'
fits(); contiguous()
assert not host_layers, f"host layers {host_layers}"
n = [len(dev_layers(i)) for i in (0, 1)]
assert sum(n) == 80 and abs(n[0] - 60) <= 1 and abs(n[1] - 20) <= 1, f"layers per device {n}"
PY

# ------------------------------------------------------------------ -ngl 20 ----
plan "q4_K_M, -ngl 20 on 2 x 24 GiB" 0 -m "$Q4KM" "${TWO24[@]}" --host-mem 64G -ngl 20 --json
check "-ngl 20: layers 0-19 on the devices, 20-79 in host memory" <<'PY'
fits(); contiguous()
assert host_layers == list(range(20, 80)), f"host layers {host_layers}"
assert sum(len(dev_layers(i)) for i in (0, 1)) == 20
assert all(l["compute"] in (0, 1) for l in L)
PY

# ------------------------------------------------------------------ Q4_0 ----
plan "q4_0 on 2 x 24 GiB" 0 -m "$Q40" "${TWO24[@]}" --host-mem 64G --json
check "q4_0 on 2 x 24 GiB: 80 layers on the devices, within budget" <<'PY'
assert len(L) == 80 and not host_layers
fits(); contiguous()
n = [len(dev_layers(i)) for i in (0, 1)]
assert all(abs(k - 40) <= 1 for k in n), f"layers per device {n}"
PY

# ------------------------------------------------------------------ refusal ----
plan "q4_K_M on 8 GiB + 8 GiB host: refused" 1 -m "$Q4KM" --device 0 --device-mem 8G --host-mem 8G --json
[ ! -s "$TMP/out" ] || fail "the refusal printed a plan on stdout"
grep -q '^vkllm: .*GiB' "$TMP/err" || fail "the refusal does not say how many GiB"
grep -q -- '--host-mem' "$TMP/err" || fail "the refusal has no hint naming --host-mem"
ok "refusal: $(head -n 1 "$TMP/err")"

# --------------------------------------------------------------- bad sizes ----
# Sizes that are not numbers are refused. fuzz/fuzz_args found "nan" getting through to a
# float-to-integer conversion (undefined; on x86 it read as 8 EiB of host memory).
for bad in nan NaN -nan 1e30T -1G; do
    plan "--host-mem $bad: refused" 2 -m "$Q4KM" --device 0 --device-mem 24G --host-mem "$bad"
    grep -q -- "--host-mem expects a size" "$TMP/err" || fail "--host-mem $bad: no message on the expected form"
done
plan "--device-mem 24G,nan: refused" 2 -m "$Q4KM" --device 0,0 --device-mem 24G,nan
grep -q -- "--device-mem expects a size" "$TMP/err" || fail "--device-mem 24G,nan: no message on the expected form"

exit 0
