"""The inline fast paths written for speed (docs/performance.md) agree with the general code
on generated inputs, including the shapes the fast paths hand over to it: the data section
scan, name-map lookups and the ``i32.const`` reader.

Each property builds an input by hand, runs the fast path and an independent reading through
the general decoders, and compares; malformed inputs must raise the same way.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from threadify.errors import WasmDecodeError
from threadify.linker import const_i32, const_i32_all
from threadify.wasm import Module, NameSection, decode_instructions
from threadify.wasm.writer import name, sleb, uleb

HEADER = b"\0asm\x01\0\0\0"
# one memory (1 page): data segments need it to be a sensible module
MEMORY = b"\x05\x03\x01\x00\x01"


def section(sid: int, payload: bytes) -> bytes:
    return bytes((sid,)) + uleb(len(payload)) + payload


def padded_uleb(value: int, width: int) -> bytes:
    return uleb(value, max(width, len(uleb(value))))


def padded_sleb(value: int, width: int) -> bytes:
    raw = bytearray(sleb(value))
    while len(raw) < width:  # non-minimal but valid: extend with sign bits
        raw[-1] |= 0x80
        raw.append(0x7F if value < 0 else 0x00)
    return bytes(raw)


segment = st.one_of(
    # active, memory 0: i32.const with a 1..5-byte LEB (the fast path takes up to 4)
    st.tuples(st.just(0), st.integers(-(2**31), 2**31 - 1), st.integers(1, 5),
              st.binary(max_size=40), st.integers(1, 3)),
    # passive
    st.tuples(st.just(1), st.just(0), st.just(1), st.binary(max_size=40), st.integers(1, 3)),
    # active with an explicit memory index 0
    st.tuples(st.just(2), st.integers(0, 2**20), st.integers(1, 3), st.binary(max_size=40),
              st.integers(1, 2)),
)


def encode_segment(seg: tuple[int, int, int, bytes, int]) -> bytes:
    flags, offset, width, data, len_width = seg
    out = uleb(flags)
    if flags == 2:
        out += b"\x00"
    if flags != 1:
        out += b"\x41" + padded_sleb(offset, width) + b"\x0b"
    return out + padded_uleb(len(data), len_width) + data


def reference_summary(module: Module) -> list[tuple[bool, bytes | None, int]]:
    return [(seg.passive, None if seg.offset is None else bytes(seg.offset), len(seg.init))
            for seg in module.data]


@settings(max_examples=150, deadline=None)
@given(st.lists(segment, max_size=12))
def test_data_scan_matches_decoded_segments(segments: list[Any]) -> None:
    payload = uleb(len(segments)) + b"".join(encode_segment(s) for s in segments)
    data = HEADER + section(5, MEMORY[2:]) + section(11, payload)
    fast = Module.decode(data)
    slow = Module.decode(data)
    assert fast.data_summary() == reference_summary(slow)
    writes = fast.make_data_passive()
    decoded = Module.decode(data)
    decoded.data  # noqa: B018 - force the item-by-item path
    assert writes == decoded.make_data_passive()
    # the byte rewrite keeps each segment's own length LEB (the decoded path re-encodes it
    # minimally), so the outputs are compared segment by segment
    assert Module.decode(fast.encode()).data == Module.decode(decoded.encode()).data
    if all(s[4] == 1 and (s[0] == 1 or s[2] == len(sleb(s[1]))) for s in segments):
        assert fast.encode() == decoded.encode()  # minimal encodings: the same bytes


@settings(max_examples=150, deadline=None)
@given(st.lists(segment, min_size=1, max_size=6), st.data())
def test_data_scan_rejects_truncation_like_the_decoder(segments: list[Any],
                                                       draw: st.DataObject) -> None:
    payload = uleb(len(segments)) + b"".join(encode_segment(s) for s in segments)
    cut = draw.draw(st.integers(1, len(payload) - 1))
    data = HEADER + section(5, MEMORY[2:]) + section(11, payload[:cut])
    fast_error = slow_error = None
    try:
        Module.decode(data).data_summary()
    except WasmDecodeError as error:
        fast_error = error
    try:
        Module.decode(data).data  # noqa: B018
    except WasmDecodeError as error:
        slow_error = error
    assert (fast_error is None) == (slow_error is None)


names = st.dictionaries(st.integers(0, 5000),
                        st.text(alphabet=st.sampled_from("ab_.é€\x00"), max_size=6),
                        max_size=30)


@settings(max_examples=200, deadline=None)
@given(names, st.text(alphabet=st.sampled_from("ab_.é€"), max_size=6))
def test_name_find_matches_the_decoded_map(mapping: dict[int, str], wanted: str) -> None:
    body = uleb(len(mapping)) + b"".join(uleb(i) + name(mapping[i]) for i in sorted(mapping))
    raw = bytes((1,)) + uleb(len(body)) + body
    expected = next((i for i in sorted(mapping) if mapping[i] == wanted), None)
    assert NameSection.decode(raw).find(1, wanted) == expected
    for index, text in mapping.items():
        first = next(i for i in sorted(mapping) if mapping[i] == text)
        assert NameSection.decode(raw).find(1, text) == first
        del index


def test_name_find_reports_a_malformed_map_before_the_match() -> None:
    body = uleb(2) + uleb(0) + b"\x02\xff\xfe" + uleb(1) + name("__stack_pointer")
    raw = bytes((7,)) + uleb(len(body)) + body
    try:
        NameSection.decode(raw).find(7, "__stack_pointer")
    except WasmDecodeError as error:
        assert "UTF-8" in str(error)
    else:
        raise AssertionError("a name that is not UTF-8 before the match must be reported")


@given(st.binary(max_size=8))
def test_const_i32_matches_the_instruction_decoder(expr: bytes) -> None:
    try:
        instrs = decode_instructions(expr)
    except Exception:
        expected = None
    else:
        expected = (instrs[0].imm[0] if len(instrs) == 2 and instrs[0].op == "i32.const"
                    and instrs[1].op == "end" else None)
    assert const_i32(expr) == expected


@given(st.integers(-(2**31), 2**31 - 1), st.integers(1, 5))
def test_const_i32_reads_every_width(value: int, width: int) -> None:
    assert const_i32(b"\x41" + padded_sleb(value, width) + b"\x0b") == value


offsets_of_one_width = st.integers(1, 5).flatmap(lambda width: st.lists(
    st.integers(-(2**31), 2**31 - 1).map(
        lambda value: b"\x41" + padded_sleb(value, width) + b"\x0b"),
    max_size=40))


@given(st.one_of(offsets_of_one_width, st.lists(st.binary(max_size=8), max_size=40)),
       st.lists(st.tuples(st.integers(0, 39), st.integers(0, 7), st.integers(0, 255)),
                max_size=3))
def test_const_i32_all_reads_as_const_i32(exprs: list[bytes],
                                          damage: list[tuple[int, int, int]]) -> None:
    """The bulk reader gives every value const_i32 gives, or hands the lot back (None) — never
    a different value; lld's usual offsets (non-negative, up to 4 LEB bytes) are all read."""
    exprs = list(exprs)
    for index, at, byte in damage:  # a byte changed here and there: a shape it must refuse
        if index < len(exprs) and at < len(exprs[index]):
            raw = bytearray(exprs[index])
            raw[at] = byte
            exprs[index] = bytes(raw)
    expected = [const_i32(e) for e in exprs]
    got = const_i32_all(exprs)
    if got is not None:
        assert got == expected
    elif exprs and all(e[:1] == b"\x41" and len(e) <= 6 and len(e) == len(exprs[0])
                       for e in exprs) and not damage and None not in expected:
        # in lld's usual shape: only negative values are refused
        assert min(v for v in expected if v is not None) < 0


def test_const_i32_all_reads_lld_offsets() -> None:
    """The shapes of the corpus (CRuby's 10 000 offsets: four LEB bytes each) are read in
    bulk, whatever the LEB's width up to 4 bytes."""
    for width, top in ((1, 2**6), (2, 2**13), (3, 2**20), (4, 2**27)):
        offsets = [i * (top // 5000) for i in range(5000)] + [top - 1, 0, 1, 63]
        exprs = [b"\x41" + padded_sleb(v, width) + b"\x0b" for v in offsets]
        assert const_i32_all(exprs) == offsets
