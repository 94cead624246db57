"""Insert an instruction sequence after every ``global.set G`` of a code section, natively.

Why: finding ``global.set`` instructions exactly means decoding every instruction before them
(the opcode byte ``0x24`` also occurs inside immediates), and the Python decoder manages about
a megabyte of code a second — a minute for the 31 MB of code in a 45 MB module. The same loop in
C (``codescan.c``, built to ``codescan.wasm`` by ``scripts/build_codescan.sh``) runs under
wasmtime in milliseconds. Its opcode tables are this package's own
(:mod:`threadify.wasm.opcodes`), written into its memory before each run, so both decoders agree
on every instruction's length.

:func:`insert_after_global_sets` returns ``None`` when the native scanner cannot be used or gives
up on a body (an opcode it has no kind for, a malformed body); callers then use the Python
decoder, which also reports malformations with their offset.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from threadify.wasm.opcodes import PREFIXES, SINGLE
from threadify.wasm.reader import uleb32_at
from threadify.wasm.writer import uleb

WASM = Path(__file__).with_name("codescan.wasm")

#: Immediate kinds, numbered as ``enum kind`` in codescan.c.
KINDS = {"": 1, "bt": 2, "idx": 3, "idx2": 4, "brt": 5, "mem": 6, "meml": 7, "lane": 8,
         "i32": 9, "i64": 10, "f32": 11, "f64": 12, "v128": 13, "selt": 14, "ht": 15,
         "zero": 16, "tt": 17, "brc": 18}
K_PREFIX = 19
TABLE = 512


class Rewritten:
    """The new code-section payload and what changed. The payload is kept as ``chunks``:
    views of the scanners' memories, written out without a copy (they keep the scanners
    alive). A plain class, not a dataclass: it is made once per run, and defining a dataclass
    costs ~1 ms at import."""

    __slots__ = ("chunks", "inserted", "functions")

    def __init__(self, chunks: tuple[bytes | memoryview, ...], inserted: int,
                 functions: int) -> None:
        self.chunks = chunks
        self.inserted = inserted  #: sequences inserted
        self.functions = functions  #: bodies changed

    @property
    def payload(self) -> bytes:
        """The payload as one ``bytes`` (a copy)."""
        return b"".join(self.chunks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rewritten):
            return NotImplemented
        return (self.payload, self.inserted, self.functions) == (
            other.payload, other.inserted, other.functions)

    __hash__ = None  # type: ignore[assignment]


@lru_cache(maxsize=1)
def _kind_tables() -> bytes:
    return kind_tables()


def kind_tables() -> bytes:
    """The 5 x 512 kind bytes codescan.c reads: single-byte opcodes, then prefixes
    ``0xFB``..``0xFE``."""
    tables = bytearray(5 * TABLE)
    for code, (_name, kind) in SINGLE.items():
        tables[code] = KINDS[kind]
    for prefix, table in PREFIXES.items():
        tables[prefix] = K_PREFIX
        for sub, (_name, kind) in table.items():
            if sub < TABLE:
                tables[(prefix - 0xFA) * TABLE + sub] = KINDS[kind]
    return bytes(tables)


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _compiled_once() -> tuple[Any, Any] | None:
    """The engine and the compiled scanner, through the C API declared in
    :mod:`threadify.native.capi` (importing wasmtime-py's classes would cost ~20 ms of CPU
    before anything runs). The compiled code comes from threadify's module cache (mapped from
    its file, not compiled by Cranelift again: :mod:`threadify.native.cache`)."""
    try:
        from threadify.native import cache, capi

        engine = cache.make_engine()
        module = cache.compile_module(engine, WASM.read_bytes(), WASM.name)
        linker = capi.Handle(capi.wasmtime_linker_new(engine.ptr()))  # no imports
        pre = ctypes.c_void_p()
        capi.check(capi.wasmtime_linker_instantiate_pre(linker.ptr(), module.ptr(),
                                                        ctypes.byref(pre)))
        return engine, (module, linker, capi.Handle(pre.value))  # all live as long as this
    except Exception:  # noqa: BLE001 - no wasmtime, or no codescan.wasm: use Python
        return None


def _compiled() -> tuple[Any, Any] | None:
    with _lock:
        return _compiled_once()


class _Scanner:
    """One instance of the scanner in its own store, with the payload and the sequence in its
    memory. The store is freed with this object: views of its memory keep it alive."""

    def __init__(self, engine: Any, pre: Any, size: int) -> None:
        from threadify.native import capi

        self._capi = capi
        self.size = size
        self.store = capi.wasmtime_store_new(engine.ptr(), None, capi.NULL_FINALIZER)
        self.context = capi.wasmtime_store_context(self.store)
        instance = capi.wasmtime_instance_t()
        trap = ctypes.c_void_p()
        capi.check(capi.wasmtime_instance_pre_instantiate(pre.ptr(), self.context,
                                                          ctypes.byref(instance),
                                                          ctypes.byref(trap)))
        if trap.value:
            raise RuntimeError("the scanner trapped while starting")
        self._instance = instance
        self._exports: dict[str, Any] = {}
        self._values = (capi.wasmtime_val_raw_t * 5)()
        self._memory = self._export("memory", capi.EXTERN_MEMORY)

    def _export(self, name: str, kind: int) -> Any:
        capi = self._capi
        extern = capi.wasmtime_extern_t()
        raw = name.encode()
        if not capi.wasmtime_instance_export_get(self.context, ctypes.byref(self._instance),
                                                 raw, len(raw), ctypes.byref(extern)) \
                or int(extern.kind) != kind:
            raise RuntimeError(f"the scanner exports no {name}")
        return extern.of.memory if kind == capi.EXTERN_MEMORY else extern.of.func

    def call(self, name: str, *args: int) -> int:
        """Call an export taking and returning i32s (a trap raises)."""
        capi = self._capi
        func = self._exports.get(name)
        if func is None:
            func = self._exports[name] = self._export(name, capi.EXTERN_FUNC)
        values = self._values
        for i, arg in enumerate(args):
            values[i].i32 = arg
        trap = ctypes.c_void_p()
        capi.check(capi.wasmtime_func_call_unchecked(self.context, ctypes.byref(func), values,
                                                     len(values), ctypes.byref(trap)))
        if trap.value:
            raise RuntimeError(f"the scanner trapped in {name}")
        return int(values[0].i32)

    def address(self) -> int:
        return int(self._capi.wasmtime_memory_data(self.context, ctypes.byref(self._memory))
                   or 0)

    def view(self, offset: int, length: int) -> memoryview:
        """``length`` bytes of the scanner's memory from ``offset``, without a copy; the view
        keeps this scanner (and so its memory) alive."""
        array = (ctypes.c_uint8 * length).from_address(self.address() + offset)
        array._scanner = self  # type: ignore[attr-defined]
        return memoryview(array).cast("B")

    def huge_pages(self) -> None:
        """Ask Linux to back the scanner's memory with 2 MiB pages: the payload and the
        output are written into fresh memory, and faulting it in 4 KiB at a time cost more
        than the copies themselves (cc1: 14 -> 8 ms to copy its 21.7 MB of code in)."""
        if sys.platform != "linux":
            return
        try:
            madvise = _libc().madvise
            start = (self.address() + HUGE - 1) & ~(HUGE - 1)
            madvise(start, (4 << 30) - HUGE, MADV_HUGEPAGE)  # wasm32: at most 4 GiB
        except (OSError, AttributeError):
            pass  # only costs time

    def __del__(self) -> None:
        store, self.store = getattr(self, "store", None), None
        if store and not _exiting:  # at exit the process's end frees it, at no cost
            self._capi.wasmtime_store_delete(store)


HUGE = 2 << 20
MADV_HUGEPAGE = 14
_exiting = False


def _at_exit() -> None:
    global _exiting
    _exiting = True


atexit.register(_at_exit)


@lru_cache(maxsize=1)
def _libc() -> Any:
    libc = ctypes.CDLL(None)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise.restype = ctypes.c_int
    return libc


def _load(source: object, start: int, end: int, sequence: bytes,
          prefix: bytes = b"") -> _Scanner | None:
    """A scanner instance holding ``prefix``, ``source[start:end]`` and then ``sequence``,
    copied straight from ``source`` (``bytes`` or a mapped file: no copy of our own of 31 MB
    of code)."""
    compiled = _compiled()
    if compiled is None:
        return None
    engine, (_module, _linker, pre) = compiled
    scanner = _Scanner(engine, pre, len(prefix) + end - start)
    scanner.huge_pages()
    tables = scanner.call("kinds")
    base = scanner.call("reserve", scanner.size + len(sequence))
    if base == 0:
        return None
    address = scanner.address()
    ctypes.memmove(address + tables, _kind_tables(), 5 * TABLE)
    ctypes.memmove(address + base, prefix, len(prefix))
    with _Buffer(source) as first:
        ctypes.memmove(address + base + len(prefix), first + start, end - start)
    ctypes.memmove(address + base + scanner.size, sequence, len(sequence))
    return scanner


class _PyBuffer(ctypes.Structure):
    """CPython's ``Py_buffer``; only ``buf`` is read."""

    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p),
                ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p),
                ("strides", ctypes.c_void_p), ("suboffsets", ctypes.c_void_p),
                ("internal", ctypes.c_void_p)]


