"""The compiled-module cache: Cranelift's work done once per module, engine and library build.

Compiling costs far more than everything else a run or a scan does at start-up, so compiled code
is cached in ``~/.cache/threadify/modules`` (``$THREADIFY_CACHE_DIR`` or ``$XDG_CACHE_HOME``
override it), keyed by a hash of the module bytes, the wasmtime shared library and the engine
settings. wasmtime also refuses serialized code from another version or configuration itself,
in which case we recompile. A cached module is mapped from its file
(``wasmtime_module_deserialize_file``), not read into Python.

Hashing is the one cost of a cached start that grows with the module (~35 ms for 24 MB), so the
cache also remembers, per file (device and inode), the size and the modification and change times
it had when it was hashed: when all of them are unchanged the key is reused and the module is not
even read. An entry is only written for a file whose times are older than :data:`SETTLED`
seconds: a file rewritten within one tick of the file system's clock can keep its times, and such
a file is simply hashed again (the "racily clean" rule of git's index).

The cache is bounded (:data:`DEFAULT_LIMIT`, ``$THREADIFY_CACHE_SIZE`` overrides it): every use
of an entry sets its modification time, and whenever a new entry is written the least recently
used ones are removed until the cache fits again (:func:`trim`). Several processes may share the
cache: entries appear by atomic rename only, a reader maps its file (which an unlink by another
process does not take away), and a file that vanishes while it is being looked at is simply
skipped or compiled again.

Used by the bundled host (:mod:`threadify.host.loading`) for the programs it runs and by the
binary layer's native code scanner (:mod:`threadify.wasm.codescan`) for itself.
"""

from __future__ import annotations

import os
import re
from ctypes import byref, c_uint8, c_void_p
from typing import Any

from threadify.errors import ThreadifyError
from threadify.native import capi

ENGINE_SETTINGS = "threads+shared_memory-gc-function_references-exceptions-wide_arithmetic/v3"
KEY_FORMAT = "v2"
#: Seconds after its last change from which a file's times identify its content.
SETTLED = 2.0
#: Modules up to this size are hashed with BLAKE2b (built in, imported in ~0.2 ms); larger ones
#: with OpenSSL's SHA-256, which is faster per byte on CPUs with SHA extensions.
SMALL_MODULE = 1 << 20

#: The cache's default bound in bytes, wasmtime's own cache's default soft limit (compiled code
#: is a few times the module's size).
DEFAULT_LIMIT = 1 << 30
#: A temporary file this old (seconds) belongs to a writer that died: removed by :func:`trim`.
STALE_TEMP = 3600.0


def cache_dir() -> str:
    override = os.environ.get("THREADIFY_CACHE_DIR")
    if override:
        return override
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "threadify")


def cache_limit() -> int:
    """The bound from ``$THREADIFY_CACHE_SIZE`` (bytes, or with a ``KiB``/``MiB``/``GiB``
    suffix; 0 keeps nothing), else :data:`DEFAULT_LIMIT`. A setting that cannot be read is
    ignored: a cache problem must never stop a run."""
    text = os.environ.get("THREADIFY_CACHE_SIZE", "").strip()
    for suffix, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("", 1)):
        if text.endswith(suffix):
            number = text[:len(text) - len(suffix)].strip()
            if number.isdigit():
                return int(number) * scale
            break
    return DEFAULT_LIMIT


def _touch(path: str) -> None:
    """Mark ``path`` as just used (its modification time is the cache's recency)."""
    try:
        os.utime(path)
    except OSError:  # gone (trimmed by another process) or a read-only cache: harmless
        pass


def _remove(path: str) -> int:
    """Unlink ``path``; the bytes freed (0 when another process removed it first)."""
    try:
        size = os.stat(path).st_size
        os.unlink(path)
    except OSError:
        return 0
    return size


