"""Loading a program: read, check, compile (once, cached), and describe what it needs.

Compiling with Cranelift costs far more than the rest of start-up, so compiled code is cached in
``~/.cache/threadify/modules`` (``$THREADIFY_CACHE_DIR`` or ``$XDG_CACHE_HOME`` override it),
keyed by a hash of the module bytes, the wasmtime shared library and the engine settings.
wasmtime also refuses serialized code from another version or configuration itself, in which case
we recompile.

Every way a module can be unfit for this host is reported here, before any thread starts, as a
:class:`~threadify.errors.ThreadifyError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threadify.errors import ThreadifyError

WASM_MAGIC = b"\0asm"
CORE_VERSION = b"\x01\0\0\0"
WASI_MODULE = "wasi_snapshot_preview1"
ENGINE_SETTINGS = "threads+shared_memory/v1"


def cache_dir() -> Path:
    override = os.environ.get("THREADIFY_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "threadify"


def make_engine() -> Any:
    from wasmtime import Config, Engine

    config = Config()
    config.wasm_threads = True
    config.shared_memory = True
    return Engine(config)


def read_module(module: bytes | bytearray | str | os.PathLike[str]) -> tuple[bytes, str]:
    """The module's bytes and a display name (argv[0] for the guest)."""
    if isinstance(module, (bytes, bytearray)):
        data, name = bytes(module), "main.wasm"
    else:
        path = Path(module)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ThreadifyError(f"{path}: file not found") from None
        except IsADirectoryError:
            raise ThreadifyError(f"{path}: is a directory, not a WebAssembly module") from None
        except OSError as exc:
            raise ThreadifyError(f"{path}: cannot read ({exc.strerror})") from None
        name = path.name
    if data[:4] != WASM_MAGIC:
        raise ThreadifyError(f"{name}: not a WebAssembly module (no \\0asm header)")
    if data[4:8] != CORE_VERSION:
        raise ThreadifyError(f"{name}: a WebAssembly component or unknown version, not a core "
                             "module", "threadify run executes WASI preview1 core modules")
    return data, name


def _cache_key(data: bytes) -> str:
    from wasmtime import _ffi

    digest = hashlib.sha256(data)
    lib = str(getattr(_ffi, "filename", "") or "")
    try:
        st = os.stat(lib)
        digest.update(f"{lib}:{st.st_size}:{st.st_mtime_ns}".encode())
    except OSError:
        digest.update(str(lib).encode())
    digest.update(ENGINE_SETTINGS.encode())
    return digest.hexdigest()


