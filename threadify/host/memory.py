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
from collections.abc import Callable
from typing import Any

from threadify.native import capi

PAGE = 65536
#: How much of a shared memory the host's view spans at most: a WASI pointer and a length are
#: 32-bit values, so nothing beyond 8 GiB is ever addressed (a 64-bit memory's maximum may lie
#: far beyond what can be mapped).
VIEW_LIMIT = 1 << 33

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


def _define_extern(linker: Any, context: Any, module: str, name: str, ext: Any) -> None:
    """Define ``ext`` (a ``wasmtime_extern_t``) in ``linker`` under ``module``.``name``."""
    mod_raw, name_raw = module.encode(), name.encode()
    capi.check(capi.wasmtime_linker_define(linker.ptr(), context, mod_raw, len(mod_raw),
                                           name_raw, len(name_raw), ctypes.byref(ext)))


class LinearMemory:
    """Bounds-checked access to guest memory: what the WASI implementation uses.

    Subclasses say where the memory is (:attr:`view`) and how far it reaches (:meth:`check`,
    which raises :class:`GuestFault` beyond the end); the accessors are built on those two.
    """

    __slots__ = ()

    @property
    def view(self) -> memoryview:
        """The memory's bytes (at least ``[0, size)``)."""
        raise NotImplementedError

    def check(self, ptr: int, length: int) -> None:
        raise NotImplementedError

    # -- bounds-checked access (callers turn GuestFault into EFAULT) ------------------------

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


class SharedLinearMemory(LinearMemory):
    """Owns the ``wasmtime_sharedmemory_t`` and gives bounds-checked byte access to it."""

    def __init__(self, engine: Any, memory_type: Any) -> None:
        """``engine`` and ``memory_type``: anything with ``ptr()`` (wasmtime-py's or ours)."""
        out = ctypes.c_void_p()
        capi.check(capi.wasmtime_sharedmemory_new(engine.ptr(), memory_type.ptr(),
                                                  ctypes.byref(out)))
        ptr = out.value
        self.ptr = ptr
        limit = ctypes.c_uint64()
        capi.wasmtime_memorytype_maximum(memory_type.ptr(), ctypes.byref(limit))
        self.max_bytes = int(limit.value) * PAGE
        base = capi.wasmtime_sharedmemory_data(ptr) or 0
        self.base = base
        raw = (ctypes.c_ubyte * min(self.max_bytes, VIEW_LIMIT)).from_address(base)
        self._view = memoryview(raw).cast("B")
        self.size = int(capi.wasmtime_sharedmemory_data_size(ptr))

    @property
    def view(self) -> memoryview:
        """All of the memory's address range (only ``[0, size)`` is accessible)."""
        return self._view

    def as_extern(self) -> Any:
        """The extern that links this memory (the part wasmtime-py 50 gets wrong)."""
        ext = capi.wasmtime_extern_t()
        ext.kind = capi.EXTERN_SHAREDMEMORY
        ext.of.sharedmemory = self.ptr
        return ext

    def define_in(self, linker: Any, store_context: Any, module: str, name: str) -> None:
        """Define this memory in ``linker`` under ``module``.``name``.

        The C API wants a store context even though a shared memory belongs to no store; any
        store of the engine will do.
        """
        _define_extern(linker, store_context, module, name, self.as_extern())

    def check(self, ptr: int, length: int) -> None:
        """Re-reads the size only when the access is beyond the size last seen (memory only
        grows)."""
        end = ptr + length
        if end > self.size:
            self.size = int(capi.wasmtime_sharedmemory_data_size(self.ptr))
            if end > self.size:
                raise GuestFault(f"{ptr:#x}+{length}")


