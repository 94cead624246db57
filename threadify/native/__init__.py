"""wasmtime's native library, used directly: below the host and the binary layer alike.

:mod:`~threadify.native.capi` declares the C functions threadify calls over the library that
wasmtime-py ships (without importing wasmtime-py's classes, ~20 ms of start-up);
:mod:`~threadify.native.cache` keeps compiled modules. The bundled host (:mod:`threadify.host`)
runs programs on them, and the binary layer's native code scanner
(:mod:`threadify.wasm.codescan`) runs itself on them. Nothing here knows of WASI or threads.
"""
