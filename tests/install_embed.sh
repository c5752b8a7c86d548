#!/usr/bin/env bash
# `cmake --install` of this build into a temporary prefix, then examples/embed built against
# the installed package only: with cc and `pkg-config --cflags --libs vkllm`, with the
# Makefile's `pkg-config --static` target (libvkllm.a), and as a standalone CMake project with
# find_package(vkllm) (vkllm::vkllm, then vkllm::vkllm_static). Each program runs a greedy
# generation on the default device. Also checks the installed file list (nothing test-only,
# no internal header), the SONAME, that no path of this machine's source or build tree leaks
# into the packages, and that the installed CLI reports the header's version.
# Usage: bash install_embed.sh BUILD_DIR SOURCE_DIR CMAKE CC LIBDIR INCLUDEDIR BINDIR VERSION ABI
# (ctest passes them and sets VKLLM_TEST_TMP, VKLLM_TEST_DATA and VKLLM_BIN_DIR).
set -u

BUILD=${1:?usage: install_embed.sh BUILD_DIR SOURCE_DIR CMAKE CC LIBDIR INCLUDEDIR BINDIR VERSION ABI}
SRC=${2:?} CMAKE=${3:?} CC=${4:?} LIBDIR=${5:?} INCDIR=${6:?} BINDIR=${7:?} VERSION=${8:?} ABI=${9:?}
TMP=$(mktemp -d "${VKLLM_TEST_TMP:-${TMPDIR:-/tmp}}/install_embed.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix
# The example runs on the default device, whatever the test environment names.
unset VKLLM_DEVICE

ok() { echo "ok - $*"; }
fail() {
    echo "not ok - $*"
    [ -s "$TMP/err" ] && { echo "--- output:"; tail -c 4000 "$TMP/err"; echo; }
    exit 1
}

for tool in pkg-config readelf make; do
    command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 0; }
done

# ---- install ----
"$CMAKE" --install "$BUILD" --prefix "$PREFIX" >"$TMP/err" 2>&1 || fail "cmake --install"
ok "cmake --install $BUILD --prefix <tmp>"

# Exactly these files and links: the shared library with its links, the archive, the one
# public header, the CLI, the pkg-config file and the CMake package.
(cd "$PREFIX" && find . ! -type d | sed 's|^\./||' | LC_ALL=C sort) >"$TMP/files"
LC_ALL=C sort >"$TMP/want" <<EOF
$BINDIR/vkllm
$INCDIR/vkllm.h
$LIBDIR/cmake/vkllm/vkllmConfig.cmake
$LIBDIR/cmake/vkllm/vkllmConfigVersion.cmake
$LIBDIR/cmake/vkllm/vkllmTargets-CONFIG.cmake
$LIBDIR/cmake/vkllm/vkllmTargets.cmake
$LIBDIR/libvkllm.a
$LIBDIR/libvkllm.so
$LIBDIR/libvkllm.so.$ABI
$LIBDIR/libvkllm.so.$VERSION
$LIBDIR/pkgconfig/vkllm.pc
EOF
# The per-configuration targets file is named after the build type (-release, -noconfig...).
sed -i 's|/vkllmTargets-[a-z]*\.cmake$|/vkllmTargets-CONFIG.cmake|' "$TMP/files"
diff "$TMP/want" "$TMP/files" >"$TMP/err" || fail "installed files differ from the expected list (< expected, > installed)"
ok "installed files: $(tr '\n' ' ' <"$TMP/files")"

LIB=$PREFIX/$LIBDIR
readelf -d "$LIB/libvkllm.so.$VERSION" >"$TMP/err" 2>&1 || fail "readelf -d libvkllm.so.$VERSION"
grep -q "(SONAME).*\[libvkllm\.so\.$ABI\]" "$TMP/err" || fail "SONAME is not libvkllm.so.$ABI"
ok "SONAME libvkllm.so.$ABI"

# Only the runtime ships: none of the test kit's code (the CPU reference, the synthetic model
# generator, the GGUF writer) is in either library.
nm -A "$LIB/libvkllm.a" "$LIB/libvkllm.so.$VERSION" 2>/dev/null |
    grep -E ' [TtDdBbRr] (synth_|ref_|cpu_forward|cpu_state_|gguf_write|gw_)' >"$TMP/err" &&
    fail "the installed libraries hold test-kit code: $(head -3 "$TMP/err")"
ok "no test-kit code in libvkllm.a or libvkllm.so"

