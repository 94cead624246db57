"""Instructions: decode a function body's (or constant) expression into :class:`Instr` s and
encode them back.

Decoded instructions keep their original encoding in ``raw`` and the encoder emits ``raw``
verbatim when it is present, so decode -> encode is exact even for padded (non-minimal) LEBs
that compilers and linkers leave for relocation. Instructions built by passes have
``raw=None`` and get the minimal encoding. See :mod:`threadify.wasm.opcodes` for the immediate
layout of every instruction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from threadify.errors import WasmDecodeError
from threadify.wasm.opcodes import BY_NAME, NATURAL_ALIGN, PREFIXES, SINGLE
from threadify.wasm.reader import Reader
from threadify.wasm.types import REF, REF_NULL, SINGLE_BYTE_TYPES, ValType, _set, _Value
from threadify.wasm.writer import sleb, uleb


class TypeIndex(int):
    """A block type that is a type index (``(type N)``), as opposed to a single value type.

    Plain ``int`` block types in ``0x40..0x7F`` are read as value-type bytes (``I32`` is 0x7F);
    any other ``int`` is a type index. The decoder always produces ``TypeIndex`` for type-index
    block types so that indices 64..127 cannot be mistaken for value types when re-encoded.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"TypeIndex({int(self)})"


BlockType = None | ValType | TypeIndex


class Instr(_Value, shown=("op", "imm"), compared=("op", "imm")):
    """One instruction: text-format mnemonic, immediates (see :mod:`.opcodes`), original bytes.

    ``raw`` does not take part in comparisons: two instructions are equal when they mean the
    same thing, whatever their encoding. (Written out like the items of :mod:`.types`.)
    """

    __slots__ = ("op", "imm", "raw")
    _defaults = {"imm": (), "raw": None}
    op: str
    imm: tuple[Any, ...]
    raw: bytes | None

    def __init__(self, op: str, imm: tuple[Any, ...] = (), raw: bytes | None = None) -> None:
        _set(self, "op", op)
        _set(self, "imm", imm)
        _set(self, "raw", raw)

    def __str__(self) -> str:
        return " ".join([self.op, *(repr(i) for i in self.imm)])


# --- decoding ----------------------------------------------------------------------------------


def read_heaptype(r: Reader) -> int:
    """A heap type as its s33: negative = abstract heap type, non-negative = type index."""
    start = r.pos
    ht = r.sleb(33, "a heap type")
    if ht < 0 and (ht & 0x7F) not in SINGLE_BYTE_TYPES:
        raise r.error("a known abstract heap type", start)
    return ht


def read_valtype(r: Reader) -> ValType:
    """A value type (``int`` byte, or ``bytes`` for ``0x63``/``0x64`` reference types)."""
    start = r.pos
    b = r.u8("a value type")
    if b == REF or b == REF_NULL:
        read_heaptype(r)
        return bytes(r.data[start:r.pos])
    if b not in SINGLE_BYTE_TYPES:
        raise r.error("a value type", start)
    return b


def read_blocktype(r: Reader) -> BlockType:
    b = r.peek("a block type")
    if b == 0x40:
        r.pos += 1
        return None
    if b == REF or b == REF_NULL or b in SINGLE_BYTE_TYPES:
        return read_valtype(r)
    start = r.pos
    idx = r.sleb(33, "a block type")
    if idx < 0:
        raise r.error("a block type", start)
    return TypeIndex(idx)


def _read_memarg(r: Reader) -> tuple[int, int, int]:
    flags = r.uleb(32, "memory alignment flags")
    mem = 0
    if flags & 0x40:
        flags &= ~0x40
        mem = r.u32("a memory index")
    if flags >= 64:
        raise r.error("a memory alignment below 2**64")
    offset = r.uleb(64, "a memory offset")
    return (flags, offset, mem)


