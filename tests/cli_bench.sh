#!/usr/bin/env bash
# `vkllm bench` in llama-bench's shape, on two tiny generated models (Q4_0 and F16): several
# models and values each get a row, -pg, -ngl and -b lists, the md/csv/json/jsonl outputs with
# llama-bench's field names (stdout carries nothing else), the stream-read yardstick with its
# spread, and --profile-json's per-op table. Speed is not judged: only that figures are sane.
# Usage: bash cli_bench.sh PATH_TO_vkllm (ctest sets VKLLM_BIN_DIR and VKLLM_TEST_TMP).
set -u

VKLLM=${1:?usage: cli_bench.sh PATH_TO_vkllm}
GEN=${VKLLM_BIN_DIR:?VKLLM_BIN_DIR is not set}/tests/vkllm-gen-model
TMP=$(mktemp -d "${VKLLM_TEST_TMP:-${TMPDIR:-/tmp}}/cli_bench.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT

ok() { echo "ok - $*"; }
fail() {
    echo "not ok - $*"
    [ -s "$TMP/err" ] && { echo "--- stderr:"; tail -c 4000 "$TMP/err"; echo; }
    exit 1
}

command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read the JSON"; exit 0; }
[ -x "$GEN" ] || fail "no generator at $GEN"

A=$TMP/tiny-q4_0.gguf
B=$TMP/tiny-f16.gguf
for t in q4_0 f16; do
    "$GEN" --out "$TMP/tiny-$t.gguf" --dim 64 --layers 2 --ffn 128 --heads 2 --vocab 300 --type $t \
        >"$TMP/out" 2>"$TMP/err" || fail "vkllm-gen-model --type $t"
done
ok "generated two tiny models (q4_0, f16)"

# bench NAME ARGS...: `vkllm bench ARGS`, stdout to $TMP/out, stderr to $TMP/err; must exit 0.
bench() {
    local name=$1
    shift
    "$VKLLM" bench "$@" >"$TMP/out" 2>"$TMP/err" || fail "$name: exit status $? (vkllm bench $*)"
}

# check NAME <<'PY' ... PY: Python over $TMP/out (argv[1]); a failed assert names the value.
# Further arguments follow as argv[2:].
check() {
    local name=$1
    shift
    cat >"$TMP/check.py"
    python3 "$TMP/check.py" "$TMP/out" "$@" >"$TMP/check" 2>&1 || { cat "$TMP/check"; fail "$name"; }
    ok "$name"
}

# The fields every row carries, shared by the JSON, JSON lines and CSV checks.
cat >"$TMP/fields.py" <<'EOF'
FIELDS = ["model_filename", "model_type", "model_size", "model_n_params", "backend", "devices",
          "n_devices", "n_batch", "n_gpu_layers", "n_prompt", "n_gen", "test_time", "avg_ns",
          "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts", "stream_gbps",
          "stream_gbps_min", "stream_gbps_max", "host_us_per_token", "thread_us_per_token",
          "gpu_us_per_token", "steps_recorded"]
def sane(r, reps):
    for f in FIELDS:
        assert f in r, f"row lacks {f}: {sorted(r)}"
    assert r["backend"] == "Vulkan", r["backend"]
    assert r["n_devices"] == 1 and r["devices"], (r["n_devices"], r["devices"])
    assert len(r["samples_ts"]) == reps and len(r["samples_ns"]) == reps, \
        f"{len(r['samples_ts'])} samples_ts, {len(r['samples_ns'])} samples_ns for -r {reps}"
    assert r["avg_ts"] > 0 and r["avg_ns"] > 0, (r["avg_ts"], r["avg_ns"])
    assert all(t > 0 for t in r["samples_ts"]), r["samples_ts"]
    # t/s and ns describe the same runs: tokens / avg_ns is near avg_ts (equal for one sample).
    tokens = r["n_prompt"] + r["n_gen"]
    for ns, ts in zip(r["samples_ns"], r["samples_ts"]):
        assert abs(tokens * 1e9 / ns - ts) <= 1e-3 * ts, (tokens, ns, ts)
    assert 0 < r["stream_gbps_min"] <= r["stream_gbps"] <= r["stream_gbps_max"], \
        (r["stream_gbps_min"], r["stream_gbps"], r["stream_gbps_max"])
    # Generated tokens: the decode step's cost on the host, and the step recorded once (the
    # warm-up records it; the timed runs replay it).
    if r["n_gen"] and not r["n_prompt"]:
        assert r["gpu_us_per_token"] > 0 and r["thread_us_per_token"] > 0, r
        assert r["steps_recorded"] == 0, f"{r['steps_recorded']} steps recorded in the timed runs"
EOF

# ------------------------------------------------------- two models, JSON ----
bench "json" -m "$A" -m "$B" -p 8,16 -n 4 -r 2 -o json
check "json: 2 models x (pp8, pp16, tg4) rows with llama-bench's fields" "$A" "$B" <<'EOF'
import json, sys
exec(open(sys.argv[1].rsplit("/", 1)[0] + "/fields.py").read())
rows = json.load(open(sys.argv[1]))
assert isinstance(rows, list) and len(rows) == 6, f"{len(rows)} rows, expected 6"
for r in rows:
    sane(r, 2)
got = [(r["model_filename"], r["n_prompt"], r["n_gen"]) for r in rows]
want = [(m, p, g) for m in sys.argv[2:4] for (p, g) in [(8, 0), (16, 0), (0, 4)]]
assert got == want, f"rows {got}, expected {want}"
assert [r["model_type"].split()[-1] for r in rows] == ["Q4_0"] * 3 + ["F16"] * 3, [r["model_type"] for r in rows]
assert rows[0]["model_size"] < rows[3]["model_size"], "the f16 model is not larger than the q4_0 one"
assert rows[0]["model_n_params"] == rows[3]["model_n_params"], "same shape, different parameter counts"
assert all(r["n_batch"] == 16 for r in rows), [r["n_batch"] for r in rows]  # the longest prompt
EOF
grep -q "stream read .* GB/s (median of [0-9]* passes over .*, spread [0-9.]*\.\.[0-9.]*)" "$TMP/err" ||
    fail "json: no stream read line with its spread on stderr"
ok "json: the stream read and its spread are on stderr"

# --------------------------------------------------------------------- CSV ----
bench "csv" -m "$A" -m "$B" -p 8,16 -n 4 -r 2 -o csv
check "csv: a header with the field names and 6 rows" <<'EOF'
import csv, sys
exec(open(sys.argv[1].rsplit("/", 1)[0] + "/fields.py").read())
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 6, f"{len(rows)} rows, expected 6"
for f in FIELDS:
    assert f in rows[0], f"header lacks {f}"
for r in rows:
    assert float(r["avg_ts"]) > 0, r["avg_ts"]
    assert len(r["samples_ts"].split()) == 2, r["samples_ts"]
assert [(r["n_prompt"], r["n_gen"]) for r in rows] == [("8", "0"), ("16", "0"), ("0", "4")] * 2
EOF

# ---------------------------------------------------------- JSON lines, -pg ----
bench "jsonl" -m "$A" -p 8 -n 4 -pg 8,4 -r 1 -o jsonl
check "jsonl: one object per line; -pg 8,4 is a pp8+tg4 row" <<'EOF'
import json, sys
exec(open(sys.argv[1].rsplit("/", 1)[0] + "/fields.py").read())
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 3, f"{len(lines)} lines, expected 3"
rows = [json.loads(l) for l in lines]
for r in rows:
    sane(r, 1)
pg = rows[2]
assert (pg["n_prompt"], pg["n_gen"], pg["test"]) == (8, 4, "pp8+tg4"), (pg["n_prompt"], pg["n_gen"], pg["test"])
EOF

# ------------------------------------------------------ -ngl and -b lists ----
bench "lists" -m "$A" -p 8 -n 0 -r 1 -ngl 1,2 -b 4,8 -o json
check "-ngl 1,2 -b 4,8: a row for each combination" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))
got = [(r["n_gpu_layers"], r["n_batch"]) for r in rows]
assert got == [(1, 4), (1, 8), (2, 4), (2, 8)], got
EOF

