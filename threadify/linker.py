"""wasm-ld's conventions: finding the linker symbols a thread-ready module depends on.

lld never marks its synthetic symbols in the binary format itself; they are ordinary globals,
functions and data segments. This module finds them, in order of trust:

1. by **name** in the ``name`` section (global, function and data-segment names);
2. by **export** (``--export=__tls_size`` and friends);
3. by lld's **shape**, for release builds that carry no name section: the stack pointer is the
   first defined global, a mutable ``i32`` with a non-zero constant initialiser; ``__tls_base``
   follows it (mutable with init 0 for ``--shared-memory``, immutable and equal to the ``.tdata``
   address without); the start function ``__wasm_init_memory`` is recognised by its flag
   ``cmpxchg`` and ``memory.init``s, and it tells which segment is ``.tdata`` (the one written at
   the address it stores in ``__tls_base``).

Every symbol records *how* it was found so that ``threadify inspect`` can explain its verdict.
Symbols that lld emits only when exported or referenced (``__tls_size``, ``__tls_align``,
``__wasm_init_tls``, ``__heap_base``, ``__data_end``) may be absent; callers derive what they need
from the ``.tdata`` segment instead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from threadify.wasm import I32, ExternKind, Instr, Module
from threadify.wasm.reader import sleb32_at
from threadify.wasm.writer import sleb


@dataclass(frozen=True)
class Found:
    """An item of the module (global, function or data index) and how it was recognised."""

    index: int
    how: str


@dataclass
class LinkerSymbols:
    """The lld symbols threadify uses, each ``None`` when the module does not have it."""

    stack_pointer: Found | None = None
    tls_base: Found | None = None
    tls_size: Found | None = None
    tls_align: Found | None = None
    init_tls: Found | None = None
    init_memory: Found | None = None
    heap_base: Found | None = None
    data_end: Found | None = None
    tdata: Found | None = None
    #: ``init_memory`` has lld's ``--shared-memory`` shape: a once-flag of its own (``cmpxchg``).
    init_memory_has_flag: bool = False
    #: Values read from constant initialisers (``None`` when unknown).
    stack_pointer_init: int | None = None
    tls_base_init: int | None = None
    tls_size_value: int | None = None
    tls_align_value: int | None = None
    heap_base_value: int | None = None
    data_end_value: int | None = None
    #: ``(start, end)`` of the memory ``init_memory`` writes at constant addresses (its
    #: ``memory.init`` / ``memory.fill`` and its flag word): read here, where its code is
    #: decoded anyway, as its instructions are as many as the module's data segments.
    init_memory_writes: list[tuple[int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly view (for ``inspect --json``)."""
        out: dict[str, object] = {}
        for key in ("stack_pointer", "tls_base", "tls_size", "tls_align", "init_tls",
                    "init_memory", "heap_base", "data_end", "tdata"):
            found: Found | None = getattr(self, key)
            out[key] = None if found is None else {"index": found.index, "how": found.how}
        out["values"] = {
            "stack_pointer_init": self.stack_pointer_init,
            "tls_base_init": self.tls_base_init,
            "tls_size": self.tls_size_value,
            "tls_align": self.tls_align_value,
            "heap_base": self.heap_base_value,
            "data_end": self.data_end_value,
        }
        return out


def const_i32(expr: bytes) -> int | None:
    """The value of a constant expression that is exactly ``i32.const N; end``, else ``None``.

    lld's segment offsets and global initialisers are read here by the thousand (one per data
    segment), so the expression is matched by its bytes — ``0x41``, a signed LEB of at most 5
    bytes, ``0x0B`` — rather than decoded into instructions.
    """
    size = len(expr)
    if 3 <= size <= 7 and expr[0] == 0x41 and expr[-1] == 0x0B:
        read = sleb32_at(expr, 1, size - 1)
        if read is not None and read[1] == size - 1:
            return read[0]
    return None


def i32_const_expr(value: int) -> bytes:
    """``i32.const value; end``: the constant expression :func:`const_i32` reads, for an
    address (``value`` from 0 to 2**32 - 1, written as the signed LEB wasm wants)."""
    return b"\x41" + sleb(value - (1 << 32) if value >= 1 << 31 else value) + b"\x0b"