def read_instruction(r: Reader) -> Instr:
    """Decode one instruction at the reader's position."""
    data = r.data
    start = r.pos
    opcode = r.u8("an opcode")
    entry = SINGLE.get(opcode)
    if entry is None:
        table = PREFIXES.get(opcode)
        if table is None:
            raise r.error(f"a known opcode (got {opcode:#04x})", start)
        sub = r.u32("a sub-opcode")
        entry = table.get(sub)
        if entry is None:
            raise r.error(f"a known opcode (got {opcode:#04x} {sub})", start)
    op, kind = entry
    imm: tuple[Any, ...]
    if kind == "":
        imm = ()
    elif kind == "idx":
        imm = (r.u32("an index"),)
    elif kind == "mem":
        imm = _read_memarg(r)
    elif kind == "i32":
        imm = (r.sleb(32, "an i32 constant"),)
    elif kind == "bt":
        imm = (read_blocktype(r),)
    elif kind == "idx2":
        imm = (r.u32("an index"), r.u32("an index"))
    elif kind == "i64":
        imm = (r.sleb(64, "an i64 constant"),)
    elif kind == "brt":
        n = r.count("a br_table length")
        labels = tuple([r.u32("a label") for _ in range(n)])
        imm = (labels, r.u32("a label"))
    elif kind == "f32":
        imm = (r.take(4, "an f32 constant"),)
    elif kind == "f64":
        imm = (r.take(8, "an f64 constant"),)
    elif kind == "v128":
        imm = (r.take(16, "a v128 immediate"),)
    elif kind == "lane":
        imm = (r.u8("a lane index"),)
    elif kind == "meml":
        imm = (*_read_memarg(r), r.u8("a lane index"))
    elif kind == "ht":
        imm = (read_heaptype(r),)
    elif kind == "selt":
        n = r.count("a select type count")
        imm = (tuple([read_valtype(r) for _ in range(n)]),)
    elif kind == "zero":
        if r.u8("a zero byte") != 0:
            raise r.error("a zero byte", r.pos - 1)
        imm = ()
    elif kind == "tt":
        bt = read_blocktype(r)
        n = r.count("a catch clause count", 2)
        catches: list[tuple[int, ...]] = []
        for _ in range(n):
            ck = r.u8("a catch kind")
            if ck in (0, 1):
                catches.append((ck, r.u32("a tag index"), r.u32("a label")))
            elif ck in (2, 3):
                catches.append((ck, r.u32("a label")))
            else:
                raise r.error("a catch kind 0..3", r.pos - 1)
        imm = (bt, tuple(catches))
    elif kind == "brc":
        imm = (r.u8("cast flags"), r.u32("a label"), read_heaptype(r), read_heaptype(r))
    else:  # pragma: no cover - table/decoder mismatch
        raise AssertionError(kind)
    return Instr(op, imm, bytes(data[start:r.pos]))


def read_expression(r: Reader) -> list[Instr]:
    """Instructions up to and including the ``end`` that closes the expression."""
    out: list[Instr] = []
    depth = 0
    append = out.append
    while True:
        ins = read_instruction(r)
        append(ins)
        op = ins.op
        if op == "end" or op == "delegate":
            if depth == 0:
                if op == "delegate":
                    raise r.error("end of expression, not delegate", r.pos - len(ins.raw or b""))
                return out
            depth -= 1
        elif op in ("block", "loop", "if", "try", "try_table"):
            depth += 1


def decode_instructions(data: bytes | memoryview, offset: int = 0) -> list[Instr]:
    """Decode the expression starting at ``data[offset]`` through its final ``end``."""
    return read_expression(Reader(data, offset))


def skip_const_expr(r: Reader) -> bytes:
    """Read a constant expression and return its raw bytes (incl. the final ``0x0B``).

    The usual one-instruction expressions (``i32.const``/``i64.const``/``global.get``/
    ``ref.func`` with a LEB immediate, then ``end``) are recognised without decoding: modules
    have tens of thousands of globals and segments."""
    data = r.data
    start = pos = r.pos
    if pos < r.end and data[pos] in (0x41, 0x42, 0x23, 0xD2):
        # LEBs shorter than the maximum length cannot overflow; longer ones take the full path
        pos += 1
        limit = min(r.end, pos + (9 if data[start] == 0x42 else 4))
        while pos < limit and data[pos] & 0x80:
            pos += 1
        if pos < limit and pos + 1 < r.end and data[pos + 1] == 0x0B:
            r.pos = pos + 2
            return bytes(data[start:r.pos])
    read_expression(r)
    return bytes(data[start:r.pos])


