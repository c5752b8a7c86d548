#!/usr/bin/env bash
# Tests the GTK example (examples/gtk) as a person would use it, on a virtual X server:
# starts vkllm-gtk with the stories260K model, waits for the load, types a prompt into the
# prompt box and presses Ctrl+Return (Generate) through the X server (xdotool, XTEST), waits
# for the text to stream in, takes a screenshot of the window and checks that the text area
# shows text, then closes the window with Ctrl+Q and checks that the program exits cleanly.
#
#   bash scripts/gtk_screenshot.sh [BUILD_DIR] [OUT.png]     (defaults: build, BUILD_DIR/gtk-screenshot.png)
#
# Needs Xvfb, xauth and xdotool (Debian: xvfb xauth xdotool), the example built in BUILD_DIR
# (GTK 4 present at configure time: libgtk-4-dev) and the model
# ../shared/models/stories260K/stories260K.gguf or $VKLLM_TEST_DATA/stories260K/stories260K.gguf;
# when one is missing it prints "SKIP: ..." and exits 0. Exits non-zero when the test fails.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
OUT=${2:-$BUILD/gtk-screenshot.png}
APP=$BUILD/examples/gtk/vkllm-gtk
SHOT=$BUILD/examples/gtk/vkllm-gtk-shot
PROMPT="Once upon a time, Lily saw a big dog"
TIMEOUT=60 # seconds for the whole run, from the start of the X server

skip() { echo "SKIP: $*"; exit 0; }
fail() { echo "FAIL: $*" >&2; show_logs; exit 1; }

MODEL=
for m in ${VKLLM_TEST_DATA:+"$VKLLM_TEST_DATA/stories260K/stories260K.gguf"} \
         "$ROOT/../shared/models/stories260K/stories260K.gguf"; do
  if [ -f "$m" ]; then MODEL=$m; break; fi