def compile_module(engine: Any, data: bytes, name: str) -> Any:
    """The compiled ``wasmtime.Module``, from the cache when possible."""
    from wasmtime import Module, WasmtimeError

    path = cache_dir() / "modules" / (_cache_key(data) + ".cwasm")
    if path.exists():
        try:
            return Module.deserialize_file(engine, str(path))
        except WasmtimeError:
            pass  # stale (other wasmtime build): recompile and overwrite
    try:
        module = Module(engine, data)
    except WasmtimeError as exc:
        first = _first_line(str(exc))
        raise ThreadifyError(f"{name}: invalid WebAssembly module: {first}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(module.serialize())
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs time
    return module


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # wasmtime puts the cause last ("Caused by: ..."); the first line is generic.
    for line in reversed(lines):
        if not line.startswith(("Caused by", "Stack backtrace")) and not line[:1].isdigit():
            return line
    return lines[0] if lines else text


@dataclass
class MemoryImport:
    module: str
    name: str
    type: Any


@dataclass
class ProgramShape:
    """What the host must provide and may call: found by reading the module's types.

    ``threaded``: the module imports exactly one memory and it is shared, so every thread's
    instance can be linked to it (WASI-threads); otherwise the program is *plain* and runs
    single-threaded in one store, as the wasmtime CLI runs it, and spawning fails.
    ``wasi_memory``: WASI has a memory to use — the one shared memory of a threaded program, or
    else an export named ``memory`` or exactly one imported memory.
    Import lists hold each name once: a module may import the same function twice.
    """

    memories: list[MemoryImport]
    threaded: bool
    wasi_imports: list[tuple[str, str]]  # (module, name) of each imported WASI function
    wasix_imports: list[str]
    imports_thread_spawn: bool
    thread_start_ok: bool
    wasi_memory: bool

    @property
    def shared_memory(self) -> MemoryImport:
        """The one shared memory of a threaded program."""
        assert self.threaded
        return self.memories[0]


def _sig(ty: Any) -> tuple[str, str]:
    def kinds(vals: Any) -> str:
        return "".join({"i32": "i", "i64": "I"}.get(str(v), "?") for v in vals)

    return kinds(ty.params), kinds(ty.results)


PROVIDED = ("the host provides wasi_snapshot_preview1, wasi_unstable, wasi.thread-spawn, the "
            "WASIX thread calls (wasix_32v1) and the module's imported memories")


def describe(module: Any, name: str) -> ProgramShape:
    from wasmtime import FuncType, MemoryType

    from threadify.host.wasi_snapshots import NO_RESULT, WASI_MODULES
    from threadify.host.wasix import WASIX_MODULE, wasix_signature

    memories: dict[tuple[str, str], MemoryImport] = {}
    wasi_imports: dict[tuple[str, str], None] = {}  # ordered sets
    wasix_imports: dict[str, None] = {}
    spawn = False
    for imp in module.imports:
        field = imp.name or ""
        where = f"{imp.module}.{field}"
        ty = imp.type
        if isinstance(ty, MemoryType):
            memories.setdefault((imp.module, field), MemoryImport(imp.module, field, ty))
        elif isinstance(ty, FuncType) and imp.module in WASI_MODULES:
            want = WASI_MODULES[imp.module].get(field)
            if want is None:
                raise ThreadifyError(f"{name}: imports unknown WASI function {where}",
                                     "this host implements wasi_snapshot_preview1 and "
                                     "wasi_unstable")
            if _sig(ty) != (want, "" if field in NO_RESULT else "i"):
                raise ThreadifyError(f"{name}: import {where} has the wrong type")
            wasi_imports[(imp.module, field)] = None
        elif isinstance(ty, FuncType) and imp.module == WASIX_MODULE:
            signature = wasix_signature(field)
            if signature is None:
                raise ThreadifyError(f"{name}: unknown import {where}",
                                     "of WASIX, this host provides the thread calls and the "
                                     "preview1 functions")
            if _sig(ty) != signature:
                raise ThreadifyError(f"{name}: import {where} has the wrong type")
            wasix_imports[field] = None
        elif isinstance(ty, FuncType) and (imp.module, field) == ("wasi", "thread-spawn"):
            if _sig(ty) != ("i", "i"):
                raise ThreadifyError(f"{name}: import wasi.thread-spawn has the wrong type",
                                     "expected (param i32) (result i32)")
            spawn = True
        else:
            raise ThreadifyError(f"{name}: unknown import {where}", PROVIDED)
    for mem in memories.values():
        if mem.type.is_64:
            raise ThreadifyError(f"{name}: memory {mem.module}.{mem.name} is 64-bit; "
                                 "WASI preview1 needs a 32-bit memory")
    exports = {exp.name: exp.type for exp in module.exports}
    start = exports.get("_start")
    if not isinstance(start, FuncType) or _sig(start) != ("", ""):
        raise ThreadifyError(f"{name}: no `_start` function export; not a WASI command module")
    tstart = exports.get("wasi_thread_start")
    thread_start_ok = isinstance(tstart, FuncType) and _sig(tstart) == ("ii", "")
    imported = list(memories.values())
    threaded = len(imported) == 1 and bool(imported[0].type.is_shared)
    wasi_memory = isinstance(exports.get("memory"), MemoryType) or len(imported) == 1
    return ProgramShape(imported, threaded, list(wasi_imports), list(wasix_imports), spawn,
                        thread_start_ok, wasi_memory)
