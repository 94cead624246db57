"""Encoding of WebAssembly binary primitives (minimal LEB128 unless a width is asked for)."""

from __future__ import annotations

_SMALL_ULEB = [bytes((i,)) for i in range(128)]
#: One-byte signed LEB128s, indexed by ``value & 0x7F`` (values -64 to 63).
_SMALL_SLEB = [bytes((i,)) for i in range(128)]


def uleb(value: int, width: int | None = None) -> bytes:
    """Unsigned LEB128; with ``width``, padded to exactly ``width`` bytes (it must fit)."""
    if value < 0:
        raise ValueError(f"negative value {value} for an unsigned LEB128")
    if width is None and value < 0x4000:  # the usual indices and lengths: no loop
        if value < 0x80:
            return _SMALL_ULEB[value]
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value == 0 and (width is None or len(out) + 1 >= width):
            out.append(b)
            break
        out.append(b | 0x80)
    if width is not None and len(out) != width:
        raise ValueError(f"value does not fit in a {width}-byte LEB128")
    return bytes(out)


def uleb_width(value: int) -> int:
    """Number of bytes of the minimal unsigned LEB128 of ``value``."""
    return max(1, (value.bit_length() + 6) // 7)


def sleb(value: int) -> bytes:
    """Minimal signed LEB128."""
    if -0x2000 <= value < 0x2000:  # one or two bytes: no loop (segment code has thousands)
        if -0x40 <= value < 0x40:
            return _SMALL_SLEB[value & 0x7F]
        return bytes(((value & 0x7F) | 0x80, (value >> 7) & 0x7F))
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if (value == 0 and not b & 0x40) or (value == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def name(text: str) -> bytes:
    raw = text.encode("utf-8")
    return uleb(len(raw)) + raw


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)