class _Buffer:
    """The address of a ``bytes`` object's or a read-only ``mmap``'s first byte, held for a
    ``with`` block (``ctypes.c_char.from_buffer`` refuses read-only buffers)."""

    def __init__(self, source: object) -> None:
        self.source = source
        self.view = _PyBuffer()

    def __enter__(self) -> int:
        get = ctypes.pythonapi.PyObject_GetBuffer
        get.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
        if get(self.source, ctypes.byref(self.view), 0) != 0 or not self.view.buf:
            raise BufferError("no buffer")
        return int(self.view.buf)

    def __exit__(self, *exc: object) -> None:
        release = ctypes.pythonapi.PyBuffer_Release
        release.argtypes = [ctypes.POINTER(_PyBuffer)]
        release(ctypes.byref(self.view))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: Payloads from this size on are scanned by two instances at once (one per half), when the
#: process may use three cores or more. A split costs CPU (a second instance, the search for
#: the middle: ~5 ms on cc1) and shortens the run only if both halves find a core beside the
#: main thread, which runs the other passes meanwhile; on two cores scanning whole was faster
#: in both CPU and wall time (cc1 123 against 135 ms of CPU, docs/performance.md).
SPLIT_FROM = 4 << 20 if _cores() >= 3 else 1 << 62