#: Bytes per lane in :func:`const_i32_all`: an LEB of up to 4 bytes fits in one.
_LANE = 4
#: Per LEB length: how its bytes, laid side by side in a lane, are folded into the value.
_FOLD = ((0, 0x7F), (1, 0x3F80), (2, 0x1F_C000), (3, 0xFE0_0000))
#: ``bytes.translate`` tables: an LEB byte's 7 bits of value; its continuation bit; that and,
#: in its last byte, the sign bit (``b & 0x7F``, ``b & 0x80``, ``b & 0xC0`` for every byte).
_LOW7 = bytes(range(128)) * 2
_MORE = bytes(128) + b"\x80" * 128
_MORE_OR_SIGN = bytes(64) + b"\x40" * 64 + b"\x80" * 64 + b"\xc0" * 64


def const_i32_all(exprs: list[bytes]) -> list[int] | None:
    """:func:`const_i32` of every expression in ``exprs`` when they all have lld's usual shape
    — ``i32.const``, a non-negative value in an LEB of one length of at most 4 bytes,
    ``end`` — else ``None`` (read them one by one then).

    For data-segment offsets: CRuby's module has 10 000, and a :func:`const_i32` call each
    cost ~6 ms on every transform. lld writes them all alike, so they are read together: the
    bytes of each column are checked and masked with ``bytes`` operations, laid into 4-byte
    lanes of one integer, and folded into values by shifts and masks over the whole integer
    (~0.6 ms for the 10 000).
    """
    count = len(exprs)
    size = len(exprs[0]) if count else 0
    leb = size - 2
    if (not 1 <= leb <= _LANE or list(map(len, exprs)).count(size) != count
            or sys.byteorder != "little"):  # lanes are read as the machine's own integers
        return None
    joined = b"".join(exprs)
    columns = [joined[i::size] for i in range(size)]  # the first bytes, the second bytes ...
    if (columns[0] != b"\x41" * count or columns[-1] != b"\x0b" * count
            or any(c.translate(_MORE) != b"\x80" * count for c in columns[1:leb])
            or columns[leb].translate(_MORE_OR_SIGN) != bytes(count)):
        return None
    lanes = bytearray(_LANE * count)
    for i in range(leb):
        lanes[i::_LANE] = columns[1 + i].translate(_LOW7)
    packed = int.from_bytes(lanes, "little")
    value = 0
    for shift, mask in _FOLD[:leb]:
        value |= packed >> shift & int.from_bytes(mask.to_bytes(_LANE, "little") * count,
                                                  "little")
    lanes_out = memoryview(value.to_bytes(_LANE * count, "little")).cast("I")
    if lanes_out.itemsize != _LANE:
        return None
    values: list[int] = lanes_out.tolist()
    return values


def _export(module: Module, kind: ExternKind, wanted: str) -> int | None:
    for export in module.exports:
        if export.kind == kind and export.name == wanted:
            return export.index
    return None


class _Finder:
    """Looks symbols up by name, then export; shape heuristics live in :func:`find_symbols`.

    Name maps can hold ~100k entries; lookups read them only as far as the match.
    """

    GLOBALS, FUNCTIONS, DATA = 7, 1, 9  # name subsection ids

    def __init__(self, module: Module) -> None:
        self.module = module
        self.names = module.names()

    def _named(self, sid: int, name: str) -> int | None:
        return None if self.names is None else self.names.find(sid, name)

    def _count(self, sid: int) -> int:
        """Size of the index space that name subsection ``sid`` names into."""
        module = self.module
        if sid == self.GLOBALS:
            return module.num_imported(ExternKind.GLOBAL) + len(module.globals)
        if sid == self.FUNCTIONS:  # counted from the code section: nothing decoded
            return module.num_imported(ExternKind.FUNC) + module.function_count()
        return module.data_segment_count()

    def _find(self, sid: int, kind: ExternKind | None, name: str) -> Found | None:
        """By name, then by export. An entry naming an item the module does not have (a name
        section another tool left behind after removing items, or a damaged one) says nothing
        about where the symbol is: the shape heuristics decide then, as for a stripped module.
        """
        index = self._named(sid, name)
        if index is not None and index < self._count(sid):
            return Found(index, "name section")
        index = None if kind is None else _export(self.module, kind, name)
        if index is not None and index < self._count(sid):
            return Found(index, "export")
        return None

    def global_(self, name: str) -> Found | None:
        return self._find(self.GLOBALS, ExternKind.GLOBAL, name)

    def func(self, name: str) -> Found | None:
        return self._find(self.FUNCTIONS, ExternKind.FUNC, name)

    def data(self, name: str) -> Found | None:
        return self._find(self.DATA, None, name)


