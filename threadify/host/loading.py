"""Loading a program: read, check, compile (once, cached: :mod:`threadify.native.cache`), and
describe what it needs.

Everything here runs on :mod:`threadify.native.capi`, not on wasmtime-py's classes, so that a run
does not pay for importing them (docs/performance.md, "The host"). Every way a module can be unfit
for this host is reported here, before any thread starts, as a
:class:`~threadify.errors.ThreadifyError` with a one-line message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from ctypes import byref
from stat import S_ISREG
from typing import Any, TypeVar

from threadify.errors import ThreadifyError
from threadify.host.entry import INITIALIZE, MAIN_NAMES, EntryPoints
from threadify.native import capi
from threadify.native.cache import Source as Source  # the host's loading API
from threadify.native.cache import compile_module as compile_module
from threadify.native.cache import make_engine as make_engine

_T = TypeVar("_T")

WASM_MAGIC = b"\0asm"
CORE_VERSION = b"\x01\0\0\0"
WASI_MODULE = "wasi_snapshot_preview1"


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
                 "thread_start_ok", "wasi_memory", "entry")

    def __init__(self, memories: list[MemoryImport], threaded: bool,
                 wasi_imports: list[tuple[str, str]], wasix_imports: list[str],
                 imports_thread_spawn: bool, thread_start_ok: bool, wasi_memory: bool,
                 entry: EntryPoints) -> None:
        self.memories = memories
        self.threaded = threaded
        self.wasi_imports = wasi_imports  # (module, name) of each imported WASI function
        self.wasix_imports = wasix_imports
        self.imports_thread_spawn = imports_thread_spawn
        self.thread_start_ok = thread_start_ok
        self.wasi_memory = wasi_memory
        self.entry = entry

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


_KINDS = {capi.VALKIND_I32: "i", capi.VALKIND_I64: "I", capi.VALKIND_F32: "f",
          capi.VALKIND_F64: "F", capi.VALKIND_FUNCREF: "r", capi.VALKIND_EXTERNREF: "e"}


def _sig(functype: int) -> tuple[str, str]:
    """A function type as two strings of value kinds: ``("ii", "i")`` (``i``/``I``: i32/i64,
    ``f``/``F``: f32/f64, ``r``/``e``: funcref/externref, ``V``: v128 (from
    :class:`BinarySignatures` only), ``?`` for others).

    Only for the functions the host links or calls, and never for a module whose types mention
    ``v128``: wasmtime's C API aborts the process when asked to describe such a type."""
    def kinds(vec_ptr: Any) -> str:
        vec = vec_ptr.contents
        return "".join(_KINDS.get(capi.wasm_valtype_kind(vec.data[i]), "?")
                       for i in range(vec.size))

    return kinds(capi.wasm_functype_params(functype)), kinds(capi.wasm_functype_results(functype))


PROVIDED = ("the host provides wasi_snapshot_preview1, wasi_unstable, wasi.thread-spawn, the "
            "WASIX thread calls (wasix_32v1) and the module's imported memories")


def _leb(stream: Any) -> int:
    """An unsigned LEB128 number read from ``stream`` (-1 at the end of the file)."""
    value = shift = 0
    while True:
        byte: bytes = stream.read(1)
        if not byte:
            return -1
        value |= (byte[0] & 0x7F) << shift
        shift += 7
        if byte[0] < 0x80 or shift > 35:
            return value


def types_mention_v128(source: Source) -> bool:
    """Whether any function type of the module mentions ``v128``: then wasmtime's C API must
    not be asked to describe function types (it aborts the process), and
    :class:`BinarySignatures` reads them from the module instead.

    Reads only the type section (the first section after any custom ones): a few bytes of a
    compiled-cache start. The module compiled, so its types are valid function types; anything
    unexpected answers yes (the careful way).
    """
    with source.stream() as stream:
        stream.seek(8)
        while True:
            head = stream.read(1)
            size = _leb(stream)
            if not head or size < 0:
                return False
            if head[0] == 1:
                break
            if head[0] != 0:
                return False  # no type section
            stream.seek(size, 1)
        payload = stream.read(size)
    return _mentions_v128(payload)


