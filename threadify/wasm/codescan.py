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


def insert_after_global_sets(source: bytes, start: int, end: int, global_index: int,
                             sequence: bytes, limit: int) -> Rewritten | None:
    """The code section's payload ``source[start:end]`` (from its count) with ``sequence``
    inserted after every ``global.set global_index`` in the first ``limit`` bodies; ``None``
    if not done here. The payload is copied straight from ``source`` into the scanner's
    memory (no copy of our own of 31 MB of code)."""
    compiled = _compiled()
    if compiled is None:
        return None
    import wasmtime

    engine, module = compiled
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, module, [])
    exports: Any = instance.exports(store)
    memory: Any = exports["memory"]

    def call(name: str, *args: int) -> int:
        return int(exports[name](store, *args))

    tables = call("kinds")
    size = end - start
    base = call("reserve", size + len(sequence))
    if base == 0:
        return None
    data = memory.data_ptr(store)
    address = ctypes.addressof(data.contents)
    ctypes.memmove(address + tables, kind_tables(), 5 * TABLE)
    first = ctypes.cast(ctypes.c_char_p(source), ctypes.c_void_p).value
    if first is None:
        return None
    ctypes.memmove(address + base, first + start, size)
    ctypes.memmove(address + base + size, sequence, len(sequence))
    length = call("rewrite", size, size, len(sequence), global_index, limit)
    if length < 0:
        return None
    out = call("result")
    address = ctypes.addressof(memory.data_ptr(store).contents)  # memory may have grown
    return Rewritten(ctypes.string_at(address + out, length), call("checks"),
                     call("functions"))

