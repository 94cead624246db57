#!/usr/bin/env bash
# Rebuilds threadify/wasm/codescan.wasm from codescan.c (the committed .wasm is what threadify
# loads; nothing needs a compiler at install or test time).  tests/test_codescan.py checks that
# a rebuild reproduces the committed bytes when clang-22 is installed.
#
#   scripts/build_codescan.sh            into threadify/wasm/codescan.wasm
#   scripts/build_codescan.sh OUT.wasm   elsewhere
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
CLANG=${CLANG:-clang-22}
OUT=${1:-$HERE/threadify/wasm/codescan.wasm}
# -mbulk-memory: __builtin_memcpy becomes memory.copy (no libc); -msimd128: the search for
# candidate bodies looks at 16 bytes at a time; no name section or producers (-s): the module
# is data to threadify, and smaller.
"$CLANG" --target=wasm32 -O2 -mbulk-memory -msimd128 -nostdlib -ffreestanding -std=c11 -Wall -Wextra \
    -Werror -Wl,--no-entry -Wl,-s -Wl,--export=kinds \
    -Wl,--export=reserve -Wl,--export=scan -Wl,--export=emit -Wl,--export=sequence -Wl,--export=result -Wl,--export=checks \
    -Wl,--export=functions -Wl,--export=failed_at -Wl,--export=count_followed -o "$OUT" "$HERE/threadify/wasm/codescan.c"
