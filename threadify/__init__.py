"""threadify: make wasm-ld WebAssembly modules thread-ready for WASI-threads hosts.

Library entry points (see docs/ and shared SPEC):

- :func:`transform` rewrites module bytes and returns the thread-ready bytes;
- :func:`inspect` reports what threadify sees in a module;
- :class:`ThreadifyError` is the base of every rejection;
- :mod:`threadify.wasm` is the binary layer (``Module.decode`` / ``encode``);
- :mod:`threadify.host` runs WASI-threads modules on wasmtime-py.

Heavy modules (wasmtime) are imported lazily so that the command line starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from threadify.errors import ThreadifyError, UnsupportedModuleError, WasmDecodeError

__version__ = "0.1.0"

__all__ = [
    "ThreadifyError",
    "UnsupportedModuleError",
    "WasmDecodeError",
    "__version__",
    "inspect",
    "transform",
]

if TYPE_CHECKING:
    from threadify.inspection import Report


def transform(data: bytes, **options: Any) -> bytes:
    """Rewrite ``data`` (a wasm-ld module) so that it runs on WASI-threads hosts.

    Options (keyword arguments): ``stack_size`` (bytes per thread stack, default 1 MiB),
    ``max_memory`` (bytes; default: keep the input's maximum, or 1 GiB when it has none),
    ``allow_non_atomic`` (accept code compiled without atomics). See
    :class:`threadify.pipeline.Options`. Raises :class:`ThreadifyError` for rejected input.
    """
    from threadify.pipeline import transform as _transform

    return _transform(data, **options)


def inspect(data: bytes) -> Report:
    """Describe the module: memory, linker symbols found (and how), TLS, input class."""
    from threadify.inspection import inspect as _inspect

    return _inspect(data)
