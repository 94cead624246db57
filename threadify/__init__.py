"""threadify: make wasm-ld WebAssembly modules thread-ready for WASI-threads hosts.

Library entry points (docs/library.md):

- :func:`transform` rewrites module bytes and returns the thread-ready bytes;
- :func:`inspect` reports what threadify sees in a module;
- :class:`ThreadifyError` is the base of every rejection;
- :mod:`threadify.wasm` is the binary layer (``Module.decode`` / ``encode``);
- :mod:`threadify.host` runs WASI-threads modules on wasmtime-py.

Options are keyword-only and typed, so that mypy and IDEs reject a misspelt option before the
code runs (and Python raises ``TypeError`` when it does). Heavy modules (wasmtime) are imported
lazily so that the command line starts fast.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

from threadify.abi import DEFAULT_STACK_SIZE
from threadify.errors import (
    Hint,
    Suggestion,
    ThreadifyError,
    UnsupportedModuleError,
    WasmDecodeError,
)

__version__ = "0.1.0"

__all__ = [
    "Hint",
    "Report",
    "Suggestion",
    "ThreadifyError",
    "UnsupportedModuleError",
    "Verdict",
    "WasmDecodeError",
    "__version__",
    "inspect",
    "transform",
]

if TYPE_CHECKING:
    from threadify.inspection import Report, Verdict


def __getattr__(name: str) -> Any:
    # PEP 562: the report types load the analysis code, which the command line's start-up
    # does not need until it inspects a module.
    if name in ("Report", "Verdict"):
        from threadify import inspection

        return getattr(inspection, name)
    raise AttributeError(f"module 'threadify' has no attribute {name!r}")

#: What :func:`transform` and :func:`inspect` accept: the module's bytes.
ModuleBytes = bytes | bytearray | memoryview


def _module_bytes(data: object, caller: str) -> bytes:
    """``data`` as ``bytes``; a path (``str`` / ``os.PathLike``) or anything else is a
    ``TypeError`` that says how to read the file.

    Paths are refused rather than read: the library works on bytes in memory (a build tool
    already holds them, and writes the result where it wants), so a file name passed by
    mistake for the contents, or the contents decoded to ``str``, is reported at once instead
    of turning into an I/O error or a "not WebAssembly" rejection.
    """
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str | os.PathLike):
        raise TypeError(f"threadify.{caller}() takes the module's bytes, not a path: pass "
                        f"pathlib.Path({os.fspath(data)!r}).read_bytes()")
    raise TypeError(f"threadify.{caller}() takes the module's bytes (bytes, bytearray or "
                    f"memoryview), not {type(data).__name__}")


def transform(data: ModuleBytes, *, stack_size: int = DEFAULT_STACK_SIZE,
              max_memory: int | None = None, allow_non_atomic: bool = False,
              validate: bool | None = None, stack_check: bool = False) -> bytes:
    """Rewrite ``data`` (a wasm-ld module) so that it runs on WASI-threads hosts.

    ``stack_size``: bytes of stack for every thread but the first (a multiple of 16).
    ``max_memory``: maximum memory in bytes (a multiple of 64 KiB); ``None`` keeps the input's
    maximum, or 1 GiB when it has none. ``allow_non_atomic``: accept code compiled without
    atomics. ``validate``: validate the whole input first (``None``: inputs with up to 2 MiB of
    code, whatever their size).
    ``stack_check``: add stack-limit checks (docs/stack-check.md).

    An already thread-ready module comes back unchanged. Raises :class:`ThreadifyError` for a
    rejected input or option value, ``TypeError`` for a path instead of bytes.
    """
    from threadify.pipeline import Options, run

    payload = _module_bytes(data, "transform")
    options = Options(stack_size=stack_size, max_memory=max_memory,
                      allow_non_atomic=allow_non_atomic, validate=validate,
                      stack_check=stack_check)
    result = run(payload, options)
    result.check()
    for message in result.warning_texts():  # e.g. DWARF dropped (docs/stack-check.md)
        warnings.warn(message, stacklevel=2)
    return result.output


def inspect(data: ModuleBytes, *, validate: bool | None = None) -> Report:
    """Describe the module: memory, linker symbols found (and how), TLS, input class.

    ``validate``: validate the function bodies too, as :func:`transform` does (``None``: inputs
    with up to 2 MiB of code); an invalid module is class D.
    Never raises for bad input (that is class D in the report); ``TypeError`` for a path,
    :class:`ThreadifyError` for a ``validate`` that is not ``True``, ``False`` or ``None``.
    """
    from threadify.inspection import inspect as _inspect

    if validate is not None and not isinstance(validate, bool):
        raise ThreadifyError("validate must be True, False or None")
    return _inspect(_module_bytes(data, "inspect"), validate)