done
command -v Xvfb >/dev/null || skip "Xvfb is not installed (Debian package xvfb)"
command -v xauth >/dev/null || skip "xauth is not installed (Debian package xauth)"
command -v xdotool >/dev/null || skip "xdotool is not installed (Debian package xdotool)"
[ -x "$APP" ] || skip "$APP is not built (GTK 4 development files were missing at configure time: libgtk-4-dev)"
[ -x "$SHOT" ] || skip "$SHOT is not built"
[ -n "$MODEL" ] || skip "the model stories260K/stories260K.gguf is in neither \$VKLLM_TEST_DATA nor $ROOT/../shared/models"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vkllm-gtk-test.XXXXXX")
XVFB_PID=
APP_PID=
cleanup() {
  [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null && wait "$APP_PID" 2>/dev/null
  [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null && wait "$XVFB_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
show_logs() {
  for f in "$WORK/app.out" "$WORK/app.err" "$WORK/xvfb.err"; do
    [ -s "$f" ] && { echo "--- $(basename "$f") (last lines)"; tail -n 20 "$f"; } >&2
  done
}

START=$SECONDS
left() { echo $((TIMEOUT - (SECONDS - START))); }

# ---- a virtual X server on a free display, with a cookie of its own (as xvfb-run does)
export XAUTHORITY=$WORK/Xauthority
COOKIE=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
for d in $(seq 90 199); do
  [ -e "/tmp/.X$d-lock" ] || [ -e "/tmp/.X11-unix/X$d" ] && continue
  : >"$XAUTHORITY"
  xauth -q add ":$d" . "$COOKIE" 2>/dev/null
  Xvfb ":$d" -screen 0 1024x768x24 -fbdir "$WORK" -auth "$XAUTHORITY" -nolisten tcp -noreset \
       2>"$WORK/xvfb.err" &
  XVFB_PID=$!
  for _ in $(seq 100); do
    kill -0 "$XVFB_PID" 2>/dev/null || break
    DISPLAY=":$d" xdotool getdisplaygeometry >/dev/null 2>&1 && break 2
    sleep 0.1
  done
  kill "$XVFB_PID" 2>/dev/null; wait "$XVFB_PID" 2>/dev/null; XVFB_PID= # taken meanwhile: next one
done
[ -n "$XVFB_PID" ] || fail "could not start Xvfb on any display from :90 to :199"
export DISPLAY=:$d
echo "Xvfb on display $DISPLAY, model $MODEL"

# ---- the application (the default device; on a machine without a GPU, the native CPU path)
: >"$WORK/app.out"
GDK_BACKEND=x11 GTK_A11Y=none GSETTINGS_BACKEND=memory NO_AT_BRIDGE=1 \
VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json \
  "$APP" --trace --temp 0 --n-predict 160 "$MODEL" >"$WORK/app.out" 2>"$WORK/app.err" &
APP_PID=$!

# Waits until the trace has a line starting with $1; fails when the program exits, reports
# an error or the time is up.
wait_for() {
  while ! grep -q "^vkllm-gtk: $1" "$WORK/app.out"; do
    grep -q "^vkllm-gtk: error" "$WORK/app.out" && fail "the application reported an error"
    kill -0 "$APP_PID" 2>/dev/null || fail "the application exited while waiting for '$1'"
    [ "$(left)" -gt 0 ] || fail "no '$1' within ${TIMEOUT} s"
    sleep 0.1
  done
}
wait_for ready
echo "loaded: $(grep -m1 '^vkllm-gtk: ready' "$WORK/app.out" | cut -d' ' -f3-)"

WIN=$(timeout 10 xdotool search --sync --onlyvisible --name '^vkllm' 2>/dev/null | head -n1)
[ -n "$WIN" ] || fail "no visible window titled vkllm…"

# ---- a person: focus the window, replace the prompt (the prompt box has the focus), press
# Ctrl+Return for Generate
timeout 5 xdotool windowfocus --sync "$WIN" || fail "could not focus the window"
xdotool key --clearmodifiers ctrl+a
xdotool type --delay 10 "$PROMPT"
xdotool key --clearmodifiers ctrl+Return
wait_for generate
grep -q "^vkllm-gtk: generate prompt=\"$PROMPT\"" "$WORK/app.out" ||
  fail "the prompt the application got is not the one typed: $(grep '^vkllm-gtk: generate' "$WORK/app.out")"
wait_for first-text
wait_for done
echo "generated: $(grep -m1 '^vkllm-gtk: done' "$WORK/app.out" | cut -d' ' -f3-)"

# ---- the screenshot: the window, cut from Xvfb's frame buffer; the text area must show text
eval "$(xdotool getwindowgeometry --shell "$WIN")" # X Y WIDTH HEIGHT
read -r _ _ OX OY OW OH < <(grep '^vkllm-gtk: output-area' "$WORK/app.out" | tail -n1)
[ -n "${OH:-}" ] || fail "the application did not say where its text area is"
AREA=$((X + OX + 3))" "$((Y + OY + 3))" "$((OW - 6))" "$((OH - 6))
mkdir -p "$(dirname "$OUT")"
xdotool mousemove $((X + WIDTH + 10)) $((Y + HEIGHT + 10)) # the pointer off the window
ok=
for _ in $(seq 20); do # the last frame may still be on its way: try for 2 s
  if "$SHOT" "$WORK/Xvfb_screen0" "$OUT" --crop "$X" "$Y" "$WIDTH" "$HEIGHT" --text-area $AREA >"$WORK/shot.out"; then
    ok=1; break
  fi
  sleep 0.1
done
cat "$WORK/shot.out"
[ -n "$ok" ] || fail "the screenshot $OUT shows no text in the output area"

# ---- close the window as a person would (Ctrl+Q): the program must free and exit with 0
xdotool key --clearmodifiers ctrl+q
for _ in $(seq 100); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$APP_PID" 2>/dev/null && fail "the application did not exit within 10 s of Ctrl+Q"
wait "$APP_PID"; rc=$?; APP_PID=
[ "$rc" -eq 0 ] || fail "the application exited with status $rc"
echo "PASS: vkllm-gtk loaded, generated on Ctrl+Return, showed the text and closed on Ctrl+Q ($((SECONDS - START)) s); screenshot $OUT"
