"""Loading a program: read, check, compile (once, cached), and describe what it needs.

Compiling with Cranelift costs far more than the rest of start-up, so compiled code is cached in
``~/.cache/threadify/modules`` (``$THREADIFY_CACHE_DIR`` or ``$XDG_CACHE_HOME`` override it),
keyed by a hash of the module bytes, the wasmtime shared library and the engine settings.
wasmtime also refuses serialized code from another version or configuration itself, in which case
we recompile. A cached module is mapped from its file (``wasmtime_module_deserialize_file``), not
read into Python.

Hashing is the one cost of a cached start that grows with the module (~35 ms for 24 MB), so the
cache also remembers, per file (device and inode), the size and the modification and change times
it had when it was hashed: when all of them are unchanged the key is reused and the module is not
even read. An entry is only written for a file whose times are older than :data:`SETTLED`
seconds: a file rewritten within one tick of the file system's clock can keep its times, and such
a file is simply hashed again (the "racily clean" rule of git's index).

Everything here runs on :mod:`threadify.host.capi`, not on wasmtime-py's classes, so that a run
does not pay for importing them (docs/performance.md, "The host"). Every way a module can be unfit
for this host is reported here, before any thread starts, as a
:class:`~threadify.errors.ThreadifyError` with a one-line message.
"""

from __future__ import annotations

import os
from ctypes import byref, c_uint8, c_void_p
from stat import S_ISREG
from typing import Any

from threadify.errors import ThreadifyError
from threadify.host import capi

WASM_MAGIC = b"\0asm"
CORE_VERSION = b"\x01\0\0\0"
WASI_MODULE = "wasi_snapshot_preview1"
ENGINE_SETTINGS = "threads+shared_memory-gc-function_references-exceptions/v2"
KEY_FORMAT = "v2"
#: Seconds after its last change from which a file's times identify its content.
SETTLED = 2.0
#: Modules up to this size are hashed with BLAKE2b (built in, imported in ~0.2 ms); larger ones
#: with OpenSSL's SHA-256, which is faster per byte on CPUs with SHA extensions.
SMALL_MODULE = 1 << 20


def cache_dir() -> str:
    override = os.environ.get("THREADIFY_CACHE_DIR")
    if override:
        return override
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "threadify")


def make_engine() -> capi.Handle:
    return capi.engine()


class Source:
    """A module to run: its display name (argv[0] for the guest), and its bytes on demand.

    A file is opened and its header checked at once (so every read error is reported before
    anything runs), but its body is read only if the compile cache needs it.
    """

    __slots__ = ("name", "path", "stat", "_data")

    def __init__(self, name: str, data: bytes | None = None, path: str | None = None,
                 stat: os.stat_result | None = None) -> None:
        self.name = name
        self.path = path
        self.stat = stat
        self._data = data

    @property
    def data(self) -> bytes:
        if self._data is None:
            assert self.path is not None
            try:
                with open(self.path, "rb") as handle:
                    self._data = handle.read()
            except OSError as exc:
                raise ThreadifyError(f"{self.path}: cannot read ({exc.strerror})") from None
        return self._data


def open_module(module: bytes | bytearray | str | os.PathLike[str]) -> Source:
    """Check that ``module`` (bytes or a path) is a core WebAssembly module; don't read it yet."""
    if isinstance(module, (bytes, bytearray)):
        _check_header(bytes(module[:8]), "main.wasm")
        return Source("main.wasm", data=bytes(module))
    path = os.fspath(module)
    name = os.path.basename(path)
    data: bytes | None = None
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            header = handle.read(8)
            if not S_ISREG(st.st_mode):  # a pipe (``<(...)``, /dev/stdin) can be read once only
                data = header + handle.read()
    except FileNotFoundError:
        raise ThreadifyError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ThreadifyError(f"{path}: is a directory, not a WebAssembly module") from None
    except OSError as exc:
        raise ThreadifyError(f"{path}: cannot read ({exc.strerror})") from None
    _check_header(header, name)
    if data is not None:
        return Source(name, data=data)
    return Source(name, path=path, stat=st)


