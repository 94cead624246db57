"""The ``name`` custom section.

Threadify reads linker symbol names from it (functions, globals, data segments such as
``.tdata``) and adds names for what it injects. Subsections it has no use for (labels, types,
tables, memories, elements, fields, tags) are kept as raw bytes and re-emitted in their place,
and a decoded subsection that was not modified is re-emitted from its original bytes, so an
unmodified decode -> encode is byte-identical whatever LEB widths the producer chose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from threadify.errors import WasmDecodeError
from threadify.wasm.reader import Reader
from threadify.wasm.writer import name, uleb

MODULE, FUNCTIONS, LOCALS, GLOBALS, DATA = 0, 1, 2, 7, 9
_DECODED = (MODULE, FUNCTIONS, LOCALS, GLOBALS, DATA)


def _read_namemap(r: Reader) -> dict[int, str]:
    out: dict[int, str] = {}
    for _ in range(r.count("a name map length", 2)):
        idx = r.u32("an index")
        out[idx] = r.name("a name")
    return out


def _encode_namemap(m: dict[int, str]) -> bytes:
    return uleb(len(m)) + b"".join(uleb(i) + name(m[i]) for i in sorted(m))


@dataclass
class NameSection:
    """Decoded ``name`` section. Fields are plain, mutable Python containers."""

    module: str | None = None
    functions: dict[int, str] = field(default_factory=dict)
    locals: dict[int, dict[int, str]] = field(default_factory=dict)
    globals: dict[int, str] = field(default_factory=dict)
    data: dict[int, str] = field(default_factory=dict)
    #: ``(subsection id, raw payload)`` in section order; decoded ids keep their slot here with
    #: their original payload, used verbatim while the decoded value is unchanged.
    subsections: list[tuple[int, bytes]] = field(default_factory=list)
    _original: dict[int, object] = field(default_factory=dict, repr=False, compare=False)
    _size_lebs: dict[tuple[int, bytes], bytes] = field(default_factory=dict, repr=False,
                                                       compare=False)

    @classmethod
    def decode(cls, payload: bytes, base: int = 0) -> NameSection:
        """Decode the section's contents (after its name). ``base`` only offsets errors."""
        ns = cls()
        r = Reader(bytes(payload), base=base)
        while not r.at_end():
            sid = r.u8("a name subsection id")
            size_start = r.pos
            size = r.u32("a name subsection size")
            start = r.pos
            raw = r.take(size, "name subsection")
            ns.subsections.append((sid, raw))
            ns._size_lebs[(sid, raw)] = bytes(r.data[size_start:start])
            if sid not in _DECODED:
                continue
            if any(s == sid for s, _ in ns.subsections[:-1]):
                raise WasmDecodeError(base + start - 2, f"at most one name subsection {sid}")
            sub = Reader(raw, base=base + start)
            value: object
            if sid == MODULE:
                ns.module = value = sub.name("a module name")
            elif sid == LOCALS:
                loc: dict[int, dict[int, str]] = {}
                for _ in range(sub.count("an indirect name map length", 2)):
                    idx = sub.u32("a function index")
                    loc[idx] = _read_namemap(sub)
                ns.locals = loc
                value = {k: dict(v) for k, v in loc.items()}
            else:
                m = _read_namemap(sub)
                value = dict(m)
                setattr(ns, {FUNCTIONS: "functions", GLOBALS: "globals", DATA: "data"}[sid], m)
            if not sub.at_end():
                raise sub.error(f"the end of name subsection {sid}")
            ns._original[sid] = value
        return ns

    def _current(self, sid: int) -> object:
        if sid == MODULE:
            return self.module
        return {FUNCTIONS: self.functions, LOCALS: self.locals, GLOBALS: self.globals,
                DATA: self.data}[sid]

    def _encode_sub(self, sid: int) -> bytes:
        if sid == MODULE:
            assert self.module is not None
            return name(self.module)
        if sid == LOCALS:
            return uleb(len(self.locals)) + b"".join(
                uleb(i) + _encode_namemap(self.locals[i]) for i in sorted(self.locals))
        m = self._current(sid)
        assert isinstance(m, dict)
        return _encode_namemap(m)

    def _present(self, sid: int) -> bool:
        cur = self._current(sid)
        return cur is not None and cur != {}

    def _raw_sub(self, sid: int, raw: bytes) -> bytes:
        size = self._size_lebs.get((sid, raw))
        if size is None:
            size = uleb(len(raw))
        return bytes((sid,)) + size + raw

    def encode(self) -> bytes:
        """The section's contents (after its name)."""
        out: list[bytes] = []
        emitted: set[int] = set()

        def emit_new_before(limit: int) -> None:
            # decoded-kind subsections that are new (absent from the input) go in id order
            for sid in _DECODED:
                if sid < limit and sid not in emitted and self._present(sid):
                    emitted.add(sid)
                    body = self._encode_sub(sid)
                    out.append(bytes((sid,)) + uleb(len(body)) + body)

        for sid, raw in self.subsections:
            emit_new_before(sid)
            if sid in _DECODED:
                if sid in emitted:
                    continue
                emitted.add(sid)
                if sid in self._original and self._original[sid] == self._current(sid):
                    out.append(self._raw_sub(sid, raw))
                elif self._present(sid):
                    body = self._encode_sub(sid)
                    out.append(bytes((sid,)) + uleb(len(body)) + body)
            else:
                out.append(self._raw_sub(sid, raw))
        emit_new_before(256)
        return b"".join(out)
