#!/bin/sh
# Rebuild the committed test modules (needs clang-22 and wasm-ld-22).
set -e
cd "$(dirname "$0")"
clang-22 --target=wasm32 -O2 -g -matomics -mbulk-memory -c tls_atomics.c -o tls_atomics.o
wasm-ld-22 tls_atomics.o --no-entry --shared-memory --import-memory \
    --max-memory=16777216 -o tls_atomics.debug.wasm
wasm-ld-22 tls_atomics.o --no-entry --shared-memory --max-memory=16777216 \
    --export=__wasm_init_tls --export=__tls_size -o tls_atomics.defined.wasm
wasm-ld-22 tls_atomics.o --no-entry --shared-memory --import-memory \
    --max-memory=16777216 --strip-all -o tls_atomics.stripped.wasm
