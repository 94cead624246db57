"""The part of wasmtime's C API the host calls, declared over the library wasmtime-py ships.

Importing ``wasmtime`` (wasmtime-py) costs ~20 ms of CPU before anything runs: its ctypes layer
declares all ~760 C functions and ~130 structures, and pulls in ``typing``, ``platform``,
``pathlib`` and the high-level classes. ``threadify run`` calls about 40 functions, so this module
loads the *same* shared library from the installed wasmtime-py package and declares only those,
for ~1 ms (see docs/performance.md, "The host"). wasmtime-py stays the dependency and the
reference: ``tests/host/test_capi.py`` checks every declaration here against wasmtime-py's own
(symbol present, argument and result sizes, structure sizes and field offsets), so an ABI change
in a new wasmtime-py release fails the tests instead of a run.

Opaque handles (engine, module, store context, linker, types, errors, traps) are passed and
returned as ``c_void_p`` (Python ints), which also accepts wasmtime-py's own typed pointers:
code that built its objects with wasmtime-py (``threadify.verify``) can call these functions too,
on the same library instance (the dynamic loader maps a library only once per process).
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import POINTER, byref, c_bool, c_size_t, c_uint8, c_uint64, c_void_p
from typing import Any

# -- locating the library wasmtime-py ships ---------------------------------------------------


def _library_path() -> str:
    """Where wasmtime-py keeps its shared library, found without importing the package.

    Same naming as wasmtime-py's loader (``<platform>-<machine>/<lib>`` inside the package
    folder); anything unusual asks wasmtime-py itself.
    """
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("wasmtime")
    if spec is not None and spec.submodule_search_locations and sys.platform == "linux":
        machine = os.uname().machine
        machine = {"AMD64": "x86_64", "arm64": "aarch64", "ARM64": "aarch64"}.get(machine,
                                                                                  machine)
        for folder in spec.submodule_search_locations:
            path = os.path.join(folder, f"linux-{machine}", "_libwasmtime.so")
            if os.path.isfile(path):
                return path
    from wasmtime import _ffi  # the slow, general way (other platforms, unusual installs)

    return str(_ffi.filename)


LIBRARY_PATH = _library_path()
_dll = ctypes.CDLL(LIBRARY_PATH)

# -- structures (layouts of wasmtime's C headers; sizes checked against wasmtime-py) ----------


class wasm_byte_vec_t(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("data", POINTER(c_uint8))]


class wasm_ptr_vec_t(ctypes.Structure):
    """``wasm_importtype_vec_t``, ``wasm_exporttype_vec_t``, ``wasm_valtype_vec_t``."""

    _fields_ = [("size", c_size_t), ("data", POINTER(c_void_p))]


class wasmtime_func_t(ctypes.Structure):
    _fields_ = [("store_id", c_uint64), ("private", c_void_p)]


class wasmtime_instance_t(ctypes.Structure):
    _fields_ = [("store_id", c_uint64), ("private", c_size_t)]


class _memory_head(ctypes.Structure):
    _fields_ = [("store_id", c_uint64), ("private1", ctypes.c_uint32)]


class wasmtime_memory_t(ctypes.Structure):
    _fields_ = [("head", _memory_head), ("private2", ctypes.c_uint32)]


class wasmtime_extern_union(ctypes.Union):
    # The other members (global, table, tag) are never read here; ``_size`` gives the union
    # its full size (the largest members, a global or a memory, are 24 bytes).
    _fields_ = [("func", wasmtime_func_t), ("memory", wasmtime_memory_t),
                ("sharedmemory", c_void_p), ("_size", c_uint64 * 3)]


class wasmtime_extern_t(ctypes.Structure):
    _fields_ = [("kind", c_uint8), ("of", wasmtime_extern_union)]


class wasmtime_val_raw_t(ctypes.Union):
    _fields_ = [("i32", ctypes.c_int32), ("i64", ctypes.c_int64), ("f32", ctypes.c_float),
                ("f64", ctypes.c_double), ("v128", c_uint8 * 16), ("funcref", c_void_p)]


# Kinds (wasm.h / wasmtime/extern.h).
EXTERN_FUNC = 0
EXTERN_MEMORY = 3
EXTERN_SHAREDMEMORY = 4
WASM_EXTERN_FUNC = 0
WASM_EXTERN_MEMORY = 3
VALKIND_I32 = 0
VALKIND_I64 = 1
VALKIND_F32 = 2
VALKIND_F64 = 3
VALKIND_EXTERNREF = 128
VALKIND_FUNCREF = 129

callback_t = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, POINTER(wasmtime_val_raw_t),
                              c_size_t)
finalizer_t = ctypes.CFUNCTYPE(None, c_void_p)
NULL_FINALIZER = ctypes.cast(0, finalizer_t)

# -- functions --------------------------------------------------------------------------------

_V = c_void_p
_BYTES = POINTER(wasm_byte_vec_t)
_VEC = POINTER(wasm_ptr_vec_t)

#: name -> (result, arguments); the test compares each with wasmtime-py's declaration.
SIGNATURES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "wasm_config_new": (_V, ()),
    "wasmtime_config_wasm_threads_set": (None, (_V, c_bool)),
    "wasmtime_config_shared_memory_set": (None, (_V, c_bool)),
    "wasmtime_config_wasm_gc_set": (None, (_V, c_bool)),
    "wasmtime_config_wasm_function_references_set": (None, (_V, c_bool)),
    "wasmtime_config_wasm_exceptions_set": (None, (_V, c_bool)),
    "wasmtime_config_wasm_wide_arithmetic_set": (None, (_V, c_bool)),
    "wasm_engine_new_with_config": (_V, (_V,)),
    "wasmtime_module_new": (_V, (_V, _V, c_size_t, _V)),
    "wasmtime_module_deserialize_file": (_V, (_V, ctypes.c_char_p, _V)),
    "wasmtime_module_serialize": (_V, (_V, _BYTES)),
    "wasmtime_module_imports": (None, (_V, _VEC)),
    "wasmtime_module_exports": (None, (_V, _VEC)),
    "wasm_importtype_vec_delete": (None, (_VEC,)),
    "wasm_exporttype_vec_delete": (None, (_VEC,)),
    "wasm_importtype_module": (_BYTES, (_V,)),
    "wasm_importtype_name": (_BYTES, (_V,)),
    "wasm_importtype_type": (_V, (_V,)),
    "wasm_exporttype_name": (_BYTES, (_V,)),
    "wasm_exporttype_type": (_V, (_V,)),
    "wasm_externtype_kind": (c_uint8, (_V,)),
    "wasm_externtype_as_functype_const": (_V, (_V,)),
    "wasm_externtype_as_memorytype_const": (_V, (_V,)),
    "wasm_functype_params": (_VEC, (_V,)),
    "wasm_functype_results": (_VEC, (_V,)),
    "wasm_functype_new": (_V, (_VEC, _VEC)),
    "wasm_valtype_kind": (c_uint8, (_V,)),
    "wasm_valtype_new": (_V, (c_uint8,)),
    "wasm_valtype_vec_new": (None, (_VEC, c_size_t, _V)),
    "wasm_memorytype_copy": (_V, (_V,)),
    "wasmtime_memorytype_maximum": (c_bool, (_V, POINTER(c_uint64))),
    "wasmtime_memorytype_is64": (c_bool, (_V,)),
    "wasmtime_memorytype_isshared": (c_bool, (_V,)),
    "wasmtime_linker_new": (_V, (_V,)),
    "wasmtime_linker_define": (_V, (_V, _V, _V, c_size_t, _V, c_size_t,
                                    POINTER(wasmtime_extern_t))),
    "wasmtime_linker_define_func_unchecked": (_V, (_V, _V, c_size_t, _V, c_size_t, _V,
                                                   callback_t, _V, finalizer_t)),
    "wasmtime_linker_instantiate_pre": (_V, (_V, _V, _V)),
    "wasmtime_store_new": (_V, (_V, _V, finalizer_t)),
    "wasmtime_store_context": (_V, (_V,)),
    "wasmtime_store_delete": (None, (_V,)),
    "wasmtime_instance_pre_instantiate": (_V, (_V, _V, POINTER(wasmtime_instance_t), _V)),
    "wasmtime_instance_export_get": (c_bool, (_V, POINTER(wasmtime_instance_t), _V, c_size_t,
                                              POINTER(wasmtime_extern_t))),
    "wasmtime_func_call_unchecked": (_V, (_V, POINTER(wasmtime_func_t),
                                          POINTER(wasmtime_val_raw_t), c_size_t, _V)),
    "wasmtime_extern_delete": (None, (POINTER(wasmtime_extern_t),)),
    "wasmtime_caller_export_get": (c_bool, (_V, _V, c_size_t, POINTER(wasmtime_extern_t))),
    "wasmtime_caller_context": (_V, (_V,)),
    "wasmtime_memory_new": (_V, (_V, _V, POINTER(wasmtime_memory_t))),
    "wasmtime_memory_data": (_V, (_V, POINTER(wasmtime_memory_t))),
    "wasmtime_memory_data_size": (c_size_t, (_V, POINTER(wasmtime_memory_t))),
    "wasmtime_sharedmemory_new": (_V, (_V, _V, _V)),
    "wasmtime_sharedmemory_data": (_V, (_V,)),
    "wasmtime_sharedmemory_data_size": (c_size_t, (_V,)),
    "wasmtime_error_message": (None, (_V, _BYTES)),
    "wasmtime_error_delete": (None, (_V,)),
    "wasm_trap_message": (None, (_V, _BYTES)),
    "wasm_trap_trace": (None, (_V, _VEC)),
    "wasmtime_frame_func_name": (_BYTES, (_V,)),
    "wasm_frame_vec_delete": (None, (_VEC,)),
    "wasmtime_trap_new": (_V, (_V, c_size_t)),
    "wasm_byte_vec_delete": (None, (_BYTES,)),
}


def _declare(name: str) -> Any:
    restype, argtypes = SIGNATURES[name]
    func = getattr(_dll, name)
    func.restype = restype
    func.argtypes = list(argtypes)
    return func


wasm_config_new = _declare("wasm_config_new")
wasmtime_config_wasm_threads_set = _declare("wasmtime_config_wasm_threads_set")
wasmtime_config_shared_memory_set = _declare("wasmtime_config_shared_memory_set")
wasmtime_config_wasm_gc_set = _declare("wasmtime_config_wasm_gc_set")
wasmtime_config_wasm_function_references_set = _declare(
    "wasmtime_config_wasm_function_references_set")
wasmtime_config_wasm_exceptions_set = _declare("wasmtime_config_wasm_exceptions_set")
wasmtime_config_wasm_wide_arithmetic_set = _declare("wasmtime_config_wasm_wide_arithmetic_set")
wasm_engine_new_with_config = _declare("wasm_engine_new_with_config")
wasmtime_module_new = _declare("wasmtime_module_new")
wasmtime_module_deserialize_file = _declare("wasmtime_module_deserialize_file")
wasmtime_module_serialize = _declare("wasmtime_module_serialize")
wasmtime_module_imports = _declare("wasmtime_module_imports")
wasmtime_module_exports = _declare("wasmtime_module_exports")
wasm_importtype_vec_delete = _declare("wasm_importtype_vec_delete")
wasm_exporttype_vec_delete = _declare("wasm_exporttype_vec_delete")
wasm_importtype_module = _declare("wasm_importtype_module")
wasm_importtype_name = _declare("wasm_importtype_name")
wasm_importtype_type = _declare("wasm_importtype_type")
wasm_exporttype_name = _declare("wasm_exporttype_name")
wasm_exporttype_type = _declare("wasm_exporttype_type")
wasm_externtype_kind = _declare("wasm_externtype_kind")
wasm_externtype_as_functype_const = _declare("wasm_externtype_as_functype_const")
wasm_externtype_as_memorytype_const = _declare("wasm_externtype_as_memorytype_const")
wasm_functype_params = _declare("wasm_functype_params")
wasm_functype_results = _declare("wasm_functype_results")
wasm_functype_new = _declare("wasm_functype_new")
wasm_valtype_kind = _declare("wasm_valtype_kind")
wasm_valtype_new = _declare("wasm_valtype_new")
wasm_valtype_vec_new = _declare("wasm_valtype_vec_new")
wasm_memorytype_copy = _declare("wasm_memorytype_copy")
wasmtime_memorytype_maximum = _declare("wasmtime_memorytype_maximum")
wasmtime_memorytype_is64 = _declare("wasmtime_memorytype_is64")
wasmtime_memorytype_isshared = _declare("wasmtime_memorytype_isshared")
wasmtime_linker_new = _declare("wasmtime_linker_new")
wasmtime_linker_define = _declare("wasmtime_linker_define")
wasmtime_linker_define_func_unchecked = _declare("wasmtime_linker_define_func_unchecked")
wasmtime_linker_instantiate_pre = _declare("wasmtime_linker_instantiate_pre")
wasmtime_store_new = _declare("wasmtime_store_new")
wasmtime_store_context = _declare("wasmtime_store_context")
wasmtime_store_delete = _declare("wasmtime_store_delete")
wasmtime_instance_pre_instantiate = _declare("wasmtime_instance_pre_instantiate")
wasmtime_instance_export_get = _declare("wasmtime_instance_export_get")
wasmtime_func_call_unchecked = _declare("wasmtime_func_call_unchecked")
wasmtime_extern_delete = _declare("wasmtime_extern_delete")
wasmtime_caller_export_get = _declare("wasmtime_caller_export_get")
wasmtime_caller_context = _declare("wasmtime_caller_context")
wasmtime_memory_new = _declare("wasmtime_memory_new")
wasmtime_memory_data = _declare("wasmtime_memory_data")
wasmtime_memory_data_size = _declare("wasmtime_memory_data_size")
wasmtime_sharedmemory_new = _declare("wasmtime_sharedmemory_new")
wasmtime_sharedmemory_data = _declare("wasmtime_sharedmemory_data")
wasmtime_sharedmemory_data_size = _declare("wasmtime_sharedmemory_data_size")
wasmtime_error_message = _declare("wasmtime_error_message")
wasmtime_error_delete = _declare("wasmtime_error_delete")
wasm_trap_message = _declare("wasm_trap_message")
wasm_trap_trace = _declare("wasm_trap_trace")
wasmtime_frame_func_name = _declare("wasmtime_frame_func_name")
wasm_frame_vec_delete = _declare("wasm_frame_vec_delete")
wasmtime_trap_new = _declare("wasmtime_trap_new")
wasm_byte_vec_delete = _declare("wasm_byte_vec_delete")

# -- small helpers ----------------------------------------------------------------------------


class NativeError(Exception):
    """A ``wasmtime_error_t`` turned into text (the error itself is freed)."""


def address(ptr: Any) -> int:
    """An int address from an int, ``c_void_p`` or a typed ctypes pointer (wasmtime-py's)."""
    if ptr is None or isinstance(ptr, int):
        return ptr or 0
    if isinstance(ptr, c_void_p):
        return ptr.value or 0
    return ctypes.cast(ptr, c_void_p).value or 0


def _take_bytes(vec: wasm_byte_vec_t) -> bytes:
    data = ctypes.string_at(vec.data, vec.size) if vec.size else b""
    wasm_byte_vec_delete(byref(vec))
    return data


def error_text(error: Any) -> str:
    """The message of a ``wasmtime_error_t`` (which is then deleted: errors are owned)."""
    vec = wasm_byte_vec_t()
    raw = address(error)
    wasmtime_error_message(raw, byref(vec))
    text = _take_bytes(vec).decode("utf-8", errors="replace")
    wasmtime_error_delete(raw)
    return text


def trap_text(trap: Any) -> str:
    """The message of a ``wasm_trap_t`` (without the C string's trailing NUL)."""
    vec = wasm_byte_vec_t()
    wasm_trap_message(address(trap), byref(vec))
    return _take_bytes(vec).rstrip(b"\0").decode("utf-8", errors="replace")


def trap_function_names(trap: Any, count: int) -> list[str | None]:
    """The function names of the innermost ``count`` frames of a trap's backtrace."""
    frames = wasm_ptr_vec_t()
    wasm_trap_trace(address(trap), byref(frames))
    names: list[str | None] = []
    for i in range(min(count, frames.size)):
        name = wasmtime_frame_func_name(frames.data[i])
        names.append(name_of(name) if name else None)
    wasm_frame_vec_delete(byref(frames))
    return names


def check(error: Any) -> None:
    """Raise :class:`NativeError` for a non-NULL ``wasmtime_error_t``."""
    if error:
        raise NativeError(error_text(error))


def name_of(vec_ptr: Any) -> str:
    """A ``const wasm_name_t *`` (borrowed) as text."""
    vec = vec_ptr.contents
    return ctypes.string_at(vec.data, vec.size).decode("utf-8", errors="replace") \
        if vec.size else ""


class Handle:
    """An owned native object that lives as long as the process (a run is one process).

    ``ptr()`` mirrors wasmtime-py's objects, so code written against either works with both.
    """

    __slots__ = ("_ptr",)

    def __init__(self, ptr: int | None) -> None:
        if not ptr:
            raise NativeError("wasmtime returned NULL")
        self._ptr = ptr

    def ptr(self) -> int:
        return self._ptr


def engine() -> Handle:
    """An engine with the threads and shared-memory proposals on, and GC, typed function
    references, exception handling and wide arithmetic off, as the wasmtime 46 CLI has them by
    default (wasmtime-py's defaults else).

    Off also because the C API cannot describe the types those proposals add: listing the
    imports or exports of a module that uses them in a signature aborts the process
    ("support for non-externref and non-funcref references is not implemented"). With them off,
    such a module is refused when it is compiled, with wasmtime's one-line reason.
    """
    config = wasm_config_new()
    wasmtime_config_wasm_threads_set(config, True)
    wasmtime_config_shared_memory_set(config, True)
    wasmtime_config_wasm_gc_set(config, False)
    wasmtime_config_wasm_function_references_set(config, False)
    wasmtime_config_wasm_exceptions_set(config, False)
    wasmtime_config_wasm_wide_arithmetic_set(config, False)
    return Handle(wasm_engine_new_with_config(config))  # takes ownership of the config