def _mentions_v128(payload: bytes) -> bool:
    if b"\x7b" not in payload:  # v128's type byte: without it (most modules), nothing to read
        return False
    import io

    stream = io.BytesIO(payload)
    for _ in range(max(0, _leb(stream))):
        if stream.read(1) != b"\x60":
            return True
        for _vec in range(2):
            for _ in range(max(0, _leb(stream))):
                kind = stream.read(1)
                if not kind or kind[0] == 0x7B:
                    return True
                if kind[0] in (0x63, 0x64):  # (ref null? heap type): a signed LEB follows
                    while (stream.read(1) or b"\0")[0] & 0x80:
                        pass
    return False


class BinarySignatures:
    """Function signatures read from the module's own bytes (for a module whose types mention
    ``v128``, :func:`types_mention_v128`): per import in order, and per exported name."""

    _KINDS = {0x7F: "i", 0x7E: "I", 0x7D: "f", 0x7C: "F", 0x7B: "V", 0x70: "r", 0x6F: "e"}

    def __init__(self, data: bytes) -> None:
        from threadify.wasm.module import Module
        from threadify.wasm.types import ExternKind, FuncType

        module = Module.decode(data)
        types = module.types

        def sig(index: int) -> tuple[str, str]:
            ty = types[index]
            if not isinstance(ty, FuncType):
                return ("?", "?")
            return ("".join(self._KINDS.get(t, "?") if isinstance(t, int) else "?"
                            for t in ty.params),
                    "".join(self._KINDS.get(t, "?") if isinstance(t, int) else "?"
                            for t in ty.results))

        self.imports: list[tuple[str, str] | None] = []
        func_types: list[int] = []
        for imp in module.imports:
            if imp.kind == ExternKind.FUNC:
                assert isinstance(imp.desc, int)
                func_types.append(imp.desc)
                self.imports.append(sig(imp.desc))
            else:
                self.imports.append(None)
        func_types.extend(module.functions)
        self.exports = {e.name: sig(func_types[e.index]) for e in module.exports
                        if e.kind == ExternKind.FUNC}


def _each(module: Any, list_them: Callable[[Any, Any], None], type_of: Callable[[Any], Any],
          delete: Callable[[Any], None], read: Callable[[int, Any, Any, int], _T]) -> list[_T]:
    """``read(index, item, externtype, kind)`` for each import or export of ``module``, in order.

    ``list_them`` fills a C vector the host owns and ``delete`` frees it; ``read`` runs while
    the vector is alive, so it must copy whatever it keeps (names, memory types).
    """
    vec = capi.wasm_ptr_vec_t()
    list_them(module.ptr(), byref(vec))
    try:
        out = []
        for i in range(vec.size):
            item = vec.data[i]
            ty = type_of(item)
            out.append(read(i, item, ty, capi.wasm_externtype_kind(ty)))
        return out
    finally:
        delete(byref(vec))


def _imports(module: Any, typed: Any, binary: BinarySignatures | None = None
             ) -> list[tuple[str, str, int, Any]]:
    """``(module, name, kind, type)`` of each import; ``type`` is an owned :class:`MemoryType`
    for a memory, the signature of a function imported from a module in ``typed`` (from
    ``binary`` when given), else ``None``."""
    def read(i: int, imp: Any, ty: Any, kind: int) -> tuple[str, str, int, Any]:
        detail: Any = None
        module_name = capi.name_of(capi.wasm_importtype_module(imp))
        if kind == capi.WASM_EXTERN_FUNC and module_name in typed:
            detail = (binary.imports[i] if binary is not None
                      else _sig(capi.wasm_externtype_as_functype_const(ty)))
        elif kind == capi.WASM_EXTERN_MEMORY:
            detail = MemoryType(capi.wasm_memorytype_copy(
                capi.wasm_externtype_as_memorytype_const(ty)))
        return module_name, capi.name_of(capi.wasm_importtype_name(imp)), kind, detail

    return _each(module, capi.wasmtime_module_imports, capi.wasm_importtype_type,
                 capi.wasm_importtype_vec_delete, read)


