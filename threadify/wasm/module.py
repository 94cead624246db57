"""The :class:`Module`: a lazily decoded, exactly re-encodable WebAssembly core module.

Decoding only splits the module into sections (id, exact header bytes, zero-copy payload view);
a known section's items are decoded the first time they are accessed, and custom sections are
never looked into unless asked for by name. On encode a section whose items compare equal to
the snapshot taken when they were decoded is emitted from its original bytes; a changed section
is rebuilt, and inside it every item that is still the one decoded is emitted from its own
original bytes. So ``Module.decode(b).encode() == b`` for any module, and a change costs only
the re-encoding of what changed.

Lazy decoding means that an error inside a section's items (for instance a malformed import)
is raised when that section is first accessed, not by :meth:`Module.decode`. Use
``Module.decode(data, eager=True)`` or :meth:`Module.decode_all` to check everything at once,
including every function body.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from threadify.errors import WasmDecodeError, WasmModuleError
from threadify.wasm import sections as S
from threadify.wasm.code import FunctionBody
from threadify.wasm.instructions import Instr, skip_const_expr
from threadify.wasm.reader import Reader, uleb32_at, uleb32_error

if TYPE_CHECKING:  # for annotations; names.py is imported where it is used
    import mmap

    from threadify.wasm.names import NameSection
from threadify.wasm.types import (
    DataSegment,
    Export,
    ExternKind,
    FuncType,
    Global,
    GlobalType,
    Import,
    MemoryType,
    RawType,
    TableType,
)
from threadify.wasm.writer import name as encode_name
from threadify.wasm.writer import uleb, uleb_width

_T = TypeVar("_T")

MAGIC = b"\0asm"
#: Rewritten data segments shorter than this are copied into a shared chunk; longer ones are
#: written from views of the input.
_COPY_BELOW = 4096
VERSION = b"\x01\0\0\0"


def is_mapped(data: object) -> bool:
    """Whether ``data`` is an ``mmap.mmap`` (a mapped input file, used without a copy: it
    indexes and slices like ``bytes``). Checked without importing ``mmap``, which a process
    that never maps a file need not load."""
    mapping = sys.modules.get("mmap")
    return mapping is not None and isinstance(data, mapping.mmap)


def _header(section_id: int, size: int, width: int | None = None) -> bytes:
    """Section header; keeps the original size-LEB width when the new size still fits."""
    if width is not None and uleb_width(size) <= width:
        return bytes((section_id,)) + uleb(size, width)
    return bytes((section_id,)) + uleb(size)


def _count_width(chunk: bytes | memoryview) -> int:
    """The length of the LEB128 count at the start of ``chunk``; 0 if it does not end there."""
    value, end = uleb32_at(chunk, 0, len(chunk))
    return end if value >= 0 else 0


class _Section:
    """A section as found in the input (``payload`` is a view into it) or created by a pass."""

    def __init__(self, section_id: int, offset: int, header: memoryview | None,
                 payload: memoryview | None) -> None:
        self.id = section_id
        self.offset = offset  # absolute offset of the section's first byte (its id)
        self.header = header
        self._payload = payload
        #: a replacement payload kept as chunks until someone reads it (see replace_payload)
        self._pending: list[bytes | memoryview] | None = None

    @property
    def payload(self) -> memoryview | None:
        if self._pending is not None:
            self._payload = memoryview(b"".join(self._pending))
            self._pending = None
        return self._payload

    @payload.setter
    def payload(self, value: memoryview | None) -> None:
        self._pending = None
        self._payload = value

    @property
    def payload_offset(self) -> int:
        return self.offset + (len(self.header) if self.header is not None else 0)

    def _size_width(self) -> int | None:
        if self.header is None:
            return None
        return len(self.header) - 1

    def changed(self) -> bool:
        return False

    def emit(self, parts: list[bytes | memoryview], fresh: bool = False) -> None:
        assert self.header is not None
        parts.append(self.header)
        if self._pending is not None:
            parts.extend(self._pending)  # never joined: written chunk by chunk
        else:
            assert self._payload is not None
            parts.append(self._payload)

    def decode_all(self) -> None:
        pass


class _VectorSection(_Section):
    """A known section holding a vector of items, decoded on first access."""

    def __init__(self, section_id: int, offset: int, header: memoryview | None,
                 payload: memoryview | None) -> None:
        super().__init__(section_id, offset, header, payload)
        self.reader, self.encoder, self.min_size = S.VECTOR_CODECS[section_id]
        self._items: list[Any] | None = None
        self._tail: list[Any] = []  # appended while the original items were never decoded
        self._replaced = False  # the payload is not the input's any more
        self._scan: list[_Scanned] | None = None  # data only
        self._summary: list[tuple[bool, bytes | None, int]] | None = None  # data only
        self._pending_count = 0
        self._snapshot: list[Any] = []
        self._entries: list[tuple[int, int, int] | None] = []
        self._count_width: int | None = None

    @property
    def items(self) -> list[Any]:
        if self._items is None:
            self._decode()
            assert self._items is not None
            if self._tail:
                self._items.extend(self._tail)
                self._tail = []
        assert self._items is not None
        return self._items

    def _original_count(self) -> tuple[int, int]:
        """(item count, width of its LEB) read from the payload without decoding items."""
        if self.payload is None:
            return 0, 0
        r = Reader(self.payload, base=self.payload_offset)
        n = r.count(f"a {S.SECTION_NAMES[self.id]} section item count", self.min_size)
        return n, r.pos

    def append(self, new_items: list[Any]) -> None:
        """Append items; the existing ones stay undecoded if nobody has read them.

        Not for the import section, whose compact encoding makes entries and items differ.
        """
        if self._items is not None or (self._pending is None and self._payload is None):
            self.items.extend(new_items)
        else:
            self._tail.extend(new_items)

    def replace_payload(self, chunks: list[bytes | memoryview], count: int) -> None:
        """Use the concatenation of ``chunks`` (a complete, valid encoding of this section's
        ``count`` items) from now on, as if it had been read: nothing is decoded, and it is
        emitted chunk by chunk (joined only if someone reads it)."""
        size = sum(len(c) for c in chunks)
        self.header = memoryview(_header(self.id, size, self._size_width()))
        self.payload = None
        self._pending = list(chunks)
        self._pending_count = count
        self._items = None
        self._tail = []
        self._snapshot = []
        self._entries = []
        self._count_width = None
        self._replaced = True
        self._scan = None
        self._summary = None

    def length(self) -> int:
        """Number of items, without decoding them when they were not read."""
        if self._pending is not None and self._items is None:
            return self._pending_count + len(self._tail)
        if self._items is not None or self.payload is None:
            return len(self.items)
        return self._original_count()[0] + len(self._tail)

    def _decode(self) -> None:
        items: list[Any] = []
        # per item index: (number of items, start, end) of the entry that begins there; an
        # entry holds several items only in the compact import encoding
        entries: list[tuple[int, int, int] | None] = []
        if self.payload is not None:
            payload = self.payload
            obj = payload.obj
            rel = self.payload_offset
            if (self.id != S.DATA and isinstance(obj, bytes)
                    and len(obj) >= rel + len(payload)):
                # read the module's bytes directly (cheaper than through the view); the data
                # section keeps the view so that segment contents are not copied
                r = Reader(obj, rel, rel + len(payload), 0)
            else:
                r = Reader(payload, base=rel)
                rel = 0
            what = f"a {S.SECTION_NAMES[self.id]} section item count"
            n = r.count(what, self.min_size)
            self._count_width = r.pos - rel
            read = self.reader
            if self.id == S.CODE:
                items, entries = _split_code(payload, r.pos - rel, n, self.payload_offset)
                n = 0
                r.pos = r.end
            if self.id == S.IMPORT:  # compact imports: one entry, several items
                for _ in range(n):
                    start = r.pos - rel
                    item = read(r)
                    if isinstance(item, list):
                        entries.append((len(item), start, r.pos - rel))
                        entries.extend([None] * (len(item) - 1))
                        items.extend(item)
                    else:
                        entries.append((1, start, r.pos - rel))
                        items.append(item)
                n = 0
            add_item = items.append
            add_entry = entries.append
            for _ in range(n):
                start = r.pos
                add_item(read(r))
                add_entry((1, start - rel, r.pos - rel))
            if not r.at_end():
                raise r.error(f"the end of the {S.SECTION_NAMES[self.id]} section "
                              f"({r.remaining()} bytes left after its last item)")
        self._entries = entries
        self._snapshot = list(items)
        self._items = items

    def changed(self) -> bool:
        if self._items is None:
            return bool(self._tail) or self._replaced
        return self._replaced or self._items != self._snapshot

    def _emit_tail(self, parts: list[bytes | memoryview]) -> None:
        """Original payload after its count, verbatim, then the appended items. A replaced
        payload still held as chunks is emitted as those chunks (never joined: the rewritten
        code of a large module is tens of megabytes)."""
        pending = self._pending
        width = _count_width(pending[0]) if pending else 0
        body: list[bytes | memoryview]
        if pending and width:
            n = self._pending_count
            body = [memoryview(pending[0])[width:], *pending[1:]]
        else:
            assert self.payload is not None
            n, width = self._original_count()
            body = [self.payload[width:]]
        count = n + len(self._tail)
        head = uleb(count, width) if uleb_width(count) <= width else uleb(count)
        body.extend(self.encoder(item) for item in self._tail)
        size = len(head) + sum(len(b) for b in body)
        parts.append(_header(self.id, size, self._size_width()))
        parts.append(head)
        parts.extend(body)

    def _unchanged_entry(self, i: int) -> tuple[int, int, int] | None:
        """The original entry starting at item ``i`` if all its items are still in place."""
        if i >= len(self._entries):
            return None
        entry = self._entries[i]
        if entry is None:
            return None
        items, snap = self._items, self._snapshot
        assert items is not None
        n = entry[0]
        if i + n > len(items):
            return None
        for j in range(i, i + n):
            if not (items[j] is snap[j] or items[j] == snap[j]):
                return None
        return entry

    def emit(self, parts: list[bytes | memoryview], fresh: bool = False) -> None:
        if not fresh and not self.changed():
            if self.header is not None:
                super().emit(parts)
            return
        if not fresh and self._items is None:
            if self._tail:
                self._emit_tail(parts)
            elif self.header is not None:  # a replaced payload, never decoded since
                super().emit(parts)
            return
        items = self.items
        if not items:
            return  # an emptied section is dropped
        encoder = self.encoder
        if fresh and self.id == S.CODE:
            encoder = _fresh_code
        body: list[bytes | memoryview] = []
        payload = self.payload
        count = 0
        run_start = run_end = -1  # a run of untouched entries, emitted as one slice
        i = 0
        snap = self._snapshot
        if (not fresh and snap and len(items) >= len(snap) and items[:len(snap)] == snap
                and payload is not None and self._count_width is not None):
            # fast path for appends (the common case: passes add functions, globals, exports):
            # every original item is in place, so all original entries form one run
            run_start, run_end = self._count_width, len(payload)
            i = len(snap)
            count = sum(1 for e in self._entries if e is not None)
        while i < len(items):
            entry = None if fresh else self._unchanged_entry(i)
            if entry is not None:
                n, s, e = entry
                i += n
                count += 1
                if s == run_end:
                    run_end = e
                    continue
                if run_start >= 0:
                    assert payload is not None
                    body.append(payload[run_start:run_end])
                run_start, run_end = s, e
                continue
            if run_start >= 0:
                assert payload is not None
                body.append(payload[run_start:run_end])
                run_start = run_end = -1
            body.append(encoder(items[i]))
            i += 1
            count += 1
        if run_start >= 0:
            assert payload is not None
            body.append(payload[run_start:run_end])
        width = self._count_width
        if width is not None and uleb_width(count) <= width:
            head = uleb(count, width)  # keeps existing bodies at their offsets (DWARF)
        else:
            head = uleb(count)
        size = len(head) + sum(len(b) for b in body)
        parts.append(_header(self.id, size, self._size_width()))
        parts.append(head)
        parts.extend(body)

    def decode_all(self) -> None:
        for item in self.items:
            if isinstance(item, FunctionBody):
                item.instructions()

    def spans(self) -> list[tuple[int, int]]:
        """Byte spans of the decoded entries inside the payload."""
        self.items  # noqa: B018 - decode
        return [(s, e) for entry in self._entries if entry is not None for _n, s, e in [entry]]


def _split_code(payload: memoryview, pos: int, n: int, base: int
                ) -> tuple[list[Any], list[tuple[int, int, int] | None]]:
    """Split the code section's ``n`` bodies, starting at ``payload[pos]``.

    A tight loop over the module's own ``bytes`` (indexing and slicing ``bytes`` is much
    cheaper than a memoryview's), since real modules have 10^4..10^5 bodies. ``base`` is the
    absolute offset of the payload, which is also its offset inside ``payload.obj`` for
    sections of a decoded module."""
    data: Any = payload.obj  # bytes, or an mmap (indexes and slices the same way)
    if (isinstance(data, bytes) or is_mapped(data)) and len(data) >= base + len(payload):
        offset = base
    else:
        data, offset = bytes(payload), 0
    end = offset + len(payload)
    pos += offset
    items: list[Any] = []
    entries: list[tuple[int, int, int] | None] = []
    append_item = items.append
    append_entry = entries.append
    for _ in range(n):
        start = pos
        # most body sizes take one or two bytes: read those without a call (as Reader.uleb does)
        if pos + 1 < end and data[pos] < 0x80:
            size = data[pos]
            pos += 1
        elif pos + 1 < end and data[pos + 1] < 0x80:
            size = (data[pos] & 0x7F) | data[pos + 1] << 7
            pos += 2
        else:
            size, pos = uleb32_at(data, pos, end)
            if size < 0 or size >> 32:
                raise uleb32_error(data, start, end, base - offset, "a function body size")
        if size > end - pos:
            raise WasmDecodeError(base + start - offset,
                                  f"a function body of {size} bytes (only {end - pos} left)")
        append_item(FunctionBody(data[pos:pos + size], base + pos - offset))
        pos += size
        append_entry((1, start - offset, pos - offset))
    if pos != end:
        raise WasmDecodeError(base + pos - offset, "the end of the code section "
                              f"({end - pos} bytes left after its last item)")
    return items, entries


#: One data segment as :func:`_scan_data` sees it: ``(start, flags, offset expression incl. its
#: end or None, start of the length LEB, start of the bytes, end)``, offsets in the payload.
_Scanned = tuple[int, int, bytes | None, int, int, int]


def _scan_data(section: _VectorSection) -> list[_Scanned]:
    """Every data segment's layout (see :data:`_Scanned`), by a pass over the section's bytes
    that builds no segment objects (cached until the payload is replaced)."""
    assert section.payload is not None
    if section._scan is None:
        section._scan = _scan_data_uncached(section)
    return section._scan


def _scan_data_uncached(section: _VectorSection) -> list[_Scanned]:
    assert section.payload is not None
    r = Reader(section.payload, base=section.payload_offset)
    n = r.count("a data section item count", S.VECTOR_CODECS[S.DATA][2])
    out: list[_Scanned] = []
    data = r.data
    end = len(data)
    append = out.append
    pos = r.pos
    for _ in range(n):
        start = pos
        # lld's usual segments — active ``0x00 i32.const N end`` with a LEB of at most 4 bytes,
        # or passive ``0x01`` — are read inline: modules have ~10 000 of them, and a call per
        # LEB costs ~25% of this loop. The offset's bytes are only skipped; the length's first
        # two bytes are read here as Reader.uleb reads them, a longer one by uleb32_at.
        # Anything else, or a read past the end, takes the general path below, which reports
        # errors.
        try:
            flag = data[start]
            len_start = 0
            if flag == 0 and data[start + 1] == 0x41:
                # skip the s32 (at most 4 bytes here: it then cannot leave the s32 range)
                p = start + 2
                if data[p] >= 0x80:
                    p += 1 if data[p + 1] < 0x80 else 2 if data[p + 2] < 0x80 else \
                        3 if data[p + 3] < 0x80 else -p
                if p > 0 and data[p + 1] == 0x0B:
                    len_start = p + 2
            elif flag == 1:
                len_start = start + 1
            if len_start:
                length = data[len_start]
                if length < 0x80:  # short segments: no call (as Reader.uleb reads them)
                    p = len_start + 1
                elif data[len_start + 1] < 0x80:
                    length = (length & 0x7F) | data[len_start + 1] << 7
                    p = len_start + 2
                else:
                    length, p = uleb32_at(data, len_start, end)
                if 0 <= length <= end - p:
                    pos = p + length
                    append((start, flag, bytes(data[start + 1:len_start]) if flag == 0 else None,
                            len_start, p, pos))
                    continue
        except IndexError:
            pass
        r.pos = start
        flags = r.u32("data segment flags")
        expr = None
        if flags == 2:
            r.u32("a memory index")
        elif flags not in (0, 1):
            raise r.error("data segment flags 0, 1 or 2", start)
        if flags != 1:
            expr = skip_const_expr(r)
        len_start = r.pos
        length = r.count("a data segment length")
        data_start = r.pos
        r.view(length, "data")
        pos = r.pos
        append((start, flags, expr, len_start, data_start, pos))
    r.pos = pos
    if not r.at_end():
        raise r.error(f"the end of the data section ({r.remaining()} bytes left after its "
                      "last item)")
    return out


def _fresh_code(body: FunctionBody) -> bytes:
    """A body re-encoded from its decoded instructions, ignoring their original bytes."""
    instrs = [Instr(i.op, i.imm) for i in body.instructions()]
    return S.encode_code(FunctionBody.build(body.locals(), instrs))


class _ScalarSection(_Section):
    """The start and data-count sections: one u32."""

    def __init__(self, section_id: int, offset: int, header: memoryview | None,
                 payload: memoryview | None) -> None:
        super().__init__(section_id, offset, header, payload)
        self._original: int | None = None
        self._value: int | None = None
        self._decoded = payload is None

    @property
    def value(self) -> int | None:
        if not self._decoded:
            assert self.payload is not None
            r = Reader(self.payload, base=self.payload_offset)
            v = r.u32(f"a {S.SECTION_NAMES[self.id]} section value")
            if not r.at_end():
                raise r.error(f"the end of the {S.SECTION_NAMES[self.id]} section")
            self._original = self._value = v
            self._decoded = True
        return self._value

    @value.setter
    def value(self, v: int | None) -> None:
        self.value  # noqa: B018 - decode the original first
        self._value = v

    def changed(self) -> bool:
        return self._decoded and self._value != self._original

    def emit(self, parts: list[bytes | memoryview], fresh: bool = False) -> None:
        if not (fresh and self.header is not None) and not self.changed():
            if self.header is not None:
                super().emit(parts)
            return
        value = self.value
        if value is not None:
            body = uleb(value)
            parts.append(_header(self.id, len(body)))
            parts.append(body)

    def decode_all(self) -> None:
        self.value  # noqa: B018


class _CustomSection(_Section):
    def __init__(self, offset: int, header: memoryview | None, payload: memoryview | None,
                 name: str, data: memoryview | bytes) -> None:
        super().__init__(S.CUSTOM, offset, header, payload)
        self.name = name
        self.data = data
        #: replacement contents: bytes, or chunks written one after the other
        self._new: bytes | list[bytes | memoryview] | None = None

    def contents(self) -> bytes | memoryview:
        if isinstance(self._new, list):
            self._new = b"".join(self._new)  # someone reads it: join once
        return self.data if self._new is None else self._new

    def changed(self) -> bool:
        return self._new is not None

    def contents_offset(self) -> int:
        """Absolute offset of the contents (after the name) in the input; 0 for contents that
        were set, not read (they have no place in the input)."""
        if self._new is not None or self.payload is None:
            return 0
        return self.payload_offset + len(self.payload) - len(self.data)

    def emit(self, parts: list[bytes | memoryview], fresh: bool = False) -> None:
        if self._new is None:
            super().emit(parts)
            return
        prefix = encode_name(self.name)
        chunks = self._new if isinstance(self._new, list) else [self._new]
        parts.append(_header(S.CUSTOM, len(prefix) + sum(len(c) for c in chunks)))
        parts.append(prefix)
        parts.extend(chunks)


def _make_known(section_id: int, offset: int, header: memoryview | None,
                payload: memoryview | None) -> _Section:
    if section_id in S.SCALAR_SECTIONS:
        return _ScalarSection(section_id, offset, header, payload)
    return _VectorSection(section_id, offset, header, payload)


def _items_property(section_id: int, doc: str) -> Any:
    def getter(self: Module) -> list[Any]:
        return cast(_VectorSection, self._known_section(section_id)).items

    def setter(self: Module, value: list[Any]) -> None:
        # replace the contents, keeping the live list (and its decode-time snapshot)
        getter(self)[:] = list(value)

    return property(getter, setter, doc=doc)


class Module:
    """A WebAssembly core module. Build one with :meth:`Module.decode`."""

    types: list[FuncType | RawType] = _items_property(S.TYPE, "Type section entries.")
    imports: list[Import] = _items_property(S.IMPORT, "Imports, in order.")
    functions: list[int] = _items_property(
        S.FUNCTION, "Type index of each defined function.")
    tables: list[TableType] = _items_property(S.TABLE, "Defined tables.")
    memories: list[MemoryType] = _items_property(S.MEMORY, "Defined memories.")
    tags: list[bytes] = _items_property(
        S.TAG, "Defined tags, each the raw tag type (attribute byte 0, type index LEB).")
    globals: list[Global] = _items_property(S.GLOBAL, "Defined globals.")
    exports: list[Export] = _items_property(S.EXPORT, "Exports, in order.")
    elements: list[bytes] = _items_property(
        S.ELEMENT, "Element segments, each kept as its raw encoding.")
    code: list[FunctionBody] = _items_property(S.CODE, "Bodies of the defined functions.")
    data: list[DataSegment] = _items_property(S.DATA, "Data segments.")

    def __init__(self, data: bytes | memoryview | mmap.mmap, sections: list[_Section]) -> None:
        self._input = data
        self._sections = sections
        self._known: dict[int, _Section] = {s.id: s for s in sections if s.id != S.CUSTOM}
        self._removed = False  # a section was removed (not visible as a changed section)

    # -- decoding -----------------------------------------------------------------------------

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview | mmap.mmap,
               eager: bool = False) -> Module:
        """Split ``data`` into sections. With ``eager``, also decode every item (see
        :meth:`decode_all`) so that any malformation is reported now. A read-only ``mmap`` of
        a file is used as it is (sections are views into it), anything else as a ``bytes``
        copy."""
        if not isinstance(data, bytes) and not is_mapped(data):
            data = bytes(data)
        data = cast("bytes | mmap.mmap", data)
        view = memoryview(data)
        if len(data) < 4 or data[:4] != MAGIC:
            raise WasmDecodeError(0, "WebAssembly module magic \\0asm")
        if len(data) < 8:
            raise WasmDecodeError(4, "a 4-byte version after the magic")
        if data[4:8] != VERSION:
            if data[6:8] == b"\x01\x00":
                raise WasmDecodeError(4, "version 1 (this is a component, not a core module)")
            version = int.from_bytes(data[4:8], "little")
            raise WasmDecodeError(4, f"version 1 (got {version})")
        r = Reader(view, 8)
        sections: list[_Section] = []
        last_rank = 0
        seen: set[int] = set()
        while not r.at_end():
            start = r.pos
            sid = r.u8("a section id")
            size = r.u32("a section size")
            if size > r.remaining():
                raise r.error(f"a section of {size} bytes (only {r.remaining()} left)", start + 1)
            header = view[start:r.pos]
            payload = view[r.pos:r.pos + size]
            if sid == S.CUSTOM:
                pr = Reader(payload, base=r.pos)
                cname = pr.name("a custom section name")
                sections.append(_CustomSection(start, header, payload, cname, payload[pr.pos:]))
            else:
                rank = S.CANONICAL_RANK.get(sid)
                if rank is None:
                    raise r.error(f"a known section id (got {sid})", start)
                if sid in seen:
                    raise r.error(f"at most one {S.SECTION_NAMES[sid]} section", start)
                if rank < last_rank:
                    raise r.error(f"sections in order ({S.SECTION_NAMES[sid]} section is out "
                                  "of place)", start)
                seen.add(sid)
                last_rank = rank
                sections.append(_make_known(sid, start, header, payload))
            r.pos += size
        module = cls(data, sections)
        if eager:
            module.decode_all()
        return module

    def decode_all(self) -> None:
        """Decode every known section's items and every function body, raising
        :class:`~threadify.errors.WasmDecodeError` on the first malformation."""
        for s in list(self._sections):
            s.decode_all()

    # -- encoding -----------------------------------------------------------------------------

    def chunks(self, fresh: bool = False) -> Iterator[bytes | memoryview]:
        """The encoded module as a sequence of byte chunks (for writing without joining)."""
        parts: list[bytes | memoryview] = [MAGIC + VERSION]
        for s in self._sections:
            s.emit(parts, fresh)
        return iter(parts)

    def encode(self, fresh: bool = False) -> bytes:
        """The module's bytes; the input object itself when nothing was changed.

        ``fresh=True`` ignores the original bytes of known sections and re-encodes every item
        (and every instruction) from its decoded value with minimal LEBs: the output means the
        same but is not byte-identical. It exists to test the encoders."""
        if (not fresh and not self._removed and isinstance(self._input, bytes)
                and not any(s.changed() for s in self._sections)):
            return self._input
        return b"".join(self.chunks(fresh))

    # -- sections -----------------------------------------------------------------------------

    def _known_section(self, section_id: int) -> _Section:
        s = self._known.get(section_id)
        if s is None:
            s = _make_known(section_id, -1, None, None)
            rank = S.CANONICAL_RANK[section_id]
            pos = None
            for i, other in enumerate(self._sections):
                if other.id != S.CUSTOM and S.CANONICAL_RANK[other.id] < rank:
                    pos = i + 1
            if pos is None:
                pos = next((i for i, o in enumerate(self._sections)
                            if o.id != S.CUSTOM and S.CANONICAL_RANK[o.id] > rank),
                           len(self._sections))
            self._sections.insert(pos, s)
            self._known[section_id] = s
        return s

    def section_ids(self) -> list[int]:
        """Ids of the sections the encoded module will contain, in order (0 = custom)."""
        out = []
        for s in self._sections:
            parts: list[bytes | memoryview] = []
            s.emit(parts)
            if parts:
                out.append(s.id)
        return out

    def function_count(self) -> int:
        """Number of function bodies, without decoding the code section."""
        return self._vector(S.CODE).length()

    def code_payload(self) -> tuple[bytes | mmap.mmap, int, int] | None:
        """Where the code section's payload as read (its count, then every body's entry) lies:
        ``(buffer, start, end)``, the module's input (``bytes`` or a mapped file) when it is
        there; None when there is no code section or it was replaced. Nothing is decoded or
        copied."""
        s = self._known.get(S.CODE)
        if not isinstance(s, _VectorSection) or s.header is None or s._replaced:
            return None
        payload = s.payload
        assert payload is not None
        owner: Any = payload.obj
        start = s.payload_offset
        if ((isinstance(owner, bytes) or is_mapped(owner))
                and owner[start:start + 1] == bytes(payload[:1])):
            return cast("bytes | mmap.mmap", owner), start, start + len(payload)
        return bytes(payload), 0, len(payload)

    def replace_code(self, payload: bytes | list[bytes | memoryview], count: int) -> None:
        """Use ``payload`` (a count, then ``count`` body entries; or chunks that concatenate to
        that, written out as they are) in place of the bodies the module was decoded with;
        bodies appended since then follow them, unchanged."""
        s = self._vector(S.CODE)
        appended = list(s._tail) if s._items is None else s._items[len(s._snapshot):]
        s.replace_payload(payload if isinstance(payload, list) else [payload], count)
        s._tail = appended

    def code_count_width(self) -> int:
        """Bytes of the LEB holding the code section's body count, as the input wrote it (0
        without a code section). Existing bodies keep their offsets only while the count still
        fits that width; call it before appending bodies."""
        s = self._known.get(S.CODE)
        if not isinstance(s, _VectorSection):
            return 0
        return s._original_count()[1]

    def code_body_offsets(self) -> list[int]:
        """Offset of each function body (after its size LEB) from the start of the code
        section's payload, as decoded -- the offsets DWARF refers to."""
        s = self._known.get(S.CODE)
        if s is None or s.header is None:
            return []
        assert isinstance(s, _VectorSection)
        out = []
        for (start, _end), body in zip(s.spans(), s._snapshot, strict=True):
            out.append(start + (_end - start - len(body.raw)))
        return out

    @property
    def start(self) -> int | None:
        """The start function's index, or None; assigning None removes the start section."""
        return cast(_ScalarSection, self._known_section(S.START)).value

    @start.setter
    def start(self, value: int | None) -> None:
        cast(_ScalarSection, self._known_section(S.START)).value = value

    @property
    def data_count(self) -> int | None:
        """The data-count section's value, or None; assigning None removes the section."""
        return cast(_ScalarSection, self._known_section(S.DATACOUNT)).value

    @data_count.setter
    def data_count(self, value: int | None) -> None:
        cast(_ScalarSection, self._known_section(S.DATACOUNT)).value = value

    # -- custom sections ----------------------------------------------------------------------

    def _customs(self) -> Iterator[_CustomSection]:
        for s in self._sections:
            if isinstance(s, _CustomSection):
                yield s

    def custom_sections(self) -> list[tuple[str, bytes]]:
        """``(name, contents)`` of every custom section, in module order."""
        return [(s.name, bytes(s.contents())) for s in self._customs()]

    def custom_names(self) -> list[str]:
        """Names of the custom sections, in module order (their contents are not copied)."""
        return [s.name for s in self._customs()]

    def get_custom(self, name: str) -> bytes | None:
        """Contents of the first custom section called ``name``, or None."""
        for s in self._customs():
            if s.name == name:
                return bytes(s.contents())
        return None

    def set_custom(self, name: str, payload: bytes) -> None:
        """Replace the first custom section called ``name`` in place, or append one at the end.
        Setting the contents it already has changes nothing."""
        for s in self._customs():
            if s.name == name:
                if s.contents() != payload:
                    s._new = bytes(payload)
                return
        s = _CustomSection(-1, None, None, name, b"")
        s._new = bytes(payload)
        self._sections.append(s)

    def remove_custom(self, name: str) -> None:
        """Remove every custom section called ``name``."""
        kept = [s for s in self._sections
                if not (isinstance(s, _CustomSection) and s.name == name)]
        if len(kept) != len(self._sections):
            self._removed = True
        self._sections = kept

    def decode_custom(self, name: str, decode: Callable[[Any, int], _T]) -> _T | None:
        """The first custom section called ``name`` decoded by ``decode(contents, base)`` (e.g.
        ``TargetFeatures.decode``), or None when there is none.

        ``base`` is where the contents start in the module, so a malformed section is reported
        at its absolute byte offset, and the error names the section: the decoders of custom
        sections know their structure, not where the module put them.
        """
        for section in self._customs():
            if section.name == name:  # decoded from a view: no copy of a large section
                try:
                    return decode(section.contents(), section.contents_offset())
                except WasmDecodeError as error:
                    raise WasmDecodeError(error.offset, f"{error.expected}, in the '{name}' "
                                          "custom section") from None
        return None

    def names(self) -> NameSection | None:
        """The decoded ``name`` section (:class:`~threadify.wasm.names.NameSection`) or None."""
        from threadify.wasm.names import NameSection

        return self.decode_custom("name", NameSection.decode)

    def set_names(self, ns: NameSection) -> None:
        """Store ``ns`` as the ``name`` section (as chunks: no joined copy of a large one)."""
        if not ns.changed() and self.get_custom("name") is not None:
            return
        self._set_custom_chunks("name", ns.encode_chunks())

    def _set_custom_chunks(self, name: str, chunks: list[bytes | memoryview]) -> None:
        for s in self._customs():
            if s.name == name:
                s._new = chunks
                return
        s = _CustomSection(-1, None, None, name, b"")
        s._new = chunks
        self._sections.append(s)

    # -- index spaces -------------------------------------------------------------------------

    def num_imported(self, kind: ExternKind) -> int:
        return sum(1 for i in self.imports if i.kind == kind)

    def type_count(self) -> int:
        """Number of type indices defined (a rec group counts all its types)."""
        return sum(1 if isinstance(t, FuncType) else t.count for t in self.types)

    def type_at(self, type_index: int) -> FuncType | RawType:
        """The type-section entry that defines ``type_index``."""
        i = 0
        for t in self.types:
            n = 1 if isinstance(t, FuncType) else t.count
            if type_index < i + n:
                return t
            i += n
        raise WasmModuleError(f"type index {type_index} is out of range ({i} types)")

    def func_type(self, funcidx: int) -> FuncType:
        """Type of function ``funcidx`` (imported functions come first)."""
        type_index = self.func_type_index(funcidx)
        t = self.type_at(type_index)
        if not isinstance(t, FuncType):
            raise WasmModuleError(
                f"function {funcidx} has a GC/rec-group type (type {type_index})")
        return t

    def func_type_index(self, funcidx: int) -> int:
        """Type index of function ``funcidx``."""
        n = 0
        for imp in self.imports:
            if imp.kind == ExternKind.FUNC:
                if n == funcidx:
                    return cast(int, imp.desc)
                n += 1
        local = funcidx - n
        if not 0 <= local < len(self.functions):
            raise WasmModuleError(f"function index {funcidx} is out of range")
        return self.functions[local]

    def global_type(self, globalidx: int) -> GlobalType:
        n = 0
        for imp in self.imports:
            if imp.kind == ExternKind.GLOBAL:
                if n == globalidx:
                    return cast(GlobalType, imp.desc)
                n += 1
        local = globalidx - n
        if not 0 <= local < len(self.globals):
            raise WasmModuleError(f"global index {globalidx} is out of range")
        return self.globals[local].type

    # -- adding -------------------------------------------------------------------------------

    def add_type(self, ft: FuncType) -> int:
        """Index of a plain function type equal to ``ft``, appending one if none exists."""
        i = 0
        for t in self.types:
            if isinstance(t, FuncType):
                if t == ft:
                    return i
                i += 1
            else:
                i += t.count
        self.types.append(ft)
        return i

    def _vector(self, section_id: int) -> _VectorSection:
        return cast(_VectorSection, self._known_section(section_id))

    def add_function(self, type_index: int, body: FunctionBody) -> int:
        """Append a defined function; returns its function index.

        Existing entries of the function and code sections are not decoded for this.
        """
        functions = self._vector(S.FUNCTION)
        functions.append([type_index])
        self._vector(S.CODE).append([body])
        return self.num_imported(ExternKind.FUNC) + functions.length() - 1

    def data_summary(self) -> list[tuple[bool, bytes | None, int]]:
        """``(passive, offset expression, length)`` per data segment, without building segment
        objects when the section was not decoded (modules have thousands of segments)."""
        section = self._vector(S.DATA)
        if section._items is not None or section._tail or section.payload is None:
            return [(seg.passive, None if seg.offset is None else bytes(seg.offset),
                     len(seg.init)) for seg in section.items]
        if section._summary is None:
            section._summary = [(flags == 1, offset, end - data_start)
                                for _s, flags, offset, _l, data_start, end in _scan_data(section)]
        return list(section._summary)

    def data_segment_count(self) -> int:
        """Number of data segments (read from the section's count, nothing decoded)."""
        return self._vector(S.DATA).length()

    def make_data_passive(self) -> list[tuple[int, bytes, int]]:
        """Turn every active data segment into a passive one, keeping its index.

        Returns ``(segment index, offset expression incl. its end, length)`` for each segment
        that was active, so that a caller can write it with ``memory.init``. When the segments
        were not decoded, the section is rewritten in one pass over its bytes.
        """
        section = self._vector(S.DATA)
        if section._items is not None or section._tail or section.payload is None:
            out = []
            items = section.items
            for index, seg in enumerate(items):
                if not seg.passive:
                    assert seg.offset is not None
                    out.append((index, bytes(seg.offset), len(seg.init)))
                    items[index] = DataSegment(True, 0, None, seg.init)
            return out
        payload = section.payload
        scanned = _scan_data(section)
        if all(item[1] == 1 for item in scanned):
            return []
        # Most of lld's segments are small (16 770 of CRuby's 17 866 hold under 1 KiB): those are
        # copied into one buffer, large ones stay views of the input. A chunk per segment would
        # cost a write call each when the output is written.
        parts: list[bytes | memoryview] = []
        buffer = bytearray(payload[:scanned[0][0]])  # the count
        result = []
        for index, (start, flags, offset, len_start, data_start, end) in enumerate(scanned):
            if flags == 1:
                piece = start
            else:
                assert offset is not None
                buffer.append(1)
                piece = len_start
                result.append((index, offset, end - data_start))
            if end - piece < _COPY_BELOW:
                buffer += payload[piece:end]
            else:
                parts.append(bytes(buffer))
                parts.append(payload[piece:end])
                buffer = bytearray()
        if buffer:
            parts.append(bytes(buffer))
        section.replace_payload(parts, len(scanned))
        return result

    def add_global(self, g: Global) -> int:
        globals_ = self._vector(S.GLOBAL)
        globals_.append([g])
        return self.num_imported(ExternKind.GLOBAL) + globals_.length() - 1

    def add_export(self, e: Export) -> None:
        if any(x.name == e.name for x in self.exports):
            raise ValueError(f"export {e.name!r} already exists")
        self.exports.append(e)

    def find_export(self, name: str) -> Export | None:
        return next((e for e in self.exports if e.name == name), None)