# -------------------------------------------------- markdown, stdout only ----
bench "md" -m "$A" -p 8 -n 2 -r 1
check "md: stdout is only the table (header, rule, 2 rows)" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 4, f"{len(lines)} lines: {lines}"
assert all(l.startswith("|") and l.endswith("|") for l in lines), lines
head = [c.strip() for c in lines[0].strip("|").split("|")]
for c in ["model", "size", "params", "backend", "ngl", "test", "t/s"]:
    assert c in head, f"no {c} column in {head}"
assert "pp8" in lines[2] and "tg2" in lines[3], lines[2:]
EOF

# ----------------------------------------------------------- profile JSON ----
# The separate kernels (VKLLM_FUSED_LAYER=0), so that each op of a decode step has its row;
# the fused layer's own row is checked below.
VKLLM_FUSED_LAYER=0 bench "profile" -m "$A" -p 8 -n 4 -r 1 -o json --profile-json "$TMP/profile.json"
python3 -c "import json, sys; json.load(open(sys.argv[1]))" "$TMP/out" 2>"$TMP/check" ||
    fail "profile: stdout is not JSON any more (the profile belongs on stderr)"
grep -q "^matvec q4_0 " "$TMP/err" || fail "profile: no 'matvec q4_0' row in the table on stderr"
cp "$TMP/profile.json" "$TMP/out"
check "profile: per-op rows (matmul for pp8, matvec for tg4) whose shares sum to 100 %" <<'EOF'
import json, sys
P = json.load(open(sys.argv[1]))["profiles"]
assert [(p["n_prompt"], p["n_gen"]) for p in P] == [(8, 0), (0, 4)], [(p["n_prompt"], p["n_gen"]) for p in P]
for p, product in zip(P, ["matmul", "matvec"]):
    E = p["entries"]
    names = {e["name"] for e in E}
    assert f"{product} q4_0" in names, f"{p['test']}: no {product} q4_0 row in {sorted(names)}"
    for op in ["rmsnorm", "attention", "rope", "kv_write", "embed"]:
        assert any(e["op"] == op for e in E), f"{p['test']}: no {op} row"
    for e in E:
        assert e["calls"] > 0 and e["ms"] >= 0 and e["bytes"] > 0, e
    mv = next(e for e in E if e["name"] == f"{product} q4_0")
    # 2 layers x 7 matrices; the output matrix is a matvec (last token only) per evaluation.
    want = 2 * 7 if product == "matmul" else 4 * (2 * 7 + 1)
    assert mv["calls"] == want, f"{product} calls {mv['calls']}, expected {want}"
    assert mv["flops"] > 0, mv
    share = sum(e["share_pct"] for e in E)
    assert abs(share - 100) < 0.5, f"{p['test']}: shares sum to {share}"
    assert p["total_ms"] > 0, p["total_ms"]