# --- encoding ----------------------------------------------------------------------------------


def _blocktype(bt: object) -> bytes:
    if bt is None:
        return b"\x40"
    if isinstance(bt, TypeIndex):
        return sleb(int(bt))
    if isinstance(bt, (bytes, bytearray)):
        return bytes(bt)
    if isinstance(bt, int):
        if 0x40 <= bt <= 0x7F:
            return bytes((bt,))
        return sleb(bt)
    raise ValueError(f"bad block type {bt!r}")


def _valtype(t: object) -> bytes:
    if isinstance(t, int):
        return bytes((t,))
    if isinstance(t, (bytes, bytearray)):
        return bytes(t)
    raise ValueError(f"bad value type {t!r}")


def _memarg(op: str, imm: tuple[Any, ...]) -> bytes:
    if len(imm) == 0:  # convenience for hand-written code: natural alignment, offset 0
        imm = (NATURAL_ALIGN[op], 0, 0)
    elif len(imm) == 1:
        imm = (NATURAL_ALIGN[op], imm[0], 0)
    align, offset, mem = imm[0], imm[1], imm[2] if len(imm) > 2 else 0
    if mem:
        return uleb(align | 0x40) + uleb(mem) + uleb(offset)
    return uleb(align) + uleb(offset)


def encode_instruction(ins: Instr) -> bytes:
    """Encoding of one instruction (``raw`` when present)."""
    if ins.raw is not None:
        return ins.raw
    try:
        code, kind = BY_NAME[ins.op]
    except KeyError:
        raise ValueError(f"unknown instruction {ins.op!r}") from None
    imm = ins.imm
    try:
        if kind == "":
            return code
        if kind == "idx":
            return code + uleb(imm[0])
        if kind == "idx2":
            return code + uleb(imm[0]) + uleb(imm[1])
        if kind == "mem":
            return code + _memarg(ins.op, imm)
        if kind == "i32" or kind == "i64":
            return code + sleb(imm[0])
        if kind == "bt":
            return code + _blocktype(imm[0] if imm else None)
        if kind == "brt":
            return code + uleb(len(imm[0])) + b"".join(uleb(x) for x in imm[0]) + uleb(imm[1])
        if kind in ("f32", "f64", "v128"):
            size = {"f32": 4, "f64": 8, "v128": 16}[kind]
            raw = bytes(imm[0])
            if len(raw) != size:
                raise ValueError(f"{ins.op} needs {size} bytes")
            return code + raw
        if kind == "lane":
            return code + bytes((imm[0],))
        if kind == "meml":
            return code + _memarg(ins.op, imm[:3]) + bytes((imm[3],))
        if kind == "ht":
            return code + sleb(imm[0])
        if kind == "selt":
            return code + uleb(len(imm[0])) + b"".join(_valtype(t) for t in imm[0])
        if kind == "zero":
            return code + b"\x00"
        if kind == "tt":
            out = bytearray(code + _blocktype(imm[0]) + uleb(len(imm[1])))
            for c in imm[1]:
                out.append(c[0])
                for x in c[1:]:
                    out += uleb(x)
            return bytes(out)
        if kind == "brc":
            return code + bytes((imm[0],)) + uleb(imm[1]) + sleb(imm[2]) + sleb(imm[3])
    except (IndexError, TypeError) as exc:
        raise ValueError(f"bad immediates for {ins.op}: {imm!r}") from exc
    raise AssertionError(kind)  # pragma: no cover


def encode_instructions(instrs: Iterable[Instr]) -> bytes:
    """Concatenated encodings of ``instrs`` (nothing is added: include the final ``end``)."""
    return b"".join([encode_instruction(i) for i in instrs])


__all__ = [
    "BlockType", "Instr", "TypeIndex", "WasmDecodeError", "decode_instructions",
    "encode_instruction", "encode_instructions", "read_blocktype", "read_expression",
    "read_heaptype", "read_instruction", "read_valtype", "skip_const_expr",
]
