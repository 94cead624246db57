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
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from threadify.wasm.opcodes import PREFIXES, SINGLE

WASM = Path(__file__).with_name("codescan.wasm")

#: Immediate kinds, numbered as ``enum kind`` in codescan.c.
KINDS = {"": 1, "bt": 2, "idx": 3, "idx2": 4, "brt": 5, "mem": 6, "meml": 7, "lane": 8,
         "i32": 9, "i64": 10, "f32": 11, "f64": 12, "v128": 13, "selt": 14, "ht": 15,
         "zero": 16, "tt": 17, "brc": 18}
K_PREFIX = 19
TABLE = 512


@dataclass(frozen=True)
class Rewritten:
    """The new code-section payload and what changed."""

    payload: bytes
    inserted: int  #: sequences inserted
    functions: int  #: bodies changed


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
    try:
        import wasmtime

        engine = wasmtime.Engine()
        return engine, wasmtime.Module(engine, WASM.read_bytes())
    except Exception:  # noqa: BLE001 - no wasmtime, or no codescan.wasm: use Python
        return None


def _compiled() -> tuple[Any, Any] | None:
    with _lock:
        compiled = _compiled_once()
        if compiled is not None and not _release_registered:
            _register_release()
        return compiled


_release_registered = False


def _register_release() -> None:
    """Free the engine and module at exit while wasmtime's library is still loaded (freed
    later, during interpreter teardown, wasmtime-py prints ignored exceptions)."""
    global _release_registered
    _release_registered = True
    atexit.register(_compiled_once.cache_clear)


def warm_up() -> threading.Thread:
    """Load wasmtime and compile the scanner in a background thread (most of it runs without
    the GIL), so that a caller can overlap it with other work; returns the thread."""
    thread = threading.Thread(target=_compiled, name="threadify-codescan", daemon=True)
    thread.start()
    return thread


class _Scanner:
    """One instance of the scanner with the payload and the sequence in its memory."""

    def __init__(self, store: Any, exports: Any, size: int) -> None:
        self.store, self.exports, self.size = store, exports, size

    def call(self, name: str, *args: int) -> int:
        return int(self.exports[name](self.store, *args))

    def address(self) -> int:
        return ctypes.addressof(self.exports["memory"].data_ptr(self.store).contents)


def _load(source: bytes, start: int, end: int, sequence: bytes) -> _Scanner | None:
    """A scanner instance holding ``source[start:end]`` and then ``sequence``, copied straight
    from ``source`` (no copy of our own of 31 MB of code)."""
    compiled = _compiled()
    if compiled is None:
        return None
    import wasmtime

    engine, module = compiled
    store = wasmtime.Store(engine)
    scanner = _Scanner(store, wasmtime.Instance(store, module, []).exports(store), end - start)
    tables = scanner.call("kinds")
    base = scanner.call("reserve", scanner.size + len(sequence))
    first = ctypes.cast(ctypes.c_char_p(source), ctypes.c_void_p).value
    if base == 0 or first is None:
        return None
    address = scanner.address()
    ctypes.memmove(address + tables, kind_tables(), 5 * TABLE)
    ctypes.memmove(address + base, first + start, scanner.size)
    ctypes.memmove(address + base + scanner.size, sequence, len(sequence))
    return scanner


def insert_after_global_sets(source: bytes, start: int, end: int, global_index: int,
                             sequence: bytes, limit: int) -> Rewritten | None:
    """The code section's payload ``source[start:end]`` (from its count) with ``sequence``
    inserted after every ``global.set global_index`` in the first ``limit`` bodies; ``None``
    if not done here."""
    scanner = _load(source, start, end, sequence)
    if scanner is None:
        return None
    size = scanner.size
    length = scanner.call("rewrite", size, size, len(sequence), global_index, limit)
    if length < 0:
        return None
    out = scanner.call("result")
    return Rewritten(ctypes.string_at(scanner.address() + out, length), scanner.call("checks"),
                     scanner.call("functions"))


@dataclass(frozen=True)
class Counted:
    """What :func:`count_followed` found."""

    count: int  #: ``global.set`` instructions of the index, all followed by the sequence
    unfollowed_at: int | None  #: payload offset of a body with one that is not, else None


def count_followed(source: bytes, start: int, end: int, global_index: int, sequence: bytes,
                   limit: int) -> Counted | None:
    """Count the ``global.set global_index`` of the first ``limit`` bodies of the payload
    ``source[start:end]`` and check each is followed by ``sequence``; ``None`` if not done
    here (the caller then decodes in Python)."""
    scanner = _load(source, start, end, sequence)
    if scanner is None:
        return None
    size = scanner.size
    found = scanner.call("count_followed", size, size, len(sequence), global_index, limit)
    if found == -2:
        return Counted(0, scanner.call("failed_at"))
    if found < 0:
        return None
    return Counted(found, None)
