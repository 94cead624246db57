"""Item codecs of the known (non-custom) sections.

Each vector section has a ``read_<item>(reader)`` and ``encode_<item>(item)`` pair, collected
in :data:`VECTOR_CODECS` by section id. The module layer (:mod:`threadify.wasm.module`) calls
them lazily and records each item's byte span, so that an item that was not changed is
re-emitted from its original bytes even when its section has to be rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from threadify.wasm.code import FunctionBody
from threadify.wasm.instructions import read_valtype, skip_const_expr
from threadify.wasm.reader import Reader
from threadify.wasm.types import (
    DataSegment,
    Export,
    ExternKind,
    FuncType,
    Global,
    GlobalType,
    Import,
    ImportDesc,
    MemoryType,
    RawType,
    TableType,
    encode_valtype,
)
from threadify.wasm.writer import name, uleb

# Section ids.
CUSTOM, TYPE, IMPORT, FUNCTION, TABLE, MEMORY, GLOBAL, EXPORT, START, ELEMENT, CODE, DATA, \
    DATACOUNT, TAG = range(14)

SECTION_NAMES = {
    CUSTOM: "custom", TYPE: "type", IMPORT: "import", FUNCTION: "function", TABLE: "table",
    MEMORY: "memory", GLOBAL: "global", EXPORT: "export", START: "start", ELEMENT: "element",
    CODE: "code", DATA: "data", DATACOUNT: "datacount", TAG: "tag",
}

#: Position of each known section in a module (the tag section sits between memory and global,
#: the data-count section before code).
CANONICAL_RANK = {
    TYPE: 1, IMPORT: 2, FUNCTION: 3, TABLE: 4, MEMORY: 5, TAG: 6, GLOBAL: 7, EXPORT: 8,
    START: 9, ELEMENT: 10, DATACOUNT: 11, CODE: 12, DATA: 13,
}


# --- types -------------------------------------------------------------------------------------


def _skip_valtypes(r: Reader) -> None:
    for _ in range(r.count("a value type count")):
        read_valtype(r)


def _skip_fieldtype(r: Reader) -> None:
    read_valtype(r)
    if r.u8("a field mutability") > 1:
        raise r.error("field mutability 0 or 1", r.pos - 1)


def _skip_comptype(r: Reader) -> None:
    start = r.pos
    form = r.u8("a composite type")
    if form == 0x65:  # shared
        start = r.pos
        form = r.u8("a composite type")
    if form == 0x60:
        _skip_valtypes(r)
        _skip_valtypes(r)
    elif form == 0x5F:
        for _ in range(r.count("a struct field count", 2)):
            _skip_fieldtype(r)
    elif form == 0x5E:
        _skip_fieldtype(r)
    elif form == 0x5D:
        r.sleb(33, "a continuation's type index")
    else:
        raise r.error("a type form (0x60 func, 0x5F struct, 0x5E array, 0x4E rec, 0x50 sub)",
                      start)


def _skip_subtype(r: Reader) -> None:
    b = r.peek("a type")
    if b in (0x50, 0x4F):
        r.pos += 1
        for _ in range(r.count("a supertype count")):
            r.u32("a supertype index")
    _skip_comptype(r)


def read_type(r: Reader) -> FuncType | RawType:
    start = r.pos
    b = r.peek("a type")
    if b == 0x60:
        r.pos += 1
        params = tuple([read_valtype(r) for _ in range(r.count("a parameter count"))])
        results = tuple([read_valtype(r) for _ in range(r.count("a result count"))])
        return FuncType(params, results)
    if b == 0x4E:
        r.pos += 1
        n = r.count("a rec group size")
        for _ in range(n):
            _skip_subtype(r)
    else:
        n = 1
        _skip_subtype(r)
    return RawType(bytes(r.data[start:r.pos]), n)


def encode_type(t: FuncType | RawType) -> bytes:
    if isinstance(t, RawType):
        return t.raw
    return b"".join([
        b"\x60", uleb(len(t.params)), *map(encode_valtype, t.params),
        uleb(len(t.results)), *map(encode_valtype, t.results),
    ])


# --- limits, tables, memories, globals ---------------------------------------------------------


def read_memory_type(r: Reader) -> MemoryType:
    start = r.pos
    flags = r.u8("memory limits flags")
    if flags & ~0x0F:
        raise r.error("memory limits flags 0..15", start)
    bits = 64 if flags & 4 else 32
    lo = r.uleb(bits, "a memory minimum")
    hi = r.uleb(bits, "a memory maximum") if flags & 1 else None
    psl = r.u32("a page size log2") if flags & 8 else None
    return MemoryType(lo, hi, bool(flags & 2), bool(flags & 4), psl)


def encode_memory_type(m: MemoryType) -> bytes:
    flags = ((m.max is not None) | (m.shared << 1) | (m.memory64 << 2)
             | ((m.page_size_log2 is not None) << 3))
    out = bytes((flags,)) + uleb(m.min)
    if m.max is not None:
        out += uleb(m.max)
    if m.page_size_log2 is not None:
        out += uleb(m.page_size_log2)
    return out


def read_table_type(r: Reader, init: bytes | None = None) -> TableType:
    elem = read_valtype(r)
    start = r.pos
    flags = r.u8("table limits flags")
    if flags & ~0x05:
        raise r.error("table limits flags 0, 1, 4 or 5", start)
    bits = 64 if flags & 4 else 32
    lo = r.uleb(bits, "a table minimum")
    hi = r.uleb(bits, "a table maximum") if flags & 1 else None
    return TableType(elem, lo, hi, bool(flags & 4), init)


def _encode_table_limits(t: TableType) -> bytes:
    flags = (t.max is not None) | (t.table64 << 2)
    out = encode_valtype(t.elem) + bytes((flags,)) + uleb(t.min)
    if t.max is not None:
        out += uleb(t.max)
    return out


def read_table(r: Reader) -> TableType:
    """A table-section entry (possibly the ``0x40 0x00 tabletype expr`` form)."""
    if r.peek("a table type") == 0x40:
        r.pos += 1
        if r.u8("a reserved zero byte") != 0:
            raise r.error("a reserved zero byte", r.pos - 1)
        limits_start = r.pos
        read_table_type(r)
        limits_end = r.pos
        init = skip_const_expr(r)
        r2 = Reader(r.data, limits_start, limits_end, r.base)
        return read_table_type(r2, init)
    return read_table_type(r)


def encode_table(t: TableType) -> bytes:
    if t.init is None:
        return _encode_table_limits(t)
    return b"\x40\x00" + _encode_table_limits(t) + t.init


def read_global_type(r: Reader) -> GlobalType:
    vt = read_valtype(r)
    mut = r.u8("a global mutability")
    if mut > 1:
        raise r.error("global mutability 0 or 1", r.pos - 1)
    return GlobalType(vt, bool(mut))


def encode_global_type(g: GlobalType) -> bytes:
    return encode_valtype(g.valtype) + (b"\x01" if g.mutable else b"\x00")


def read_global(r: Reader) -> Global:
    gt = read_global_type(r)
    return Global(gt, skip_const_expr(r))


def encode_global(g: Global) -> bytes:
    return encode_global_type(g.type) + bytes(g.init)


def read_tag_type(r: Reader) -> bytes:
    start = r.pos
    if r.u8("a tag attribute") != 0:
        raise r.error("tag attribute 0 (exception)", start)
    r.u32("a tag's type index")
    return bytes(r.data[start:r.pos])


# --- imports, exports ---------------------------------------------------------------------------


def read_import(r: Reader) -> Import | list[Import]:
    """One import-section entry. The compact encodings (one module name shared by several
    imports: ``"" 0x7F vec(name, type)``, or also one type: ``"" 0x7E type vec(name)``) yield
    a list of imports."""
    module = r.name("an import module name")
    field = r.name("an import name")
    if field == "" and r.peek("an import kind") in (0x7E, 0x7F):
        form = r.u8()
        out: list[Import] = []
        if form == 0x7F:
            for _ in range(r.count("a compact import count", 2)):
                n = r.name("an import name")
                kind, desc = _read_import_desc(r)
                out.append(Import(module, n, kind, desc))
        else:
            kind, desc = _read_import_desc(r)
            for _ in range(r.count("a compact import count", 1)):
                out.append(Import(module, r.name("an import name"), kind, desc))
        return out
    kind, desc = _read_import_desc(r)
    return Import(module, field, kind, desc)


def _read_import_desc(r: Reader) -> tuple[ExternKind, ImportDesc]:
    start = r.pos
    kind = r.u8("an import kind")
    desc: Any
    if kind == 0:
        desc = r.u32("a type index")
    elif kind == 1:
        desc = read_table_type(r)
    elif kind == 2:
        desc = read_memory_type(r)
    elif kind == 3:
        desc = read_global_type(r)
    elif kind == 4:
        desc = read_tag_type(r)
    else:
        raise r.error("an import kind 0..4", start)
    return _KINDS[kind], desc


def encode_import(i: Import) -> bytes:
    d = i.desc
    if i.kind == ExternKind.FUNC:
        assert isinstance(d, int)
        desc = uleb(d)
    elif isinstance(d, TableType):
        desc = _encode_table_limits(d)
    elif isinstance(d, MemoryType):
        desc = encode_memory_type(d)
    elif isinstance(d, GlobalType):
        desc = encode_global_type(d)
    else:
        desc = bytes(d)
    return name(i.module) + name(i.name) + bytes((int(i.kind),)) + desc


_KINDS = tuple(ExternKind)


def read_export(r: Reader) -> Export:
    n = r.name("an export name")
    start = r.pos
    kind = r.u8("an export kind")
    if kind > 4:
        raise r.error("an export kind 0..4", start)
    return Export(n, _KINDS[kind], r.u32("an export index"))


def encode_export(e: Export) -> bytes:
    return name(e.name) + bytes((int(e.kind),)) + uleb(e.index)


# --- functions, elements, code, data -----------------------------------------------------------


def read_u32_item(r: Reader) -> int:
    return r.u32("an index")


def encode_u32_item(i: int) -> bytes:
    return uleb(i)


def read_element(r: Reader) -> bytes:
    """An element segment, kept as its raw bytes (threadify never rewrites tables)."""
    start = r.pos
    flags = r.u32("element segment flags")
    if flags > 7:
        raise r.error("element segment flags 0..7", start)
    if not flags & 1:
        if flags & 2:
            r.u32("a table index")
        skip_const_expr(r)
    if flags & 4:
        if flags & 3:
            read_valtype(r)
        for _ in range(r.count("an element count")):
            skip_const_expr(r)
    else:
        if flags & 3:
            if r.u8("an element kind") != 0:
                raise r.error("element kind 0 (funcref)", r.pos - 1)
        for _ in range(r.count("an element count")):
            r.u32("a function index")
    return bytes(r.data[start:r.pos])


def encode_raw(b: bytes) -> bytes:
    return bytes(b)


def read_code(r: Reader) -> FunctionBody:
    size = r.u32("a function body size")
    base = r.base + r.pos
    return FunctionBody(r.take(size, "function body"), base)


def encode_code(f: FunctionBody) -> bytes:
    return uleb(len(f.raw)) + f.raw


def read_data(r: Reader) -> DataSegment:
    start = r.pos
    flags = r.u32("data segment flags")
    if flags == 1:
        n = r.count("a data segment length")
        return DataSegment(True, 0, None, r.view(n, "data"))
    if flags == 0:
        mem = 0
    elif flags == 2:
        mem = r.u32("a memory index")
    else:
        raise r.error("data segment flags 0, 1 or 2", start)
    offset = skip_const_expr(r)
    n = r.count("a data segment length")
    return DataSegment(False, mem, offset, r.view(n, "data"))


def encode_data(d: DataSegment) -> bytes:
    init = bytes(d.init)
    if d.passive:
        return b"\x01" + uleb(len(init)) + init
    if d.offset is None:
        raise ValueError("an active data segment needs an offset expression")
    head = b"\x00" if d.memory == 0 else b"\x02" + uleb(d.memory)
    return head + bytes(d.offset) + uleb(len(init)) + init


VECTOR_CODECS: dict[int, tuple[Callable[[Reader], Any], Callable[[Any], bytes], int]] = {
    # id: (reader, encoder, minimum encoded size of one item)
    TYPE: (read_type, encode_type, 1),
    IMPORT: (read_import, encode_import, 4),
    FUNCTION: (read_u32_item, encode_u32_item, 1),
    TABLE: (read_table, encode_table, 3),
    MEMORY: (read_memory_type, encode_memory_type, 2),
    TAG: (read_tag_type, encode_raw, 2),
    GLOBAL: (read_global, encode_global, 3),
    EXPORT: (read_export, encode_export, 3),
    ELEMENT: (read_element, encode_raw, 2),
    CODE: (read_code, encode_code, 1),
    DATA: (read_data, encode_data, 2),
}
SCALAR_SECTIONS = (START, DATACOUNT)
