"""Validating modules with wasmtime's validator (the ``D: invalid`` row of SPEC §2).

threadify passes function bodies through as bytes, so it cannot notice a corrupt body itself —
and it must not decode 45 MB of code in Python to find out. wasmtime's validator (native code,
run through ctypes, which releases the GIL) checks the whole input *in a background thread*
while the transform runs, so on two cores it costs little wall time. An input that does not
validate is rejected; its output is never written.

Every proposal wasmtime knows is enabled, so that valid modules using GC, exceptions, memory64
and the like are reported by threadify's own checks (with a fix) rather than as invalid.
"""

from __future__ import annotations

import threading
from typing import Any

from threadify.errors import ThreadifyError


class InvalidModuleError(ThreadifyError):
    """The module is well-formed enough to decode but is not valid WebAssembly."""


def engine(threads_only: bool = False) -> Any:
    """A wasmtime Engine with threads, shared memory and (unless ``threads_only``) every
    other proposal wasmtime validates."""
    import wasmtime

    config = wasmtime.Config()
    config.wasm_threads = True
    config.shared_memory = True
    config.wasm_bulk_memory = True
    config.wasm_reference_types = True
    config.wasm_simd = True
    config.wasm_multi_value = True
    if not threads_only:
        for name in ("wasm_relaxed_simd", "wasm_tail_call", "wasm_multi_memory",
                     "wasm_memory64", "wasm_exceptions", "wasm_function_references", "wasm_gc",
                     "wasm_custom_page_sizes", "wasm_wide_arithmetic"):
            try:
                setattr(config, name, True)
            except Exception:  # a wasmtime build without that proposal: validate without it
                pass
    return wasmtime.Engine(config)


def explain(error: BaseException) -> str:
    """wasmtime's multi-line validation error as one line: the innermost causes."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    causes = [line.split(":", 1)[1].strip() if line[:1].isdigit() and ":" in line else line
              for line in lines if line[:1].isdigit()]
    if causes:
        return ": ".join(causes)
    return lines[0] if lines else type(error).__name__


def unsupported_feature(reason: str) -> bool:
    """``True`` when wasmtime refused a *proposal* it does not implement (e.g. legacy
    exceptions), which says nothing about the module being invalid."""
    text = reason.lower()
    return "feature" in text and any(word in text for word in (
        "required", "not enabled", "support"))


def validate(data: bytes, *, threads_only: bool = False) -> None:
    """Raise :class:`InvalidModuleError` unless ``data`` validates.

    A module using a proposal wasmtime cannot validate (legacy exceptions, for one) is let
    through: threadify's own decoder has checked its structure, and its function bodies are
    copied unchanged.
    """
    import wasmtime

    try:
        wasmtime.Module.validate(engine(threads_only), data)
    except wasmtime.WasmtimeError as error:
        if unsupported_feature(explain(error)):
            return
        raise InvalidModuleError(f"the module is not valid WebAssembly: {explain(error)}",
                                 "check the toolchain's output with 'wasm-tools validate'; "
                                 "rebuild it") from None


class BackgroundValidation:
    """Validate ``data`` on another thread; :meth:`result` waits and raises on failure."""

    def __init__(self, data: bytes) -> None:
        self._error: ThreadifyError | None = None
        self._crash: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(data,), daemon=True,
                                        name="threadify-validate")
        self._thread.start()

    def _run(self, data: bytes) -> None:
        try:
            validate(data)
        except ThreadifyError as error:
            self._error = error
        except BaseException as error:  # reported by result(), in the caller's thread
            self._crash = error

    def result(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._crash is not None:
            raise ThreadifyError(f"could not validate the module: {self._crash}")
