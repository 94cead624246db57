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

A single-threaded ("plain") program has an ordinary memory instead, which belongs to one store and
may move when it grows. WASI finds it the way wasmtime's WASI does: as the calling instance's
export named ``memory`` (:class:`CallerMemory`), looked up once per host call.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from typing import Any

from wasmtime import _ffi as ffi

PAGE = 65536

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class GuestFault(Exception):
    """A guest pointer/length pair lies outside the memory (WASI ``EFAULT``)."""


class MemoryMissing(Exception):
    """A WASI call needs memory but the calling module exports none named ``memory``.

    Not an errno: wasmtime traps here too ("missing required memory export"), so the call traps.
    """

    def __init__(self) -> None:
        super().__init__("the module exports no memory named `memory`, which WASI needs")


#: The host call running on this thread: set by :mod:`threadify.host.linking` on every call so
#: that :class:`CallerMemory` can find the caller's memory (``caller``) and keep it for the rest
#: of the call (``region``).
CURRENT_CALL = threading.local()


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
        self._view = memoryview(raw).cast("B")
        self.size = int(ffi.wasmtime_sharedmemory_data_size(ptr))

    @property
    def view(self) -> memoryview:
        """All of the memory's address range (only ``[0, size)`` is accessible)."""
        return self._view

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


class CallerMemory(SharedLinearMemory):
    """The memory WASI uses in a single-threaded program: the caller's ``memory`` export.

    It offers the accessors of :class:`SharedLinearMemory` (so the WASI implementation serves
    both kinds of program unchanged), but finds the memory anew in every host call, because an
    ordinary memory belongs to one store and moves when it grows. As in wasmtime, the memory is
    the calling instance's export named ``memory``; a module that does not export it but imports
    exactly one memory gets that one (``fallback``, with the store it was created in, or a
    :class:`SharedLinearMemory`). Only the thread that runs the program uses it.
    """

    def __init__(self, fallback: Any = None, fallback_store: Any = None) -> None:
        # no super().__init__(): there is no memory of our own to create
        self._fallback = fallback
        self._fallback_store = fallback_store

    def _region(self) -> memoryview:
        region: memoryview | None = getattr(CURRENT_CALL, "region", None)
        if region is not None:
            return region
        caller = getattr(CURRENT_CALL, "caller", None)
        base = size = 0
        found = False
        if caller is not None:
            ext = ffi.wasmtime_extern_t()
            if ffi.wasmtime_caller_export_get(caller, b"memory", 6, ctypes.byref(ext)):
                kind = int(ext.kind)
                if kind == ffi.WASMTIME_EXTERN_MEMORY.value:
                    context = ffi.wasmtime_caller_context(caller)
                    memory = ctypes.byref(ext.of.memory)
                    base = _address(ffi.wasmtime_memory_data(context, memory))
                    size = int(ffi.wasmtime_memory_data_size(context, memory))
                    found = True
                elif kind == ffi.WASMTIME_EXTERN_SHAREDMEMORY.value:
                    shared = ext.of.sharedmemory
                    base = _address(ffi.wasmtime_sharedmemory_data(shared))
                    size = int(ffi.wasmtime_sharedmemory_data_size(shared))
                    found = True
                ffi.wasmtime_extern_delete(ctypes.byref(ext))
        if not found:
            fallback = self._fallback
            if isinstance(fallback, SharedLinearMemory):
                base = fallback.base
                size = int(ffi.wasmtime_sharedmemory_data_size(fallback.ptr))
            elif fallback is not None:
                base = _address(fallback.data_ptr(self._fallback_store))
                size = int(fallback.data_len(self._fallback_store))
            else:
                raise MemoryMissing()
        region = memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B") if size else \
            memoryview(b"")
        CURRENT_CALL.region = region
        return region

    @property
    def view(self) -> memoryview:
        return self._region()

    def check(self, ptr: int, length: int) -> None:
        if ptr + length > len(self._region()):
            raise GuestFault(f"{ptr:#x}+{length}")


def _address(pointer: Any) -> int:
    return ctypes.cast(pointer, ctypes.c_void_p).value or 0