class Insertion:
    """Inserting a sequence after every ``global.set`` of one global, in two steps so that the
    slow one overlaps other work: the scan starts in background threads at once (loading
    wasmtime, copying the payload, finding every such instruction -- most of it without the
    GIL; a large payload is split in two halves scanned side by side); :meth:`finish` inserts
    the sequence, which need not be known before."""

    def __init__(self, source: object, start: int, end: int, global_index: int,
                 limit: int) -> None:
        self._count_bytes = b""
        parts = _halves(source, start, end) if end - start >= SPLIT_FROM else None
        if parts is None:
            self._jobs = [_Job(source, start, end, b"", global_index, limit)]
        else:
            count_bytes, count, middle, offset = parts
            self._count_bytes = count_bytes
            self._jobs = [
                _Job(source, start + len(count_bytes), offset, uleb(middle), global_index,
                     min(limit, middle)),
                _Job(source, offset, end, uleb(count - middle), global_index,
                     max(0, limit - middle)),
            ]

    def finish(self, sequence: bytes) -> Rewritten | None:
        """The new payload with ``sequence`` inserted; ``None`` if the scan was not done here
        (no wasmtime, or a body the scanner cannot decode)."""
        results = [job.finish(sequence) for job in self._jobs]
        done = [result for result in results if result is not None]
        if len(done) < len(results):
            return None
        if len(done) == 1:
            view, inserted, functions = done[0]
            return Rewritten((view,), inserted, functions)
        # the original count, then each half's entries without the count it was given: views
        # of the scanners' memories, never copied here
        chunks: list[bytes | memoryview] = [self._count_bytes]
        for job, (view, _i, _f) in zip(self._jobs, done, strict=True):
            chunks.append(view[len(job.prefix):])
        return Rewritten(tuple(chunks), sum(r[1] for r in done), sum(r[2] for r in done))