def find_global(module: Module, name: str) -> Found | None:
    """A global by lld symbol name: from the ``name`` section, else from the exports."""
    return _Finder(module).global_(name)


def defined_global_init(module: Module, index: int) -> int | None:
    """The ``i32.const`` initial value of global ``index`` when the module defines it (an
    imported global has none), else ``None``."""
    first = module.num_imported(ExternKind.GLOBAL)
    if index < first or index - first >= len(module.globals):
        return None
    return const_i32(module.globals[index - first].init)


def _function_instructions(module: Module, funcidx: int) -> list[Instr] | None:
    first = module.num_imported(ExternKind.FUNC)
    if funcidx < first or funcidx - first >= len(module.code):
        return None
    try:
        return module.code[funcidx - first].instructions()
    except Exception:  # malformed body: no shape to recognise
        return None


def looks_like_init_memory(instrs: list[Instr]) -> bool:
    """lld's ``__wasm_init_memory``: a flag ``cmpxchg`` and at least one ``memory.init``/fill."""
    ops = {i.op for i in instrs}
    return "i32.atomic.rmw.cmpxchg" in ops and bool(ops & {"memory.init", "memory.fill"})


def _tls_from_init_memory(instrs: list[Instr]) -> tuple[int | None, int | None, int | None]:
    """In ``__wasm_init_memory``: (global set to the TLS address, that address, .tdata index).

    lld emits ``i32.const ADDR; global.set $__tls_base`` right before ``memory.init $.tdata``.
    """
    for pos, ins in enumerate(instrs):
        if ins.op == "global.set" and pos > 0 and instrs[pos - 1].op == "i32.const":
            address = instrs[pos - 1].imm[0]
            segment = None
            for later in instrs[pos + 1:]:
                if later.op == "memory.init":
                    segment = later.imm[0]
                    break
            glob = ins.imm[0]
            assert isinstance(glob, int) and isinstance(address, int)
            return glob, address, segment if isinstance(segment, int) else None
    return None, None, None


def _init_memory_writes(instrs: list[Instr]) -> list[tuple[int, int]]:
    """Constant-address ``memory.init``/``memory.fill`` and atomic flag accesses."""
    out = []
    for pos, ins in enumerate(instrs):
        if ins.op in ("memory.init", "memory.fill") and pos >= 3:
            dest, _src, length = instrs[pos - 3:pos]
            if dest.op == length.op == "i32.const":
                start = int(dest.imm[0]) & 0xFFFF_FFFF
                out.append((start, start + (int(length.imm[0]) & 0xFFFF_FFFF)))
        elif ins.op.startswith("i32.atomic.") and pos >= 3:
            for back in instrs[max(0, pos - 3):pos]:
                if back.op == "i32.const" and int(back.imm[0]) > 0:
                    start = int(back.imm[0]) & 0xFFFF_FFFF
                    out.append((start, start + 4))
                    break
    return out


def _if_mutable_i32(module: Module, found: Found | None) -> Found | None:
    """``found`` when it is a mutable i32 global, as lld's stack pointer always is.

    A name or export that puts ``__stack_pointer`` on a global of another type (a damaged or
    forged name section) says nothing about where the stack pointer is: the shape heuristics
    decide then, as for a stripped module. Trusting it would make the output write an
    immutable global.
    """
    if found is None:
        return None
    gtype = module.global_type(found.index)
    return found if gtype.valtype == I32 and gtype.mutable else None