def _check_header(header: bytes, name: str) -> None:
    if header[:4] != WASM_MAGIC:
        raise ThreadifyError(f"{name}: not a WebAssembly module (no \\0asm header)")
    if header[4:8] != CORE_VERSION:
        raise ThreadifyError(f"{name}: a WebAssembly component or unknown version, not a core "
                             "module", "threadify run executes WASI preview1 core modules")


def read_module(module: bytes | bytearray | str | os.PathLike[str]) -> tuple[bytes, str]:
    """The module's bytes and a display name (argv[0] for the guest)."""
    source = open_module(module)
    return source.data, source.name


def _digest(data: bytes) -> str:
    if len(data) <= SMALL_MODULE:
        try:
            from _blake2 import blake2b
        except ImportError:  # a Python built without it
            from hashlib import blake2b
        return f"b2-{blake2b(data, digest_size=32).hexdigest()}"
    from hashlib import sha256

    return f"s2-{sha256(data).hexdigest()}"


def _engine_id() -> str:
    """What besides the module decides the compiled code: the library build and the settings."""
    lib = capi.LIBRARY_PATH
    try:
        st = os.stat(lib)
        lib_id = f"{lib}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        lib_id = lib
    return f"{KEY_FORMAT}|{lib_id}|{ENGINE_SETTINGS}"


def _engine_digest() -> str:
    from _blake2 import blake2b

    return blake2b(_engine_id().encode(), digest_size=8).hexdigest()


def _cache_key(data: bytes) -> str:
    """The cache file's name for ``data``: its digest plus a digest of the engine's identity."""
    return f"{_digest(data)}-{_engine_digest()}"


def _stat_fields(st: os.stat_result) -> str:
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


def _stat_entry(modules: str, st: os.stat_result) -> str:
    return os.path.join(modules, "by-inode", f"{st.st_dev:x}-{st.st_ino:x}")


def _known_key(modules: str, source: Source) -> str | None:
    """The key recorded for this very file, if its size and times still match."""
    st = source.stat
    if st is None:
        return None
    try:
        with open(_stat_entry(modules, st), encoding="ascii") as handle:
            fields, _, key = handle.read().rpartition(" ")
    except (OSError, ValueError):
        return None
    if fields != _stat_fields(st) or key.rpartition("-")[2] != _engine_digest():
        return None
    return key


def _remember_key(modules: str, source: Source, key: str) -> None:
    """Record ``key`` for the file, unless the file changed too recently to be told apart."""
    import time

    st = source.stat
    if st is None or time.time() - max(st.st_mtime, st.st_ctime) < SETTLED:
        return
    _write_atomically(_stat_entry(modules, st), f"{_stat_fields(st)} {key}".encode())


def _write_atomically(path: str, data: Any) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs time


def compile_module(engine: Any, source: Source | bytes, name: str | None = None) -> capi.Handle:
    """The compiled module (a ``wasmtime_module_t``), from the cache when possible."""
    if not isinstance(source, Source):
        source = Source(name or "main.wasm", data=bytes(source))
    modules = os.path.join(cache_dir(), "modules")
    key = _known_key(modules, source)
    if key is None:
        key = _cache_key(source.data)
        _remember_key(modules, source, key)
    path = os.path.join(modules, key + ".cwasm")
    out = c_void_p()
    error = capi.wasmtime_module_deserialize_file(engine.ptr(), path.encode(), byref(out))
    if not error:
        return capi.Handle(out.value)
    capi.error_text(error)  # missing, or stale (another wasmtime build): compile and overwrite
    data = source.data
    error = capi.wasmtime_module_new(engine.ptr(), data, len(data), byref(out))
    if error:
        first = _first_line(capi.error_text(error))
        raise ThreadifyError(f"{source.name}: invalid WebAssembly module: {first}") from None
    module = capi.Handle(out.value)
    serialized = capi.wasm_byte_vec_t()
    error = capi.wasmtime_module_serialize(module.ptr(), byref(serialized))
    if error:
        capi.error_text(error)  # not cached: only costs time
        return module
    with memoryview((c_uint8 * serialized.size).from_address(
            capi.address(serialized.data))) as view:  # written without a copy
        _write_atomically(path, view)
    capi.wasm_byte_vec_delete(byref(serialized))
    return module


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # wasmtime puts the cause last ("Caused by: ..."); the first line is generic.
    for line in reversed(lines):
        if not line.startswith(("Caused by", "Stack backtrace")) and not line[:1].isdigit():
            return line
    return lines[0] if lines else text