#: The exports whose function types the host needs (the only ones it asks wasmtime about).
TYPED_EXPORTS = frozenset({"_start", "", "_initialize", "wasi_thread_start"})


def _exports(module: Any, binary: BinarySignatures | None = None
             ) -> dict[str, tuple[int, tuple[str, str] | None]]:
    """``name -> (kind, signature)`` of each export (signature for the functions named in
    :data:`TYPED_EXPORTS` only)."""
    def read(_i: int, exp: Any, ty: Any, kind: int
             ) -> tuple[str, tuple[int, tuple[str, str] | None]]:
        name = capi.name_of(capi.wasm_exporttype_name(exp))
        sig = None
        if kind == capi.WASM_EXTERN_FUNC and name in TYPED_EXPORTS:
            sig = (binary.exports.get(name) if binary is not None
                   else _sig(capi.wasm_externtype_as_functype_const(ty)))
        return name, (kind, sig)

    return dict(_each(module, capi.wasmtime_module_exports, capi.wasm_exporttype_type,
                      capi.wasm_exporttype_vec_delete, read))


def describe(module: Any, name: str, source: Source | None = None) -> ProgramShape:
    """What ``module`` (compiled from ``source``) imports and exports, checked."""
    from threadify.host.wasi_snapshots import WASI_MODULES
    from threadify.host.wasi_snapshots import signature as wasi_signature
    from threadify.host.wasix import WASIX_MODULE, wasix_signature

    memories: dict[tuple[str, str], MemoryImport] = {}
    wasi_imports: dict[tuple[str, str], None] = {}  # ordered sets
    wasix_imports: dict[str, None] = {}
    spawn = False
    binary = (BinarySignatures(source.data)
              if source is not None and types_mention_v128(source) else None)
    for imp_module, field, kind, ty in _imports(module, {*WASI_MODULES, WASIX_MODULE, "wasi"},
                                                binary):
        where = f"{imp_module}.{field}"
        if kind == capi.WASM_EXTERN_MEMORY:
            memories.setdefault((imp_module, field), MemoryImport(imp_module, field, ty))
        elif kind == capi.WASM_EXTERN_FUNC and imp_module in WASI_MODULES:
            want = wasi_signature(imp_module, field)
            if want is None:
                raise ThreadifyError(f"{name}: imports unknown WASI function {where}",
                                     "this host implements wasi_snapshot_preview1 and "
                                     "wasi_unstable")
            if ty != want:
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
    exports = _exports(module, binary)
    thread_start_ok = exports.get("wasi_thread_start", (None, None))[1] == ("ii", "")
    imported = list(memories.values())
    threaded = len(imported) == 1 and imported[0].type.is_shared
    wasi_memory = (exports.get("memory", (None, None))[0] == capi.WASM_EXTERN_MEMORY
                   or len(imported) == 1)
    return ProgramShape(imported, threaded, list(wasi_imports), list(wasix_imports), spawn,
                        thread_start_ok, wasi_memory, _entry_points(exports))


def _entry_points(exports: dict[str, tuple[int, tuple[str, str] | None]]) -> EntryPoints:
    """What :mod:`threadify.host.entry` calls: functions only, as wasmtime looks them up."""
    def function(name: str) -> tuple[str, str] | None:
        kind, sig = exports.get(name, (None, None))
        return sig if kind == capi.WASM_EXTERN_FUNC else None

    for main in MAIN_NAMES:  # the first that is a function; its signature
        main_type = function(main)
        if main_type is not None:
            return EntryPoints(function(INITIALIZE), main, main_type)
    return EntryPoints(function(INITIALIZE), None)  # (main_type: no parameters, no results)