def find_symbols(module: Module) -> LinkerSymbols:
    """Find lld's symbols in ``module`` (see the module docstring for the order of trust)."""
    finder = _Finder(module)
    syms = LinkerSymbols()
    first_global = module.num_imported(ExternKind.GLOBAL)

    syms.stack_pointer = _if_mutable_i32(module, finder.global_("__stack_pointer"))
    syms.tls_base = finder.global_("__tls_base")
    syms.tls_size = finder.global_("__tls_size")
    syms.tls_align = finder.global_("__tls_align")
    syms.heap_base = finder.global_("__heap_base")
    syms.data_end = finder.global_("__data_end")
    syms.init_tls = finder.func("__wasm_init_tls")
    syms.init_memory = finder.func("__wasm_init_memory")
    syms.tdata = finder.data(".tdata")

    # -- shape: the stack pointer -------------------------------------------------------
    if syms.stack_pointer is None:
        candidates = [
            first_global + i for i, g in enumerate(module.globals)
            if g.type.valtype == I32 and g.type.mutable and (const_i32(g.init) or 0) != 0
        ]
        if len(candidates) == 1:
            syms.stack_pointer = Found(candidates[0], "heuristic: the only mutable i32 global "
                                                      "with a non-zero initialiser")
        elif candidates and candidates[0] == first_global:
            syms.stack_pointer = Found(candidates[0], "heuristic: lld's first defined global, "
                                                      "mutable i32 with a non-zero initialiser")

    # -- shape: the memory initialiser (start function) ----------------------------------
    init_instrs: list[Instr] | None = None
    if syms.init_memory is not None:
        init_instrs = _function_instructions(module, syms.init_memory.index)
    elif module.start is not None:
        instrs = _function_instructions(module, module.start)
        if instrs is not None and looks_like_init_memory(instrs):
            syms.init_memory = Found(module.start, "heuristic: start function with lld's "
                                                   "memory-initialiser shape")
            init_instrs = instrs

    tls_glob = tls_addr = tls_seg = None
    if init_instrs is not None:
        syms.init_memory_has_flag = looks_like_init_memory(init_instrs)
        syms.init_memory_writes = _init_memory_writes(init_instrs)
        tls_glob, tls_addr, tls_seg = _tls_from_init_memory(init_instrs)

    # -- shape: __tls_base ----------------------------------------------------------------
    if syms.tls_base is None and tls_glob is not None:
        syms.tls_base = Found(tls_glob, "heuristic: global the memory initialiser sets to the "
                                        "TLS address")
    if syms.tls_base is None and syms.stack_pointer is not None:
        after = syms.stack_pointer.index + 1
        local = after - first_global
        if 0 <= local < len(module.globals):
            g = module.globals[local]
            init = const_i32(g.init)
            if g.type.valtype == I32 and init is not None:
                # stops at the first segment at that address (modules have ~10 000 segments)
                at_segment = not g.type.mutable and any(
                    not passive and offset is not None and const_i32(offset) == init
                    for passive, offset, _len in module.data_summary())
                if at_segment:
                    syms.tls_base = Found(after, "heuristic: immutable i32 global after the "
                                                 "stack pointer equal to a data segment address")

    # -- values --------------------------------------------------------------------------
    if syms.stack_pointer is not None:
        syms.stack_pointer_init = defined_global_init(module, syms.stack_pointer.index)
    if syms.tls_base is not None:
        syms.tls_base_init = defined_global_init(module, syms.tls_base.index)
    if syms.tls_size is not None:
        syms.tls_size_value = defined_global_init(module, syms.tls_size.index)
    if syms.tls_align is not None:
        syms.tls_align_value = defined_global_init(module, syms.tls_align.index)
    if syms.heap_base is not None:
        syms.heap_base_value = defined_global_init(module, syms.heap_base.index)
    if syms.data_end is not None:
        syms.data_end_value = defined_global_init(module, syms.data_end.index)

    # -- shape: the .tdata segment ----------------------------------------------------------
    segments = module.data_summary()
    if syms.tdata is None and tls_seg is not None and tls_seg < len(segments):
        syms.tdata = Found(tls_seg, "heuristic: segment the memory initialiser writes at the "
                                    "TLS address")
    if syms.tdata is None and syms.init_tls is not None:
        instrs = _function_instructions(module, syms.init_tls.index)
        segs = [i.imm[0] for i in instrs or [] if i.op == "memory.init"]
        if len(segs) == 1 and isinstance(segs[0], int) and segs[0] < len(segments):
            syms.tdata = Found(segs[0], "heuristic: segment __wasm_init_tls copies")
    if syms.tdata is None and syms.tls_base_init:
        for index, (passive, offset, _len) in enumerate(segments):
            if not passive and offset is not None and const_i32(offset) == syms.tls_base_init:
                syms.tdata = Found(index, "heuristic: active segment at __tls_base's address")
                break
    if syms.tls_base_init in (None, 0) and tls_addr is not None:
        # --shared-memory: the static TLS address is only in the memory initialiser.
        syms.tls_base_init = tls_addr
    return syms