class MemoryImport:
    """An imported memory: where it is imported from, and its type."""

    __slots__ = ("module", "name", "type")

    def __init__(self, module: str, name: str, type: MemoryType) -> None:
        self.module = module
        self.name = name
        self.type = type


class ProgramShape:
    """What the host must provide and may call: found by reading the module's types.

    ``threaded``: the module imports exactly one memory and it is shared, so every thread's
    instance can be linked to it (WASI-threads); otherwise the program is *plain* and runs
    single-threaded in one store, as the wasmtime CLI runs it, and spawning fails.
    ``wasi_memory``: WASI has a memory to use — the one shared memory of a threaded program, or
    else an export named ``memory`` or exactly one imported memory.
    Import lists hold each name once: a module may import the same function twice.
    """

    __slots__ = ("memories", "threaded", "wasi_imports", "wasix_imports", "imports_thread_spawn",
                 "thread_start_ok", "wasi_memory")

    def __init__(self, memories: list[MemoryImport], threaded: bool,
                 wasi_imports: list[tuple[str, str]], wasix_imports: list[str],
                 imports_thread_spawn: bool, thread_start_ok: bool, wasi_memory: bool) -> None:
        self.memories = memories
        self.threaded = threaded
        self.wasi_imports = wasi_imports  # (module, name) of each imported WASI function
        self.wasix_imports = wasix_imports
        self.imports_thread_spawn = imports_thread_spawn
        self.thread_start_ok = thread_start_ok
        self.wasi_memory = wasi_memory

    @property
    def shared_memory(self) -> MemoryImport:
        """The one shared memory of a threaded program."""
        assert self.threaded
        return self.memories[0]


class MemoryType(capi.Handle):
    """A ``wasm_memorytype_t`` (an owned copy), with what the checks need."""

    __slots__ = ()

    @property
    def is_shared(self) -> bool:
        return bool(capi.wasmtime_memorytype_isshared(self._ptr))

    @property
    def is_64(self) -> bool:
        return bool(capi.wasmtime_memorytype_is64(self._ptr))


_KINDS = {capi.VALKIND_I32: "i", capi.VALKIND_I64: "I"}


def _sig(functype: int) -> tuple[str, str]:
    """A function type as two strings of value kinds: ``("ii", "i")``; ``?`` for others."""
    def kinds(vec_ptr: Any) -> str:
        vec = vec_ptr.contents
        return "".join(_KINDS.get(capi.wasm_valtype_kind(vec.data[i]), "?")
                       for i in range(vec.size))

    return kinds(capi.wasm_functype_params(functype)), kinds(capi.wasm_functype_results(functype))


PROVIDED = ("the host provides wasi_snapshot_preview1, wasi_unstable, wasi.thread-spawn, the "
            "WASIX thread calls (wasix_32v1) and the module's imported memories")


def _imports(module: Any) -> list[tuple[str, str, int, Any]]:
    """``(module, name, kind, type)`` of each import; ``type`` is a function's signature or an
    owned :class:`MemoryType` (``None`` for other kinds)."""
    out: list[tuple[str, str, int, Any]] = []
    vec = capi.wasm_ptr_vec_t()
    capi.wasmtime_module_imports(module.ptr(), byref(vec))
    try:
        for i in range(vec.size):
            imp = vec.data[i]
            ty = capi.wasm_importtype_type(imp)
            kind = capi.wasm_externtype_kind(ty)
            detail: Any = None
            if kind == capi.WASM_EXTERN_FUNC:
                detail = _sig(capi.wasm_externtype_as_functype_const(ty))
            elif kind == capi.WASM_EXTERN_MEMORY:
                detail = MemoryType(capi.wasm_memorytype_copy(
                    capi.wasm_externtype_as_memorytype_const(ty)))
            out.append((capi.name_of(capi.wasm_importtype_module(imp)),
                        capi.name_of(capi.wasm_importtype_name(imp)), kind, detail))
    finally:
        capi.wasm_importtype_vec_delete(byref(vec))
    return out


