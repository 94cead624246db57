"""The ``name`` custom section.

Threadify reads linker symbol names from it (functions, globals, data segments such as
``.tdata``) and adds names for what it injects. Release builds of large programs carry tens of
thousands of function names, so the section is lazy: :meth:`NameSection.decode` only splits it
into subsections, and each of ``module``, ``functions``, ``locals``, ``globals`` and ``data`` is
decoded the first time it is read. Names for items appended to the module go through
:meth:`NameSection.append`, which splices them onto the end of the raw subsection without
decoding it (indices of appended items are larger than every existing one, so the map stays
sorted).

Subsections it has no use for (labels, types, tables, memories, elements, fields, tags) are kept
as raw bytes and re-emitted in their place, and a subsection that was not modified is re-emitted
from its original bytes, so an unmodified decode -> encode is byte-identical whatever LEB widths
the producer chose. Malformed contents of a decoded kind raise
:class:`~threadify.errors.WasmDecodeError` when that subsection is first read (or from
:meth:`NameSection.decode_all`).
"""

from __future__ import annotations

from typing import Any, cast

from threadify.errors import WasmDecodeError
from threadify.wasm.reader import Reader, uleb32_at
from threadify.wasm.writer import name, uleb

MODULE, FUNCTIONS, LOCALS, GLOBALS, DATA = 0, 1, 2, 7, 9
_DECODED = (MODULE, FUNCTIONS, LOCALS, GLOBALS, DATA)
_ATTR = {MODULE: "module", FUNCTIONS: "functions", LOCALS: "locals", GLOBALS: "globals",
         DATA: "data"}
_UNSET = object()


def _read_namemap(r: Reader) -> dict[int, str]:
    out: dict[int, str] = {}
    for _ in range(r.count("a name map length", 2)):
        idx = r.u32("an index")
        out[idx] = r.name("a name")
    return out


def _walk_namemap(data: bytes, wanted: bytes) -> int | None | object:
    """The index named ``wanted`` (UTF-8) in the raw name map ``data``, or None; ``_UNSET`` when
    the map is malformed before the match (the caller re-reads it to report where).

    A walk over ``bytes`` with :func:`uleb32_at`: a Reader call per field costs several times
    more, and the function map of a large program is walked whenever lld's name is in it. Every
    name before the match is checked to be UTF-8, as :meth:`Reader.name` would.
    """
    end = len(data)
    count, pos = uleb32_at(data, 0, end)
    if count < 0 or count >> 32 or count * 2 > end - pos:
        return _UNSET
    for _ in range(count):
        index, pos = uleb32_at(data, pos, end)
        if index < 0:
            return _UNSET
        if pos < end and data[pos] < 0x80:  # names are almost always under 128 bytes
            size = data[pos]
            pos += 1
        else:
            size, pos = uleb32_at(data, pos, end)
        if size < 0 or index >> 32 or size >> 32 or size > end - pos:
            return _UNSET
        text = data[pos:pos + size]
        pos += size
        if text == wanted:
            return index
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            return _UNSET
    return None


def _encode_namemap(m: dict[int, str]) -> bytes:
    return uleb(len(m)) + b"".join(uleb(i) + name(m[i]) for i in sorted(m))


def _empty(sid: int) -> Any:
    return None if sid == MODULE else {}


