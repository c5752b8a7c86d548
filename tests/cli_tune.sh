#!/usr/bin/env bash
# `vkllm tune` end to end on lavapipe: --quick on the standard shapes writes a profile for the
# device (format, identity, a choice per op and type) and prints the default-against-chosen
# table on stdout; -m tunes a model's own types and shapes; a run then loads the profile, does
# not with VKLLM_TUNE=0, and warns and carries on when the file is corrupt or stale.
# Profiles go to a folder of this test's own (VKLLM_TUNE_DIR), never the shared test cache.
# Usage: bash cli_tune.sh PATH_TO_vkllm (ctest sets VKLLM_BIN_DIR and VKLLM_TEST_TMP).
set -u

VKLLM=${1:?usage: cli_tune.sh PATH_TO_vkllm}
GEN=${VKLLM_BIN_DIR:?VKLLM_BIN_DIR is not set}/tests/vkllm-gen-model
TMP=$(mktemp -d "${VKLLM_TEST_TMP:-${TMPDIR:-/tmp}}/cli_tune.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
export VKLLM_TUNE_DIR=$TMP/profiles
unset VKLLM_TUNE
mkdir -p "$VKLLM_TUNE_DIR"

ok() { echo "ok - $*"; }
fail() {
    echo "not ok - $*"
    [ -s "$TMP/err" ] && { echo "--- stderr:"; tail -c 4000 "$TMP/err"; echo; }
    exit 1
}

command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read the JSON"; exit 0; }
[ -x "$GEN" ] || fail "no generator at $GEN"
M=$TMP/tiny-q4_0.gguf
"$GEN" --out "$M" --dim 256 --layers 2 --ffn 512 --heads 4 --vocab 300 --type q4_0 >"$TMP/out" 2>"$TMP/err" ||
    fail "vkllm-gen-model"

# ------------------------------------------------------------- --quick ----
"$VKLLM" tune --shrink 32 --quick --types q4_0 -r 1 >"$TMP/out" 2>"$TMP/err" || fail "tune --quick: exit status $?"
PROFILE=$(ls "$VKLLM_TUNE_DIR"/tune-*.json 2>/dev/null)
[ -n "$PROFILE" ] && [ "$(echo "$PROFILE" | wc -l)" -eq 1 ] || fail "tune --quick: no single tune-*.json in $VKLLM_TUNE_DIR"
grep -q "profile written to $PROFILE" "$TMP/err" || fail "tune --quick: stderr does not name the profile"
python3 - "$TMP/out" "$PROFILE" >"$TMP/check" 2>&1 <<'EOF' || { cat "$TMP/check"; fail "tune --quick: table and profile"; }
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0].startswith("device: "), lines[0]
rows = [[c.strip() for c in l.strip("|").split("|")] for l in lines[3:]]
assert [(r[0], r[1]) for r in rows] == [("matvec", "q4_0"), ("matmul", "q4_0")], rows
for r in rows:
    d, c, s = float(r[3]), float(r[5]), float(r[6].rstrip("x"))
    assert d > 0 and c > 0 and c <= d, r              # the chosen one is never slower than the default
    assert abs(s - d / c) < 0.01 + 0.01 * s, r
    valid, tried = map(int, r[7].split("/"))
    assert 0 < valid <= tried, r
P = json.load(open(sys.argv[2]))
assert P["format"] == "vkllm-tune" and P["version"] == 1, (P["format"], P["version"])
dev = P["device"]
for k in ["name", "vendor_id", "device_id", "uuid", "driver_version", "driver_info"]:
    assert k in dev, f"device lacks {k}"
assert re.fullmatch(r"[0-9a-f]{32}", dev["uuid"]), dev["uuid"]
assert sys.argv[2].endswith("%04x-%04x-%s.json" % (dev["vendor_id"], dev["device_id"], dev["uuid"])), sys.argv[2]
assert set(P["matvec"]) == {"q4_0"} and set(P["matmul"]) == {"q4_0"}, (P["matvec"], P["matmul"])
# An integer dot product choice also names the best variant without it (for callers without scratch).
assert set(P["matvec"]["q4_0"]) - {"without_int_dot"} == {"by_row", "wg", "rows", "int_dot"}, P["matvec"]["q4_0"]
assert set(P["matmul"]["q4_0"]) - {"without_int_dot"} == {"by_row", "bm", "bn", "bk", "tm", "tn", "int_dot"}, P["matmul"]["q4_0"]
for op in ("matvec", "matmul"):
    e = P[op]["q4_0"]
    assert ("without_int_dot" in e) == (e["int_dot"] == 1), e
EOF
ok "tune --quick: a table of default against chosen, and a profile named by the device"

# ------------------------------------------------------------------ -m ----
"$VKLLM" tune -m "$M" -r 1 --types q4_0,f32 --dry-run >"$TMP/out" 2>"$TMP/err" || fail "tune -m: exit status $?"
grep -q "^| matvec | q4_0 " "$TMP/out" && grep -q "^| matmul | q4_0 " "$TMP/out" || fail "tune -m: no q4_0 rows"
grep -q "matvec q4_0     300x256 " "$TMP/err" || fail "tune -m: the output matrix (300x256) was not tuned"
grep -q "matmul q4_0     300x256 " "$TMP/err" && fail "tune -m: the output matrix was tuned for prefill"
grep -q "profile written" "$TMP/err" && fail "tune -m --dry-run wrote a profile"
ok "tune -m: the model's shapes, including the output matrix for decode only; --dry-run writes nothing"

# ---------------------------------------------------------- it loads ----
run() { "$VKLLM" run -m "$M" -p "hello" -n 2 --temp 0 >"$TMP/out" 2>"$TMP/err"; }
VKLLM_LOG=info run || fail "run with the profile: exit status $?"
grep -q "kernel choices from the tuning profile $PROFILE" "$TMP/err" || fail "run: the profile was not loaded"
ok "run: loads the profile"
VKLLM_TUNE=0 VKLLM_LOG=info run || fail "run with VKLLM_TUNE=0: exit status $?"
grep -q "tuning profile" "$TMP/err" && fail "VKLLM_TUNE=0: the profile was still read"
ok "run with VKLLM_TUNE=0: the profile is not read"

# --------------------------------------------------- corrupt and stale ----
cp "$PROFILE" "$TMP/good.json"
head -c 100 "$TMP/good.json" >"$PROFILE"
run || fail "run with a truncated profile: exit status $?"
grep -q "ignoring the tuning profile (unreadable).*not valid JSON" "$TMP/err" || fail "truncated: no warning"
python3 - "$TMP/good.json" "$PROFILE" <<'EOF'
import json, sys
P = json.load(open(sys.argv[1]))
P["device"]["driver_version"] += 1
json.dump(P, open(sys.argv[2], "w"))
EOF
run || fail "run with a stale profile: exit status $?"
grep -q "ignoring the tuning profile (stale).*driver version" "$TMP/err" || fail "stale: no warning"
ok "run with a truncated or stale profile: a warning, and the run goes on"

# ---------------------------------------------------------------- errors ----
"$VKLLM" tune --types q9_9 >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && grep -q '"q9_9" is not a weight type' "$TMP/err" || fail "--types q9_9: exit status $rc, expected 1 with a message"
[ ! -s "$TMP/out" ] || fail "--types q9_9: printed to stdout"
ok "--types q9_9: a message naming the type"
