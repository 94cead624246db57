"""Validating modules with wasmtime's validator (class D in docs/inputs.md).

threadify passes function bodies through as bytes, so it cannot notice a corrupt body itself —
and it must not decode 45 MB of code in Python to find out. wasmtime's validator (native code,
run through ctypes, which releases the GIL) checks the whole input *in a background thread*
while the transform runs, so on two cores it costs little wall time. An input that does not
validate is rejected; its output is never written.

Every proposal wasmtime knows is enabled, so that valid modules using GC, exceptions, memory64
and the like are reported by threadify's own checks (with a fix) rather than as invalid.
"""

from __future__ import annotations

import ctypes
import importlib.util
import platform
import sys
import threading
from pathlib import Path
from typing import Any

from threadify.errors import ThreadifyError

#: Inputs up to this size are validated by default (it costs at most ~60 ms of wall time
#: there); larger ones only on request, because checking every function body of a 45 MB module
#: costs more CPU than the whole rewrite.
VALIDATE_AUTO_LIMIT = 16 << 20


#: Proposals enabled for validation and --verify (the wasmtime C API setter names).
_FEATURES = ("threads", "shared_memory", "bulk_memory", "reference_types", "simd",
             "multi_value", "relaxed_simd", "tail_call", "multi_memory", "memory64",
             "exceptions", "function_references", "gc", "custom_page_sizes",
             "wide_arithmetic")


class InvalidModuleError(ThreadifyError):
    """The module is well-formed enough to decode but is not valid WebAssembly."""


def engine() -> Any:
    """A wasmtime Engine (wasmtime-py) with every proposal in :data:`_FEATURES` enabled that
    this wasmtime build knows."""
    import wasmtime

    config = wasmtime.Config()
    for feature in _FEATURES:
        name = feature if feature == "shared_memory" else f"wasm_{feature}"
        try:
            setattr(config, name, True)
        except Exception:  # a wasmtime build without that proposal: go on without it
            pass
    return wasmtime.Engine(config)


def explain(error: BaseException | str) -> str:
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



class _ByteVec(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("data", ctypes.POINTER(ctypes.c_ubyte))]


def _native_validate(data: bytes) -> str | None:
    """Validate through wasmtime's C API directly; the error message, or None when valid.

    ``import wasmtime`` costs ~60 ms of interpreter time, which the background validation
    would spend holding the GIL while the transform runs. The shared library it ships is loaded
    here without the Python wrappers (only these few calls are needed). Raises ``OSError``
    or ``AttributeError`` when the library cannot be used this way; callers fall back to
    wasmtime-py.
    """
    spec = importlib.util.find_spec("wasmtime")
    if spec is None or not spec.submodule_search_locations:
        raise OSError("wasmtime is not installed")
    machine = {"AMD64": "x86_64", "arm64": "aarch64", "ARM64": "aarch64"}.get(
        platform.machine(), platform.machine())
    names = {"linux": "_libwasmtime.so", "darwin": "_libwasmtime.dylib",
             "win32": "_wasmtime.dll"}
    platform_name = "linux" if sys.platform.startswith("linux") else sys.platform
    folder = Path(next(iter(spec.submodule_search_locations)))
    lib = ctypes.CDLL(str(folder / f"{platform_name}-{machine}" / names[platform_name]))
    lib.wasm_config_new.restype = ctypes.c_void_p
    lib.wasm_engine_new_with_config.restype = ctypes.c_void_p
    lib.wasm_engine_new_with_config.argtypes = [ctypes.c_void_p]
    lib.wasm_engine_delete.argtypes = [ctypes.c_void_p]
    lib.wasmtime_module_validate.restype = ctypes.c_void_p
    lib.wasmtime_module_validate.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                             ctypes.c_size_t]
    lib.wasmtime_error_message.argtypes = [ctypes.c_void_p, ctypes.POINTER(_ByteVec)]
    lib.wasmtime_error_delete.argtypes = [ctypes.c_void_p]
    lib.wasm_byte_vec_delete.argtypes = [ctypes.POINTER(_ByteVec)]
    config = lib.wasm_config_new()
    for feature in _FEATURES:
        setter = getattr(lib, f"wasmtime_config_wasm_{feature}_set", None)
        if feature == "shared_memory":
            setter = getattr(lib, "wasmtime_config_shared_memory_set", None)
        if setter is not None:
            setter.argtypes = [ctypes.c_void_p, ctypes.c_bool]
            setter(config, True)
    engine_ptr = lib.wasm_engine_new_with_config(config)  # takes ownership of config
    try:
        error = lib.wasmtime_module_validate(engine_ptr, data, len(data))
        if not error:
            return None
        message = _ByteVec()
        lib.wasmtime_error_message(error, ctypes.byref(message))
        text = ctypes.string_at(message.data, message.size).decode("utf-8", "replace")
        lib.wasm_byte_vec_delete(ctypes.byref(message))
        lib.wasmtime_error_delete(error)
        return text
    finally:
        lib.wasm_engine_delete(engine_ptr)


def validate(data: bytes) -> None:
    """Raise :class:`InvalidModuleError` unless ``data`` validates.

    A module using a proposal wasmtime cannot validate (legacy exceptions, for one) is let
    through: threadify's own decoder has checked its structure, and its function bodies are
    copied unchanged.
    """
    reason: str | None
    try:
        reason = _native_validate(data)
    except (OSError, AttributeError, KeyError):
        reason = _wrapped_validate(data)
    if reason is None:
        return
    reason = explain(reason)
    if unsupported_feature(reason):
        # wasmtime stops at the first proposal it does not implement (legacy exceptions), so
        # it has not checked the rest: ask wasm-tools, which validates every proposal.
        reason = _wasm_tools_validate(data)
        if reason is None:
            return
    raise InvalidModuleError(f"the module is not valid WebAssembly: {reason}",
                             "check the toolchain's output with 'wasm-tools validate'; "
                             "rebuild it")


def _wasm_tools_validate(data: bytes) -> str | None:
    """``wasm-tools validate --features all``: the error message, or None when valid (or
    when the binary is not installed: then nothing more can be checked here)."""
    import shutil
    import subprocess
    import sysconfig

    tool = shutil.which("wasm-tools") or shutil.which(
        "wasm-tools", path=sysconfig.get_path("scripts"))
    if tool is None:
        return None
    try:
        proc = subprocess.run([tool, "validate", "--features", "all", "-"], input=data,
                              capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode == 0:
        return None
    return explain(proc.stderr.decode("utf-8", "replace").replace("error:", "", 1))


def _wrapped_validate(data: bytes) -> str | None:
    """Validation through wasmtime-py; the error message, or None when valid."""
    import wasmtime

    try:
        wasmtime.Module.validate(engine(), data)
    except wasmtime.WasmtimeError as error:
        return str(error)
    return None


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