class NameSection:
    """Decoded ``name`` section. Fields read as plain, mutable Python containers."""

    def __init__(self, module: str | None = None, functions: dict[int, str] | None = None,
                 locals: dict[int, dict[int, str]] | None = None,
                 globals: dict[int, str] | None = None,
                 data: dict[int, str] | None = None) -> None:
        #: ``(subsection id, raw payload)`` in section order, as read.
        self.subsections: list[tuple[int, bytes | memoryview]] = []
        self._size_lebs: dict[int, bytes] = {}  # by position in ``subsections``
        self._bases: dict[int, int] = {}  # absolute offset of each decoded kind's payload
        self._value: dict[int, Any] = {}  # decoded (or assigned) value per subsection id
        self._original: dict[int, Any] = {}  # snapshot taken when decoded from raw bytes
        self._appended: dict[int, dict[int, str]] = {}  # not yet merged into a raw map
        self._search: dict[int, bytes] = {}  # flat copies of raw subsections, by position
        for sid, value in ((MODULE, module), (FUNCTIONS, functions), (LOCALS, locals),
                           (GLOBALS, globals), (DATA, data)):
            if value is not None:
                self._value[sid] = value

    # -- decoding -------------------------------------------------------------------------------

    @classmethod
    def decode(cls, payload: bytes | memoryview, base: int = 0) -> NameSection:
        """Split the section's contents (after its name) into subsections.

        ``base`` only offsets errors. Subsection contents are decoded on first access.
        """
        ns = cls()
        if base < 0:  # a view into the module: errors are reported inside the section
            base = 0
        r = Reader(payload, base=base)
        seen: set[int] = set()
        while not r.at_end():
            sid = r.u8("a name subsection id")
            size_start = r.pos
            size = r.u32("a name subsection size")
            start = r.pos
            raw = r.view(size, "name subsection")
            if sid in _DECODED:
                if sid in seen:
                    raise WasmDecodeError(base + start - 2, f"at most one name subsection {sid}")
                seen.add(sid)
                ns._bases[sid] = base + start
            ns._size_lebs[len(ns.subsections)] = bytes(r.data[size_start:start])
            ns.subsections.append((sid, raw))
        return ns

    def _raw(self, sid: int) -> bytes | memoryview | None:
        for s, raw in self.subsections:
            if s == sid:
                return raw
        return None

    def _decode_sub(self, sid: int, raw: bytes | memoryview) -> Any:
        sub = Reader(raw, base=self._bases.get(sid, 0))
        value: Any
        if sid == MODULE:
            value = sub.name("a module name")
        elif sid == LOCALS:
            value = {}
            for _ in range(sub.count("an indirect name map length", 2)):
                idx = sub.u32("a function index")
                value[idx] = _read_namemap(sub)
        else:
            value = _read_namemap(sub)
        if not sub.at_end():
            raise sub.error(f"the end of name subsection {sid}")
        return value

    def _get(self, sid: int) -> Any:
        if sid not in self._value:
            raw = self._raw(sid)
            if raw is None:
                value = _empty(sid)
            else:
                value = self._decode_sub(sid, raw)
                self._original[sid] = (value if sid == MODULE else
                                       {k: dict(v) for k, v in value.items()} if sid == LOCALS
                                       else dict(value))
            pending = self._appended.pop(sid, None)
            if pending:
                value.update(pending)
            self._value[sid] = value
        return self._value[sid]

    def _set(self, sid: int, value: Any) -> None:
        self._appended.pop(sid, None)
        if sid not in self._value and self._raw(sid) is not None:
            self._get(sid)  # keep the snapshot so an unchanged value re-emits the raw bytes
        self._value[sid] = value

    def decode_all(self) -> None:
        """Decode every subsection threadify understands (raises on malformed contents)."""
        for sid in _DECODED:
            self._get(sid)

    module = property(lambda self: self._get(MODULE), lambda self, v: self._set(MODULE, v),
                      doc="The module's name, or None.")
    functions = property(lambda self: self._get(FUNCTIONS),
                         lambda self, v: self._set(FUNCTIONS, v),
                         doc="Function index -> name.")
    locals = property(lambda self: self._get(LOCALS), lambda self, v: self._set(LOCALS, v),
                      doc="Function index -> local index -> name.")
    globals = property(lambda self: self._get(GLOBALS), lambda self, v: self._set(GLOBALS, v),
                       doc="Global index -> name.")
    data = property(lambda self: self._get(DATA), lambda self, v: self._set(DATA, v),
                    doc="Data segment index -> name.")

    # -- cheap queries and edits ---------------------------------------------------------------

    def _flat(self, position: int) -> bytes:
        """Subsection ``position``'s raw bytes as one ``bytes`` (searchable; copied once)."""
        flat = self._search.get(position)
        if flat is None:
            flat = self._search[position] = bytes(self.subsections[position][1])
        return flat

    def may_contain(self, text: str) -> bool:
        """``False`` when ``text`` is certainly not one of the names (no decoding needed)."""
        needle = text.encode()
        if any(needle in self._flat(position) for position in range(len(self.subsections))):
            return True
        for value in (*self._value.values(), *self._appended.values()):
            if value == text or (isinstance(value, dict) and text in value.values()):
                return True
        return False

    def find(self, sid: int, text: str) -> int | None:
        """The index named ``text`` in map subsection ``sid`` (1 functions, 7 globals, 9 data),
        or None. Reads the raw map only as far as the match (lld names ``.tdata`` and
        ``__stack_pointer`` first) unless the map was already decoded.

        A name map of a large program holds ~100 000 names: the raw map is first searched for
        the name as it is encoded there (length, then UTF-8), and walked only when it is there.
        """
        if sid in self._value or sid in self._appended:
            for index, name_ in self._get(sid).items():
                if name_ == text:
                    return int(index)
            return None
        position = next((i for i, (s, _raw) in enumerate(self.subsections) if s == sid), None)
        if position is None:
            return None
        encoded = text.encode()
        flat = self._flat(position)
        if uleb(len(encoded)) + encoded not in flat:
            return None
        found = _walk_namemap(flat, encoded)
        if found is not _UNSET:
            return cast("int | None", found)
        # malformed somewhere before the match: the Reader walk raises the precise error
        r = Reader(self.subsections[position][1], base=self._bases.get(sid, 0))
        for _ in range(r.count("a name map length", 2)):
            idx = r.u32("an index")
            if r.name("a name") == text:
                return idx
        return None

    def append(self, sid: int, entries: dict[int, str]) -> None:
        """Add names for *newly appended* items (indices above every named one) to map
        subsection ``sid`` (1 functions, 7 globals, 9 data ...) without decoding it."""
        if sid not in (FUNCTIONS, GLOBALS, DATA):
            raise ValueError(f"append supports name maps 1, 7 and 9, not {sid}")
        if sid in self._value:
            self._value[sid].update(entries)
        else:
            self._appended.setdefault(sid, {}).update(entries)

    # -- encoding -------------------------------------------------------------------------------

    def _changed(self, sid: int) -> bool:
        if sid in self._appended:
            return True
        if sid not in self._value:
            return False
        return bool(self._original.get(sid, _UNSET) != self._value[sid])

    def _present(self, sid: int) -> bool:
        if sid in self._appended:
            return True
        value = self._value.get(sid)
        return value is not None and value != {}

    def _encode_sub(self, sid: int) -> bytes:
        pending = self._appended.get(sid)
        if pending is not None and sid not in self._value:
            raw = self._raw(sid)
            if raw is not None:  # splice: new count, the old entries verbatim, the new ones
                r = Reader(raw, base=self._bases.get(sid, 0))
                count = r.count("a name map length", 2)
                return b"".join([uleb(count + len(pending)), raw[r.pos:],
                                 *(uleb(i) + name(pending[i]) for i in sorted(pending))])
            return _encode_namemap(pending)
        value = self._get(sid)
        if sid == MODULE:
            assert value is not None
            return name(value)
        if sid == LOCALS:
            return uleb(len(value)) + b"".join(
                uleb(i) + _encode_namemap(value[i]) for i in sorted(value))
        return _encode_namemap(value)

    def _emit_raw(self, position: int, sid: int, raw: bytes | memoryview,
                  out: list[bytes | memoryview]) -> None:
        out.append(bytes((sid,)) + (self._size_lebs.get(position) or uleb(len(raw))))
        out.append(raw)

    def encode(self) -> bytes:
        """The section's contents (after its name)."""
        return b"".join(self.encode_chunks())

    def changed(self) -> bool:
        """Whether :meth:`encode` would differ from the section as it was read."""
        return any(self._changed(sid) for sid in _DECODED) or (
            not self.subsections and any(self._present(sid) for sid in _DECODED))

    def encode_chunks(self) -> list[bytes | memoryview]:
        """The section's contents as chunks (views of the original where unchanged), so that a
        large section is written out without being joined into one more copy."""
        out: list[bytes | memoryview] = []
        emitted: set[int] = set()

        def emit_new_before(limit: int) -> None:
            # decoded-kind subsections that are new (absent from the input) go in id order
            for sid in _DECODED:
                if sid < limit and sid not in emitted and self._present(sid):
                    emitted.add(sid)
                    body = self._encode_sub(sid)
                    out.append(bytes((sid,)) + uleb(len(body)) + body)

        for position, (sid, raw) in enumerate(self.subsections):
            emit_new_before(sid)
            if sid in _DECODED:
                if sid in emitted:
                    continue
                emitted.add(sid)
                if not self._changed(sid):
                    self._emit_raw(position, sid, raw, out)
                elif self._present(sid):
                    body = self._encode_sub(sid)
                    out.append(bytes((sid,)) + uleb(len(body)) + body)
            else:
                self._emit_raw(position, sid, raw, out)
        emit_new_before(256)
        return out

    def __repr__(self) -> str:
        kinds = sorted({sid for sid, _ in self.subsections} | set(self._value))
        return f"NameSection(subsections={kinds})"