def trim(modules: str, limit: int) -> None:
    """Remove the least recently used files of the cache folder ``modules`` (compiled modules
    and recorded keys) until at most ``limit`` bytes remain, not counting the temporary files
    of writers at work; remove those left by a writer that died. Safe against other processes
    doing the same at the same time."""
    import time

    now = time.time()
    entries: list[tuple[int, int, str]] = []  # (last use in ns, size, path)
    total = 0
    for folder in (modules, os.path.join(modules, "by-inode")):
        try:
            listing = os.scandir(folder)
        except OSError:
            continue
        with listing:
            for entry in listing:
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:  # vanished between listing and looking
                    continue
                if entry.name.endswith(".tmp"):
                    # a writer's file: counted once in place, when the writer trims; one left
                    # by a writer that died goes
                    if now - st.st_mtime > STALE_TEMP:
                        _remove(entry.path)
                    continue
                entries.append((st.st_mtime_ns, st.st_size, entry.path))
                total += st.st_size
    if total <= limit:
        return
    entries.sort()
    for _used, size, path in entries:
        if total <= limit:
            break
        _remove(path)
        total -= size


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

    def stream(self) -> Any:
        """A binary file object over the module: its bytes when they were read already, else
        the file (for reading a part of it only)."""
        if self._data is not None or self.path is None:
            import io

            return io.BytesIO(self.data)
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise ThreadifyError(f"{self.path}: cannot read ({exc.strerror})") from None

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
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OSError:  # an unwritable or full cache only costs time
        try:
            os.unlink(tmp)
        except OSError:
            pass


def compile_module(engine: Any, source: Source | bytes, name: str | None = None) -> capi.Handle:
    """The compiled module (a ``wasmtime_module_t``), from the cache when possible."""
    if not isinstance(source, Source):
        source = Source(name or "main.wasm", data=bytes(source))
    modules = os.path.join(cache_dir(), "modules")
    key = _known_key(modules, source)
    if key is None:
        key = _cache_key(source.data)
        _remember_key(modules, source, key)
    elif source.stat is not None:
        _touch(_stat_entry(modules, source.stat))
    path = os.path.join(modules, key + ".cwasm")
    out = c_void_p()
    error = capi.wasmtime_module_deserialize_file(engine.ptr(), path.encode(), byref(out))
    if not error:
        _touch(path)
        return capi.Handle(out.value)
    capi.error_text(error)  # missing, or stale (another wasmtime build): compile and overwrite
    data = source.data
    error = capi.wasmtime_module_new(engine.ptr(), data, len(data), byref(out))
    if error:
        first = first_line(capi.error_text(error))
        raise ThreadifyError(f"{source.name}: invalid WebAssembly module: {first}",
                             proposal_hint(first)) from None
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
    trim(modules, cache_limit())
    return module


#: The proposals the host leaves off, each as wasmtime's messages name it (e.g. "exceptions
#: proposal not enabled", "exception refs not supported without the exception handling
#: feature", "function references required for index reference types", "struct indexed types
#: not supported without the gc feature"), with the wasmtime CLI's switch for it.
_PROPOSALS_OFF = (
    (re.compile(r"exception"), "exceptions"),
    (re.compile(r"function references"), "function-references"),
    (re.compile(r"\bgc\b"), "gc"),
    (re.compile(r"wide arithmetic"), "wide-arithmetic"),
)
_OFF = re.compile(r"not enabled|not supported without|required for")


def proposal_hint(message: str) -> str | None:
    """The way out when a module was refused for a proposal the engine leaves off.

    The host's engine has the proposals the wasmtime CLI has on by default, no more (see
    :func:`threadify.native.capi.engine` for why), so such a module is valid WebAssembly that
    this host cannot run; the user needs to know it is not broken and where it does run.
    """
    if _OFF.search(message):
        for words, switch in _PROPOSALS_OFF:
            if words.search(message):
                return (f"the module uses the {switch} proposal, which this host leaves off as "
                        f"the wasmtime CLI does by default; run it with "
                        f"`wasmtime run -W {switch}=y`")
    return None


def first_line(text: str) -> str:
    """The line of a wasmtime error that names the cause.

    wasmtime puts the cause last, its chain numbered (``Caused by:`` / ``0: ...`` /
    ``1: ...``); the first line is generic ("failed to compile: wasm[0]::function[1]").
    """
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Stack backtrace"):
            break
        number, sep, rest = line.partition(": ")
        if sep and number.isdigit():
            line = rest.strip()
        if line and not line.startswith("Caused by"):
            lines.append(line)
    return lines[-1] if lines else text.strip()
