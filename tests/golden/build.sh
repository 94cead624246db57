#!/usr/bin/env bash
# Rebuilds the inputs of the whole-module golden files from src/*.c (tests never run it; they
# read the committed input.wat). Each input is real wasm-ld output, printed by wasm-tools.
# own-start/input.wat is written by hand (wasm-ld gives no way to set a start function of one's
# own) and is not touched here.
#
#   tests/golden/build.sh      then: THREADIFY_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py
#                              and review the diff of every expected.wat
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CLANG=${CLANG:-clang-22}
WASM_LD=${WASM_LD:-wasm-ld-22}
WASM_TOOLS=${WASM_TOOLS:-wasm-tools}
CFLAGS="--target=wasm32 -O2 -ffreestanding -std=c11 -matomics -mbulk-memory"
STRIP="--strip-all --keep-section=target_features"
OBJ=$(mktemp -d)
trap 'rm -rf "$OBJ"' EXIT

# case|source|wasm-ld flags
CASES=(
    "class-a-tls|tls|--shared-memory --import-memory --max-memory=16777216"
    "class-a-tls-stripped|tls|--shared-memory --import-memory --max-memory=16777216 $STRIP"
    "class-b-tls|tls|"
    "class-b-tls-stripped|tls|$STRIP"
    "class-b-no-tls|notls|"
)

for src in tls notls; do
    "$CLANG" $CFLAGS -c "$HERE/src/$src.c" -o "$OBJ/$src.o"
done
for entry in "${CASES[@]}"; do
    IFS='|' read -r name src flags <<< "$entry"
    mkdir -p "$HERE/$name"
    # shellcheck disable=SC2086
    (cd "$OBJ" && "$WASM_LD" "$src.o" --no-entry --export=bump $flags -o "$name.wasm")
    "$WASM_TOOLS" print "$OBJ/$name.wasm" > "$HERE/$name/input.wat"
    echo "wrote $name/input.wat"
done