class CallerMemory(LinearMemory):
    """The memory WASI uses in a single-threaded program: the caller's ``memory`` export.

    A :class:`LinearMemory` like :class:`SharedLinearMemory` (so the WASI implementation serves
    both kinds of program unchanged), but one that owns no memory. As in wasmtime, the memory
    is the calling instance's export named ``memory``; a module that does not export it but
    imports exactly one memory gets that one (``fallback``, with the store it was created in,
    or a :class:`SharedLinearMemory`). It is looked up in the first host call (the program's
    one instance may not even exist yet: its start function may call WASI), and its address
    and size are read anew in every call, because an ordinary memory moves when it grows.
    Only the thread that runs the program uses it.
    """

    __slots__ = ("_context", "_fallback", "_located")

    def __init__(self, context: Any, fallback: SharedLinearMemory | StoreMemory | None = None
                 ) -> None:
        """``context``: the store the program's instance lives in."""
        self._context = context
        self._fallback = fallback
        #: ``() -> (base, size)`` of the memory once found (a plain program has one instance,
        #: so the first call's answer holds for every later call; only base and size change)
        self._located: Callable[[], tuple[int, int]] | None = None

    def _locate(self) -> Callable[[], tuple[int, int]]:
        """Find the memory: the calling instance's ``memory`` export, else the fallback."""
        caller = getattr(CURRENT_CALL, "caller", None)
        if caller is not None:
            ext = capi.wasmtime_extern_t()
            if capi.wasmtime_caller_export_get(caller, b"memory", 6, ctypes.byref(ext)):
                kind = int(ext.kind)
                if kind == capi.EXTERN_MEMORY:  # a store's handle: nothing to free
                    return StoreMemory.of(self._context, ext.of.memory).data
                if kind == capi.EXTERN_SHAREDMEMORY:  # an owned handle, kept for the run
                    return _shared_data(ext.of.sharedmemory)
                capi.wasmtime_extern_delete(ctypes.byref(ext))
        fallback = self._fallback
        if isinstance(fallback, SharedLinearMemory):
            return _shared_data(fallback.ptr)
        if isinstance(fallback, StoreMemory):
            return fallback.data
        raise MemoryMissing()

    def _region(self) -> memoryview:
        region: memoryview | None = getattr(CURRENT_CALL, "region", None)
        if region is not None:
            return region
        located = self._located
        if located is None:
            located = self._located = self._locate()
        base, size = located()
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


def _shared_data(ptr: Any) -> Callable[[], tuple[int, int]]:
    """``() -> (base, size)`` of the ``wasmtime_sharedmemory_t`` at ``ptr``."""
    base = capi.wasmtime_sharedmemory_data(ptr) or 0  # a shared memory never moves

    def data() -> tuple[int, int]:
        return base, int(capi.wasmtime_sharedmemory_data_size(ptr))

    return data


class StoreMemory:
    """An ordinary (non-shared) memory of one store, for a single-threaded program: one the host
    created (from the module's import type) or one the program defines."""

    __slots__ = ("context", "memory")

    def __init__(self, context: Any, memory_type: Any) -> None:
        self.context = context
        self.memory = capi.wasmtime_memory_t()
        capi.check(capi.wasmtime_memory_new(context, memory_type.ptr(),
                                            ctypes.byref(self.memory)))

    @classmethod
    def of(cls, context: Any, memory: Any) -> StoreMemory:
        """The existing memory ``memory`` (a ``wasmtime_memory_t``) of the store of
        ``context``."""
        self = cls.__new__(cls)
        self.context = context
        self.memory = capi.wasmtime_memory_t.from_buffer_copy(memory)
        return self

    def define_in(self, linker: Any, module: str, name: str) -> None:
        """Define this memory in ``linker`` under ``module``.``name``."""
        ext = capi.wasmtime_extern_t()
        ext.kind = capi.EXTERN_MEMORY
        ext.of.memory = self.memory
        _define_extern(linker, self.context, module, name, ext)

    def data(self) -> tuple[int, int]:
        """Base address and size now (both change when the memory grows)."""
        ref = ctypes.byref(self.memory)
        return (capi.wasmtime_memory_data(self.context, ref) or 0,
                int(capi.wasmtime_memory_data_size(self.context, ref)))