# Relocatable packages: no path of this machine's source or build folder.
# (The prefix itself lies in the build folder: its mentions are taken out first.)
for f in "$LIB"/cmake/vkllm/* "$LIB"/pkgconfig/*; do
    sed "s|$PREFIX|<prefix>|g" "$f" | grep -n -e "$SRC" -e "$BUILD" | sed "s|^|$f:|"
done >"$TMP/err"
[ -s "$TMP/err" ] && fail "the installed packages name the source or build tree"
grep -q 'INTERFACE_COMPILE_DEFINITIONS "VKLLM_STATIC"' "$LIB/cmake/vkllm/vkllmTargets.cmake" ||
    fail "vkllm::vkllm_static does not define VKLLM_STATIC for its users"
ok "the CMake and pkg-config packages name no source or build path; vkllm_static defines VKLLM_STATIC"

"$PREFIX/$BINDIR/vkllm" version >"$TMP/out" 2>"$TMP/err" || fail "installed vkllm version"
[ "$(cat "$TMP/out")" = "vkllm $VERSION" ] || fail "installed CLI says '$(cat "$TMP/out")', not 'vkllm $VERSION'"
ok "installed CLI (found its library by rpath): $(cat "$TMP/out")"

# ---- the model ----
STORIES=${VKLLM_TEST_DATA:-}/stories260K/stories260K.gguf
EXPECTED=${VKLLM_TEST_DATA:-}/stories260K/stories260K_t0_n200.expected.txt
if [ -n "${VKLLM_TEST_DATA:-}" ] && [ -f "$STORIES" ] && [ -f "$EXPECTED" ]; then
    MODEL=$STORIES
    # The empty prompt (BOS alone): greedy text is llama2.c's published output.
    PROMPT=
    ok "model: stories260K (greedy output checked against the published text)"
else
    GEN=${VKLLM_BIN_DIR:-$BUILD}/tests/vkllm-gen-model
    [ -x "$GEN" ] || { echo "SKIP: neither stories260K nor the generator $GEN"; exit 0; }
    MODEL=$TMP/tiny.gguf
    PROMPT="Once upon a time"
    EXPECTED=
    "$GEN" --out "$MODEL" --dim 64 --layers 2 --ffn 128 --heads 2 --vocab 300 --type q4_0 \
        --seed 1 >"$TMP/err" 2>&1 || fail "vkllm-gen-model"
    ok "model: synthetic (stories260K not found; output only checked to be non-empty)"
fi

# run NAME PROGRAM [ENV...]: the program on the model; exit 0, non-empty text, and with
# stories260K a prefix of the published text.
run() {
    local name=$1 prog=$2
    shift 2
    env "$@" "$prog" "$MODEL" "$PROMPT" >"$TMP/out" 2>"$TMP/err" || fail "$name: exit status $?"
    local text
    text=$(cat "$TMP/out")
    [ -n "$text" ] || fail "$name: printed no text"
    if [ -n "$EXPECTED" ]; then
        # A prefix of the published text (ASCII): the program adds a newline at the end.
        local want
        want=$(head -c "$(printf '%s' "$text" | wc -c)" "$EXPECTED")
        [ "$text" = "$want" ] || { printf 'got:  %s\nwant: %s\n' "$text" "$want" >"$TMP/err"
                                   fail "$name: not the published greedy text"; }
    fi
    ok "$name: $(printf '%s' "$text" | head -c 60 | LC_ALL=C tr -c '[:print:]' '?')..."
}
# needed PROGRAM: its NEEDED libvkllm entries.
needed() { readelf -d "$1" | grep -o 'Shared library: \[libvkllm[^]]*\]' || true; }

EX=$SRC/examples/embed
export PKG_CONFIG_PATH=$LIB/pkgconfig
[ "$(pkg-config --modversion vkllm)" = "$VERSION" ] || fail "pkg-config --modversion vkllm is not $VERSION"

# ---- (a) cc with pkg-config, shared library found through LD_LIBRARY_PATH ----
mkdir -p "$TMP/pc"
"$CC" -std=c11 -Wall -Wextra -Werror -o "$TMP/pc/embed" "$EX/embed.c" $(pkg-config --cflags --libs vkllm) \
    >"$TMP/err" 2>&1 || fail "cc embed.c \$(pkg-config --cflags --libs vkllm)"
[ "$(needed "$TMP/pc/embed")" = "Shared library: [libvkllm.so.$ABI]" ] || fail "pkg-config build does not need libvkllm.so.$ABI"
run "pkg-config, shared" "$TMP/pc/embed" "LD_LIBRARY_PATH=$LIB"

# ---- (a'') the header's ABI promises, checked by a program built against the installed header ----
"$CC" -std=c11 -Wall -Wextra -Werror -o "$TMP/pc/abi" "$SRC/tests/install_abi_check.c" \
    $(pkg-config --cflags --libs vkllm) >"$TMP/err" 2>&1 || fail "cc install_abi_check.c (installed header)"
LD_LIBRARY_PATH=$LIB "$TMP/pc/abi" "$MODEL" >"$TMP/out" 2>"$TMP/err" || fail "install_abi_check: $(cat "$TMP/err")"
ok "parameter struct sizes (an older, shorter struct; size 0 refused) and version macros, installed header"

# ---- (a') the Makefile's static target: pkg-config --static ----
make -s -C "$TMP/pc" -f "$EX/Makefile" VPATH="$EX" CC="$CC" CFLAGS="-O2 -Wall -Wextra -Werror" \
    embed-static >"$TMP/err" 2>&1 || fail "make embed-static (pkg-config --static)"
[ -z "$(needed "$TMP/pc/embed-static")" ] || fail "the static build still needs $(needed "$TMP/pc/embed-static")"
run "pkg-config --static, libvkllm.a" "$TMP/pc/embed-static"

# ---- (b) standalone CMake project: find_package(vkllm), shared then static ----
for kind in shared static; do
    flag=OFF
    [ $kind = static ] && flag=ON
    "$CMAKE" -S "$EX" -B "$TMP/cm-$kind" -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_COMPILER="$CC" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" -DEMBED_STATIC=$flag \
        >"$TMP/err" 2>&1 || fail "cmake configure of examples/embed ($kind)"
    "$CMAKE" --build "$TMP/cm-$kind" >"$TMP/err" 2>&1 || fail "cmake --build examples/embed ($kind)"
    if [ $kind = shared ]; then
        [ "$(needed "$TMP/cm-$kind/embed")" = "Shared library: [libvkllm.so.$ABI]" ] ||
            fail "vkllm::vkllm build does not need libvkllm.so.$ABI"
    else
        [ -z "$(needed "$TMP/cm-$kind/embed")" ] || fail "vkllm::vkllm_static build needs $(needed "$TMP/cm-$kind/embed")"
    fi
    # CMake's build-tree rpath finds the installed library: no LD_LIBRARY_PATH here.
    run "find_package, vkllm::vkllm$([ $kind = static ] && echo _static)" "$TMP/cm-$kind/embed"
done
echo "all passed"