def _exports(module: Any) -> dict[str, tuple[int, tuple[str, str] | None]]:
    """``name -> (kind, signature)`` of each export (signature for functions only)."""
    out: dict[str, tuple[int, tuple[str, str] | None]] = {}
    vec = capi.wasm_ptr_vec_t()
    capi.wasmtime_module_exports(module.ptr(), byref(vec))
    try:
        for i in range(vec.size):
            exp = vec.data[i]
            ty = capi.wasm_exporttype_type(exp)
            kind = capi.wasm_externtype_kind(ty)
            sig = (_sig(capi.wasm_externtype_as_functype_const(ty))
                   if kind == capi.WASM_EXTERN_FUNC else None)
            out[capi.name_of(capi.wasm_exporttype_name(exp))] = (kind, sig)
    finally:
        capi.wasm_exporttype_vec_delete(byref(vec))
    return out


def describe(module: Any, name: str) -> ProgramShape:
    from threadify.host.wasi_snapshots import NO_RESULT, WASI_MODULES
    from threadify.host.wasix import WASIX_MODULE, wasix_signature

    memories: dict[tuple[str, str], MemoryImport] = {}
    wasi_imports: dict[tuple[str, str], None] = {}  # ordered sets
    wasix_imports: dict[str, None] = {}
    spawn = False
    for imp_module, field, kind, ty in _imports(module):
        where = f"{imp_module}.{field}"
        if kind == capi.WASM_EXTERN_MEMORY:
            memories.setdefault((imp_module, field), MemoryImport(imp_module, field, ty))
        elif kind == capi.WASM_EXTERN_FUNC and imp_module in WASI_MODULES:
            want = WASI_MODULES[imp_module].get(field)
            if want is None:
                raise ThreadifyError(f"{name}: imports unknown WASI function {where}",
                                     "this host implements wasi_snapshot_preview1 and "
                                     "wasi_unstable")
            if ty != (want, "" if field in NO_RESULT else "i"):
                raise ThreadifyError(f"{name}: import {where} has the wrong type")
            wasi_imports[(imp_module, field)] = None
        elif kind == capi.WASM_EXTERN_FUNC and imp_module == WASIX_MODULE:
            signature = wasix_signature(field)
            if signature is None:
                raise ThreadifyError(f"{name}: unknown import {where}",
                                     "of WASIX, this host provides the thread calls and the "
                                     "preview1 functions")
            if ty != signature:
                raise ThreadifyError(f"{name}: import {where} has the wrong type")
            wasix_imports[field] = None
        elif kind == capi.WASM_EXTERN_FUNC and (imp_module, field) == ("wasi", "thread-spawn"):
            if ty != ("i", "i"):
                raise ThreadifyError(f"{name}: import wasi.thread-spawn has the wrong type",
                                     "expected (param i32) (result i32)")
            spawn = True
        else:
            raise ThreadifyError(f"{name}: unknown import {where}", PROVIDED)
    for mem in memories.values():
        if mem.type.is_64:
            raise ThreadifyError(f"{name}: memory {mem.module}.{mem.name} is 64-bit; "
                                 "WASI preview1 needs a 32-bit memory")
    exports = _exports(module)
    if exports.get("_start", (None, None))[1] != ("", ""):
        raise ThreadifyError(f"{name}: no `_start` function export; not a WASI command module")
    thread_start_ok = exports.get("wasi_thread_start", (None, None))[1] == ("ii", "")
    imported = list(memories.values())
    threaded = len(imported) == 1 and imported[0].type.is_shared
    wasi_memory = (exports.get("memory", (None, None))[0] == capi.WASM_EXTERN_MEMORY
                   or len(imported) == 1)
    return ProgramShape(imported, threaded, list(wasi_imports), list(wasix_imports), spawn,
                        thread_start_ok, wasi_memory)
