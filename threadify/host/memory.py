"""The one shared linear memory, created by the host and seen by every thread.

WASI-threads gives every thread its own instance but one memory, so the host creates the memory
itself (from the module's own import type, so limits and sharedness are exactly what the module
asked for) and links the same object into every instance.

wasmtime-py 50.0.x cannot link a ``SharedMemory``: ``SharedMemory._as_extern`` wraps an already
pointer-typed field in another pointer and ``Linker.define`` raises ``TypeError``
(bytecodealliance/wasmtime-py#318), and ``SharedMemory.size()`` passes a pointer-to-pointer too.
Instead of patching the library we build the ``wasmtime_extern_t`` from the raw pointer here;
this works on fixed and unfixed releases alike.

Host functions read and write guest memory through one ``memoryview`` spanning the memory's
*maximum*: a shared memory never moves (wasmtime reserves the maximum up front), so the view stays
valid while the memory grows. Every access is bounds-checked against the current size, which is
re-read only when a check fails (memory only grows).
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from wasmtime import _ffi as ffi

PAGE = 65536

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class GuestFault(Exception):
    """A guest pointer/length pair lies outside the memory (WASI ``EFAULT``)."""


def _name_buf(text: str) -> tuple[Any, int]:
    data = text.encode()
    return ctypes.create_string_buffer(data), len(data)


class SharedLinearMemory:
    """Owns the ``wasmtime_sharedmemory_t`` and gives bounds-checked byte access to it."""

    def __init__(self, engine: Any, memory_type: Any) -> None:
        ptr = ctypes.POINTER(ffi.wasmtime_sharedmemory_t)()
        error = ffi.wasmtime_sharedmemory_new(engine.ptr(), memory_type.ptr(),
                                              ctypes.byref(ptr))
        if error:
            from wasmtime import WasmtimeError

            raise WasmtimeError._from_ptr(error)
        self.ptr = ptr
        limit = memory_type.limits.max
        self.max_bytes = int(limit) * PAGE
        base = ctypes.cast(ffi.wasmtime_sharedmemory_data(ptr), ctypes.c_void_p).value or 0
        self.base = base
        raw = (ctypes.c_ubyte * self.max_bytes).from_address(base)
        self.view = memoryview(raw).cast("B")
        self.size = int(ffi.wasmtime_sharedmemory_data_size(ptr))

    def as_extern(self) -> Any:
        """The extern that links this memory (the part wasmtime-py 50 gets wrong)."""
        ext = ffi.wasmtime_extern_t()
        ext.kind = ffi.WASMTIME_EXTERN_SHAREDMEMORY.value  # type: ignore[assignment]
        ext.of.sharedmemory = self.ptr
        return ext

    def define_in(self, linker: Any, store_context: Any, module: str, name: str) -> None:
        """Define this memory in ``linker`` under ``module``.``name``.

        The C API wants a store context even though a shared memory belongs to no store; any
        store of the engine will do.
        """
        mod_buf, mod_len = _name_buf(module)
        name_buf, name_len = _name_buf(name)
        ext = self.as_extern()
        error = ffi.wasmtime_linker_define(linker.ptr(), store_context, mod_buf, mod_len,
                                           name_buf, name_len, ctypes.byref(ext))
        if error:
            from wasmtime import WasmtimeError

            raise WasmtimeError._from_ptr(error)

    # -- bounds-checked access (callers turn GuestFault into EFAULT) ------------------------

    def check(self, ptr: int, length: int) -> None:
        end = ptr + length
        if end > self.size:
            self.size = int(ffi.wasmtime_sharedmemory_data_size(self.ptr))
            if end > self.size:
                raise GuestFault(f"{ptr:#x}+{length}")

    def read(self, ptr: int, length: int) -> bytes:
        self.check(ptr, length)
        return bytes(self.view[ptr:ptr + length])

    def slice(self, ptr: int, length: int) -> memoryview:
        self.check(ptr, length)
        return self.view[ptr:ptr + length]

    def write(self, ptr: int, data: bytes | bytearray | memoryview) -> None:
        self.check(ptr, len(data))
        self.view[ptr:ptr + len(data)] = data

    def u32(self, ptr: int) -> int:
        self.check(ptr, 4)
        return int(_U32.unpack_from(self.view, ptr)[0])

    def u64(self, ptr: int) -> int:
        self.check(ptr, 8)
        return int(_U64.unpack_from(self.view, ptr)[0])

    def set_u32(self, ptr: int, value: int) -> None:
        self.check(ptr, 4)
        _U32.pack_into(self.view, ptr, value & 0xFFFFFFFF)

    def set_u64(self, ptr: int, value: int) -> None:
        self.check(ptr, 8)
        _U64.pack_into(self.view, ptr, value & 0xFFFFFFFFFFFFFFFF)

    def iovecs(self, iovs: int, count: int) -> list[memoryview]:
        """The guest's ``(buf, len)`` array as writable/readable slices of memory."""
        self.check(iovs, 8 * count)
        out = []
        for i in range(count):
            buf, length = struct.unpack_from("<II", self.view, iovs + 8 * i)
            out.append(self.slice(buf, length))
        return out
