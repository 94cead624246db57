"""Bounds-checked reading of WebAssembly binary primitives.

Every decoder in this package reads through a :class:`Reader`, so malformed input always ends
in :class:`~threadify.errors.WasmDecodeError` naming the absolute byte offset in the module,
never in ``IndexError`` or a hang: every read checks the end of its window, LEBs are limited to
the length and value range of their type, vector counts are checked against the bytes left
before anything is allocated, and names must be UTF-8.
"""

from __future__ import annotations

from threadify.errors import WasmDecodeError


def uleb32_at(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """The unsigned LEB128 of at most 5 bytes at ``data[pos]`` and the position after it, or
    ``(-1, pos)`` when it runs past ``end`` or past 5 bytes; whether the value fits in 32 bits
    is left to the caller.

    For hot loops over raw ``bytes`` that cannot afford a :class:`Reader` call per field: on
    ``-1`` they fall back to a Reader, which reports where the input is malformed.
    """
    start = pos
    value = shift = 0
    while True:
        if pos >= end or pos - start >= 5:
            return -1, pos
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def uleb32_error(data: bytes | memoryview, pos: int, end: int, base: int,
                 what: str) -> WasmDecodeError:
    """Why the u32 LEB at ``data[pos]`` is malformed (cut short, longer than 5 bytes, beyond
    u32), in a :class:`Reader`'s words, for a caller whose :func:`uleb32_at` did not read it."""
    try:
        Reader(data, pos, end, base).u32(what)
    except WasmDecodeError as error:
        return error
    return WasmDecodeError(base + pos, what)


def sleb32_at(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int] | None:
    """The signed LEB128 at ``data[pos]`` as an s32 and the position after it, or ``None`` when
    it runs past ``end``, takes more than 5 bytes or leaves the s32 range.

    Like :func:`uleb32_at`, for code that reads many small constant expressions (one offset per
    data segment) and cannot afford a :class:`Reader` for each; ``None`` means "not this shape",
    and a caller that needs to say why reads the bytes again with a Reader.
    """
    start = pos
    value = shift = 0
    while True:
        if pos >= end or pos - start >= 5:
            return None
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if byte & 0x40:
                value -= 1 << shift
            return (value, pos) if -(1 << 31) <= value < (1 << 31) else None


class Reader:
    """A cursor over ``data[pos:end]``; ``base`` is the absolute module offset of ``data[0]``.

    ``data`` may be ``bytes`` or a ``memoryview`` (indexing a memoryview of ``bytes`` yields
    ``int`` just like ``bytes``).
    """

    __slots__ = ("data", "pos", "end", "base")

    def __init__(self, data: bytes | memoryview, pos: int = 0, end: int | None = None,
                 base: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.base = base

    # -- errors -------------------------------------------------------------------------------

    def error(self, expected: str, pos: int | None = None) -> WasmDecodeError:
        """An error at ``pos`` (default: the cursor), in absolute module offsets."""
        return WasmDecodeError(self.base + (self.pos if pos is None else pos), expected)

    def at_end(self) -> bool:
        return self.pos >= self.end

    def remaining(self) -> int:
        return self.end - self.pos

    # -- fixed-size reads ---------------------------------------------------------------------

    def u8(self, what: str = "a byte") -> int:
        pos = self.pos
        if pos >= self.end:
            raise self.error(what + " (unexpected end)")
        self.pos = pos + 1
        return self.data[pos]

    def peek(self, what: str = "a byte") -> int:
        if self.pos >= self.end:
            raise self.error(what + " (unexpected end)")
        return self.data[self.pos]

    def take(self, n: int, what: str = "bytes") -> bytes:
        """``n`` bytes as ``bytes`` (a copy; use :meth:`view` for zero-copy)."""
        pos = self.pos
        if n < 0 or pos + n > self.end:
            raise self.error(f"{n} bytes of {what} (only {self.end - pos} left)")
        self.pos = pos + n
        return bytes(self.data[pos:pos + n])

    def view(self, n: int, what: str = "bytes") -> bytes | memoryview:
        """``n`` bytes without copying when ``data`` is a memoryview."""
        pos = self.pos
        if n < 0 or pos + n > self.end:
            raise self.error(f"{n} bytes of {what} (only {self.end - pos} left)")
        self.pos = pos + n
        return self.data[pos:pos + n]

    # -- LEB128 -------------------------------------------------------------------------------

    def uleb(self, bits: int = 32, what: str = "an unsigned LEB128") -> int:
        data = self.data
        pos = self.pos
        end = self.end
        if pos + 1 < end:  # fast paths: one or two bytes (always within range)
            b = data[pos]
            if b < 0x80:
                self.pos = pos + 1
                return b
            b2 = data[pos + 1]
            if b2 < 0x80:
                self.pos = pos + 2
                return (b & 0x7F) | (b2 << 7)
        elif pos < end:
            b = data[pos]
            if b < 0x80:
                self.pos = pos + 1
                return b
        start = pos
        result = 0
        shift = 0
        maxlen = (bits + 6) // 7
        while True:
            if pos >= end:
                raise self.error(what + " (unexpected end)", start)
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
            if pos - start >= maxlen:
                raise self.error(what + f" of at most {maxlen} bytes", start)
        if result >> bits:
            raise self.error(what + f" within u{bits}", start)
        self.pos = pos
        return result

    def u32(self, what: str = "a u32") -> int:
        return self.uleb(32, what)

    def sleb(self, bits: int, what: str = "a signed LEB128") -> int:
        data = self.data
        pos = self.pos
        end = self.end
        start = pos
        result = 0
        shift = 0
        maxlen = (bits + 6) // 7
        while True:
            if pos >= end:
                raise self.error(what + " (unexpected end)", start)
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
            if pos - start >= maxlen:
                raise self.error(what + f" of at most {maxlen} bytes", start)
        if b & 0x40:
            result -= 1 << shift
        if not -(1 << (bits - 1)) <= result < (1 << (bits - 1)):
            raise self.error(what + f" within s{bits}", start)
        self.pos = pos
        return result

    # -- composite ----------------------------------------------------------------------------

    def count(self, what: str = "a vector length", min_item_size: int = 1) -> int:
        """A vector length, checked against the bytes left so no huge allocation can follow."""
        start = self.pos
        n = self.uleb(32, what)
        if n * min_item_size > self.end - self.pos:
            raise self.error(f"{what} that fits in the remaining {self.end - self.pos} bytes "
                             f"(got {n})", start)
        return n

    def name(self, what: str = "a name") -> str:
        start = self.pos
        n = self.uleb(32, what + " length")
        pos = self.pos
        if n > self.end - pos:
            raise self.error(f"{what} length that fits in the remaining {self.end - pos} bytes "
                             f"(got {n})", start)
        try:
            text = str(self.data[pos:pos + n], "utf-8")
        except UnicodeDecodeError:
            raise self.error(what + " in UTF-8", start) from None
        self.pos = pos + n
        return text