EOF

# A tiny model's decode step runs each layer as one fused dispatch: a "layer q4_0" row with a
# call per layer and token, and only the output matrix left as a matvec.
bench "profile-fused" -m "$A" -p 0 -n 4 -r 1 -o json --profile-json "$TMP/profile.json"
cp "$TMP/profile.json" "$TMP/out"
check "profile: the fused layer of a tiny model's decode step" <<'EOF'
import json, sys
E = json.load(open(sys.argv[1]))["profiles"][0]["entries"]
calls = {e["name"]: e["calls"] for e in E}
assert calls.get("layer q4_0") == 2 * 4, calls
assert calls.get("matvec q4_0") == 4, calls
assert not any(e["op"] in ("attention", "rope", "kv_write", "swiglu") for e in E), calls
EOF

# ----------------------------------------------------------------- errors ----
"$VKLLM" bench -m "$A" -o xml >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 2 ] || fail "-o xml: exit status $rc, expected 2"
grep -q -- "-o takes md, csv, json or jsonl" "$TMP/err" || fail "-o xml: no message naming the formats"
[ ! -s "$TMP/out" ] || fail "-o xml: printed to stdout"
ok "-o xml: exit 2 with a message naming the formats"

"$VKLLM" bench -m "$A" -pg 8 >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 2 ] && grep -q -- "-pg expects PP,TG" "$TMP/err" || fail "-pg 8: exit status $rc, expected 2 with a message"
ok "-pg 8: exit 2 with a message"
