"""Value types and the plain-data descriptions of module items.

Every item is a frozen dataclass so that passes can compare items by value, put them in sets,
and detect "did anything change?" by comparing a section's list with the snapshot taken when it
was decoded (see :mod:`threadify.wasm.module`).

Value types are deliberately not wrapped in a class: single-byte types are plain ``int`` s (the
byte of their encoding, e.g. :data:`I32` ``== 0x7F``) and the multi-byte reference types
(``0x63``/``0x64`` followed by a heap type) are the raw ``bytes`` of their encoding. That keeps
the common case cheap and makes any type the binary can hold representable, including ones this
layer has no name for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

ValType = int | bytes
"""A value type: the encoding byte as ``int``, or the full encoding of a ``(ref ...)`` type."""

I32 = 0x7F
I64 = 0x7E
F32 = 0x7D
F64 = 0x7C
V128 = 0x7B
I8 = 0x78  # packed storage type (GC structs/arrays only)
I16 = 0x77
FUNCREF = 0x70
EXTERNREF = 0x6F
ANYREF = 0x6E
EQREF = 0x6D
I31REF = 0x6C
STRUCTREF = 0x6B
ARRAYREF = 0x6A
EXNREF = 0x69
NULLREF = 0x71
NULLEXTERNREF = 0x72
NULLFUNCREF = 0x73
NULLEXNREF = 0x74

REF = 0x64  # (ref ht)       -- followed by a heap type
REF_NULL = 0x63  # (ref null ht)  -- followed by a heap type

#: Single-byte value types (and packed storage types) this layer accepts.
SINGLE_BYTE_TYPES = frozenset(
    [I32, I64, F32, F64, V128, I8, I16, *range(0x68, 0x76)]
)

_TYPE_NAMES = {
    I32: "i32", I64: "i64", F32: "f32", F64: "f64", V128: "v128", I8: "i8", I16: "i16",
    FUNCREF: "funcref", EXTERNREF: "externref", ANYREF: "anyref", EQREF: "eqref",
    I31REF: "i31ref", STRUCTREF: "structref", ARRAYREF: "arrayref", EXNREF: "exnref",
    NULLREF: "nullref", NULLEXTERNREF: "nullexternref", NULLFUNCREF: "nullfuncref",
    NULLEXNREF: "nullexnref",
}


def valtype_name(t: ValType) -> str:
    """Human-readable name for messages (``i32``, ``funcref``, ``ref<63 70>``)."""
    if isinstance(t, int):
        return _TYPE_NAMES.get(t, f"type<{t:#04x}>")
    return "ref<" + t.hex(" ") + ">"


def encode_valtype(t: ValType) -> bytes:
    """Binary encoding of a value type."""
    if isinstance(t, int):
        return bytes((t,))
    return bytes(t)


class ExternKind(IntEnum):
    """Kind byte of imports and exports."""

    FUNC = 0
    TABLE = 1
    MEMORY = 2
    GLOBAL = 3
    TAG = 4


@dataclass(frozen=True, slots=True)
class FuncType:
    """A plain function type (``0x60``) that stands alone in the type section."""

    params: tuple[ValType, ...]
    results: tuple[ValType, ...] = ()


@dataclass(frozen=True, slots=True)
class RawType:
    """A type-section entry that is not a plain function type, kept as its exact bytes.

    Rec groups, ``sub``/``sub final`` declarations, structs and arrays are passed through
    untouched: threadify never needs to look inside them, only to count the type indices they
    define (``count``) so that the indices of later types are right.
    """

    raw: bytes
    count: int


@dataclass(frozen=True, slots=True)
class MemoryType:
    """Limits and flags of a memory (``min``/``max`` in pages of ``2**page_size_log2`` bytes)."""

    min: int
    max: int | None
    shared: bool = False
    memory64: bool = False
    page_size_log2: int | None = None


@dataclass(frozen=True, slots=True)
class TableType:
    """A table: element reference type and limits.

    ``init`` is the raw constant expression (incl. final ``0x0B``) of the function-references
    form ``0x40 0x00 tabletype expr`` of the table section; ``None`` for the ordinary form (and
    always ``None`` for imported tables).
    """

    elem: ValType
    min: int
    max: int | None
    table64: bool = False
    init: bytes | None = None


@dataclass(frozen=True, slots=True)
class GlobalType:
    valtype: ValType
    mutable: bool


ImportDesc = int | TableType | MemoryType | GlobalType | bytes


@dataclass(frozen=True, slots=True)
class Import:
    """An import. ``desc`` is a type index for FUNC, the raw tag type (attribute byte and type
    index) for TAG, else the table/memory/global type."""

    module: str
    name: str
    kind: ExternKind
    desc: ImportDesc


@dataclass(frozen=True, slots=True)
class Export:
    name: str
    kind: ExternKind
    index: int


@dataclass(frozen=True, slots=True)
class Global:
    """A defined global; ``init`` is the constant expression's bytes including the final
    ``0x0B`` (decode it with :func:`threadify.wasm.decode_instructions` when needed)."""

    type: GlobalType
    init: bytes


@dataclass(frozen=True, slots=True)
class DataSegment:
    """A data segment.

    ``offset`` is the raw constant expression (incl. ``0x0B``) of an active segment, ``None``
    for a passive one. ``init`` may be a read-only ``memoryview`` into the input module (data
    sections are large, copying them only to re-emit them would double the memory); it compares
    and hashes by value like ``bytes``.
    """

    passive: bool
    memory: int
    offset: bytes | None
    init: bytes | memoryview = field(repr=False)
