"""The host's own C-API declarations agree with wasmtime-py's, and a run imports little.

``threadify.native.capi`` declares the ~45 C functions the host calls over the library that
wasmtime-py ships, instead of importing wasmtime-py (~20 ms of start-up). These tests compare
every declaration with wasmtime-py's own, so a wasmtime-py release that changes the C ABI fails
here rather than in a run.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import pytest
from wasmtime import _bindings
from wasmtime import _ffi as ffi

from tests.tooling import imports_added_by
from threadify.native import capi

# Our structures and the wasmtime-py structures with the same C layout.
STRUCTS = {
    "wasm_byte_vec_t": "wasm_byte_vec_t",
    "wasm_ptr_vec_t": "wasm_importtype_vec_t",
    "wasmtime_func_t": "wasmtime_func_t",
    "wasmtime_instance_t": "wasmtime_instance_t",
    "wasmtime_memory_t": "wasmtime_memory_t",
    "wasmtime_extern_union": "wasmtime_extern_union",
    "wasmtime_extern_t": "wasmtime_extern_t",
    "wasmtime_val_raw_t": "wasmtime_val_raw_t",
}


def _size(ctype: object) -> int:
    return 0 if ctype is None else ctypes.sizeof(ctype)  # type: ignore[arg-type]


def test_same_library_file() -> None:
    assert os.path.samefile(capi.LIBRARY_PATH, str(ffi.filename))


@pytest.mark.parametrize("name", sorted(capi.SIGNATURES))
def test_function_matches_wasmtime_py(name: str) -> None:
    theirs = getattr(_bindings, "_" + name)  # wasmtime-py's raw ctypes function
    restype, argtypes = capi.SIGNATURES[name]
    assert _size(restype) == _size(theirs.restype), name
    assert [_size(t) for t in argtypes] == [_size(t) for t in theirs.argtypes], name
    # Scalars must be the very same kind (a bool is not a pointer of the same size).
    pointers = (ctypes._Pointer, ctypes._CFuncPtr)  # type: ignore[attr-defined]
    for ours, their in zip(argtypes, theirs.argtypes, strict=True):
        if not issubclass(their, pointers) and their is not \
                ctypes.c_void_p and their is not ctypes.c_char_p:
            assert ours is their or ours._type_ == their._type_, (name, ours, their)


@pytest.mark.parametrize("ours,theirs", sorted(STRUCTS.items()))
def test_structure_layout_matches(ours: str, theirs: str) -> None:
    mine, other = getattr(capi, ours), getattr(ffi, theirs)
    assert ctypes.sizeof(mine) == ctypes.sizeof(other)
    assert ctypes.alignment(mine) == ctypes.alignment(other)
    offsets = {field[0]: getattr(other, field[0]).offset for field in other._fields_}
    for field in mine._fields_:
        if field[0] in offsets:
            assert getattr(mine, field[0]).offset == offsets[field[0]], field[0]


def test_constants_match() -> None:
    assert capi.EXTERN_FUNC == ffi.WASMTIME_EXTERN_FUNC.value
    assert capi.EXTERN_SHAREDMEMORY == ffi.WASMTIME_EXTERN_SHAREDMEMORY.value
    assert capi.EXTERN_MEMORY == ffi.WASMTIME_EXTERN_MEMORY.value
    assert capi.VALKIND_I32 == ffi.WASM_I32.value
    assert capi.VALKIND_I64 == ffi.WASM_I64.value
    assert _size(capi.callback_t._restype_) == _size(
        ffi.wasmtime_func_unchecked_callback_t._restype_)
    assert [_size(t) for t in capi.callback_t._argtypes_] == [
        _size(t) for t in ffi.wasmtime_func_unchecked_callback_t._argtypes_]


def test_extern_kinds_and_value_kinds_as_wasmtime_py_sees_them() -> None:
    import wasmtime

    from threadify.host import loading

    wat = """(module (import "a" "f" (func (param i32 i64) (result i32)))
                     (import "a" "m" (memory 1 2 shared)) (import "a" "g" (global i32)))"""
    engine = loading.make_engine()
    binary = wasmtime.wat2wasm(wat)
    module = loading.compile_module(engine, loading.Source("t.wasm", data=bytes(binary)))
    vec = capi.wasm_ptr_vec_t()
    capi.wasmtime_module_imports(module.ptr(), ctypes.byref(vec))
    kinds = {capi.name_of(capi.wasm_importtype_name(vec.data[i])):
             capi.wasm_externtype_kind(capi.wasm_importtype_type(vec.data[i]))
             for i in range(vec.size)}
    func = capi.wasm_externtype_as_functype_const(capi.wasm_importtype_type(vec.data[0]))
    assert loading._sig(func) == ("iI", "i")
    capi.wasm_importtype_vec_delete(ctypes.byref(vec))
    theirs = {imp.name: type(imp.type) for imp in wasmtime.Module(
        wasmtime.Engine(_threads_config(wasmtime)), bytes(binary)).imports}
    assert theirs["f"] is wasmtime.FuncType and kinds["f"] == capi.WASM_EXTERN_FUNC
    assert theirs["m"] is wasmtime.MemoryType and kinds["m"] == capi.WASM_EXTERN_MEMORY
    assert kinds["g"] not in (capi.WASM_EXTERN_FUNC, capi.WASM_EXTERN_MEMORY)


def _threads_config(wasmtime: Any) -> Any:
    config = wasmtime.Config()
    config.wasm_threads = True
    config.shared_memory = True
    return config


def test_errors_and_traps_read_as_wasmtime_py_reads_them() -> None:
    import wasmtime

    bad = b"\0asm\x01\0\0\0\x99"
    engine = capi.engine()
    out = ctypes.c_void_p()
    error = capi.wasmtime_module_new(engine.ptr(), bad, len(bad), ctypes.byref(out))
    assert error and not out.value
    with pytest.raises(wasmtime.WasmtimeError) as theirs:
        wasmtime.Module(wasmtime.Engine(), bad)
    assert capi.error_text(error) == str(theirs.value)
    trap = capi.wasmtime_trap_new(b"host error: boom", 16)
    assert capi.trap_text(trap) == wasmtime.Trap._from_ptr(
        ctypes.cast(capi.wasmtime_trap_new(b"host error: boom", 16),
                    ctypes.POINTER(ffi.wasm_trap_t))).message


def test_a_run_imports_neither_wasmtime_py_nor_slow_modules() -> None:
    """What ``threadify run`` imports before the program starts (docs/performance.md)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    slow_modules = ("wasmtime", "dataclasses", "inspect", "hashlib", "_hashlib", "tempfile",
                    "platform", "json", "subprocess", "argparse", "typer")
    added = imports_added_by("import threadify_cli.main, threadify_cli.run_cmd\n"
                             "import threadify.host.program, threadify.host.spawning",
                             watched=slow_modules, cwd="/", env=env)
    assert "threadify.host.program" in added
    loaded = {name.split(".")[0] for name in added}
    for slow in slow_modules:
        assert slow not in loaded, f"{slow} is imported on the way to running a program"