class _Job:
    """One scanner instance scanning (part of) a payload in its own thread."""

    def __init__(self, source: object, start: int, end: int, prefix: bytes, global_index: int,
                 limit: int) -> None:
        self.prefix = prefix
        self._args = (source, start, end, global_index, limit)
        self._scanner: _Scanner | None = None
        self._thread = threading.Thread(target=self._scan, name="threadify-codescan",
                                        daemon=True)
        self._thread.start()

    def _scan(self) -> None:
        source, start, end, global_index, limit = self._args
        try:
            scanner = _load(source, start, end, b"", self.prefix)
            if scanner is not None and scanner.call("scan", scanner.size, global_index,
                                                    limit) >= 0:
                self._scanner = scanner
        except Exception:  # noqa: BLE001 - any failure here: the caller decodes in Python
            self._scanner = None

    def finish(self, sequence: bytes) -> tuple[memoryview, int, int] | None:
        """``(the new payload, inserted, bodies changed)``; the payload is a view into the
        scanner's memory, which it keeps alive."""
        self._thread.join()
        scanner = self._scanner
        if scanner is None or len(sequence) > 256:
            return None
        try:
            ctypes.memmove(scanner.address() + scanner.call("sequence"), sequence,
                           len(sequence))
            length = scanner.call("emit", len(sequence))
            if length < 0:
                return None
            view = scanner.view(scanner.call("result"), length)
            return view, scanner.call("checks"), scanner.call("functions")
        except Exception:  # noqa: BLE001 - a trap: the caller decodes in Python
            return None


def _halves(source: Any, start: int, end: int) -> tuple[bytes, int, int, int] | None:
    """Where to split a code payload in two halves of about equal size: ``(the count's bytes,
    count, entries in the first half, offset of the second half's first entry)``; ``None`` for
    a payload that does not split cleanly (the caller then scans it whole)."""
    count, pos = uleb32_at(source, start, end)
    if count < 0:
        return None
    count_bytes = bytes(source[start:pos])
    half = start + (end - start) // 2
    for index in range(count):
        if pos >= half:
            return (count_bytes, count, index, pos) if 0 < index < count else None
        if pos + 1 < end:  # most body sizes take one or two bytes: no loop for them
            byte = source[pos]
            if byte < 0x80:
                pos += 1 + byte
                continue
            second = source[pos + 1]
            if second < 0x80:
                pos += 2 + ((byte & 0x7F) | second << 7)
                continue
        size, pos = uleb32_at(source, pos, end)
        if size < 0:
            return None
        pos += size
    return None


def insert_after_global_sets(source: object, start: int, end: int, global_index: int,
                             sequence: bytes, limit: int) -> Rewritten | None:
    """The code section's payload ``source[start:end]`` (from its count) with ``sequence``
    inserted after every ``global.set global_index`` in the first ``limit`` bodies; ``None``
    if not done here."""
    return Insertion(source, start, end, global_index, limit).finish(sequence)


class Counted:
    """What :func:`count_followed` found."""

    __slots__ = ("count", "unfollowed_at")

    def __init__(self, count: int, unfollowed_at: int | None) -> None:
        self.count = count  #: ``global.set`` instructions of the index, all followed by it
        self.unfollowed_at = unfollowed_at  #: offset of a body with one that is not, or None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Counted):
            return NotImplemented
        return (self.count, self.unfollowed_at) == (other.count, other.unfollowed_at)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Counted({self.count}, {self.unfollowed_at})"


def count_followed(source: object, start: int, end: int, global_index: int, sequence: bytes,
                   limit: int) -> Counted | None:
    """Count the ``global.set global_index`` of the first ``limit`` bodies of the payload
    ``source[start:end]`` and check each is followed by ``sequence``; ``None`` if not done
    here (the caller then decodes in Python)."""
    try:
        scanner = _load(source, start, end, sequence)
        if scanner is None:
            return None
        size = scanner.size
        found = scanner.call("count_followed", size, size, len(sequence), global_index, limit)
    except Exception:  # noqa: BLE001 - e.g. a malformed body read past memory: use Python
        return None
    if found == -2:
        return Counted(0, scanner.call("failed_at"))
    if found < 0:
        return None
    return Counted(found, None)
