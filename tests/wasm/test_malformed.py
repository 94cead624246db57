"""Malformed input always ends in WasmDecodeError (never IndexError & co, never a hang)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tooling import wat2wasm
from tests.wasm.corpus import DATA, smith_module
from threadify.errors import WasmDecodeError
from threadify.wasm import FunctionBody, Module, decode_instructions

SMALL = (DATA / "tls_atomics.debug.wasm").read_bytes()


def _boundaries(data: bytes) -> set[int]:
    m = Module.decode(data)
    return {8} | {s.payload_offset + len(s.payload or b"") for s in m._sections}


def test_truncation_at_every_offset() -> None:
    ok = _boundaries(SMALL)
    for n in range(len(SMALL)):
        prefix = SMALL[:n]
        if n in ok:
            m = Module.decode(prefix, eager=True)
            assert m.encode() == prefix
        else:
            with pytest.raises(WasmDecodeError) as info:
                Module.decode(prefix, eager=True)
            assert 0 <= info.value.offset <= n


def _sources() -> list[bytes]:
    # a linked C module (DWARF, name section, atomics) and smith modules exercising GC types,
    # compact imports, exceptions, SIMD and multi-memory
    out = [SMALL]
    for fs, seed in (("default", 5), ("threads-simd", 7), ("exceptions-tailcall-gc", 9),
                     ("memory64-multimem-pages", 11)):
        mod = smith_module(fs, seed)
        if mod is not None and len(mod) > 16:
            out.append(mod)
    return out


@pytest.mark.parametrize("source", [0, *(pytest.param(s, marks=pytest.mark.slow)
                                         for s in range(1, 5))])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_mutations(source: int, data: st.DataObject) -> None:
    sources = _sources()
    if source >= len(sources):
        return
    buf = bytearray(sources[source])
    for _ in range(data.draw(st.integers(1, 6))):
        if len(buf) <= 9:
            break
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        pos = data.draw(st.integers(8, len(buf) - 1))
        if op == "flip":
            buf[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set":
            buf[pos] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x40, 0x0B]))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del buf[pos:pos + data.draw(st.integers(1, 8))]
    mutated = bytes(buf)
    try:
        m = Module.decode(mutated, eager=True)
    except WasmDecodeError as exc:
        assert 0 <= exc.offset <= len(mutated)
        return
    assert m.encode() == mutated


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_random_instruction_bytes(raw: bytes) -> None:
    try:
        decode_instructions(raw)
    except WasmDecodeError:
        pass
    try:
        FunctionBody(raw).instructions()
    except WasmDecodeError:
        pass


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "magic"),
    (b"\x7fELF\x02\x01\x01\x00", "magic"),
    (b"\0asm", "version"),
    (b"\0asm\x0d\x00\x01\x00", "component"),
    (b"\0asm\x02\x00\x00\x00", "version 1 (got 2)"),
])
def test_bad_header(data: bytes, expected: str) -> None:
    with pytest.raises(WasmDecodeError) as info:
        Module.decode(data)
    assert expected in str(info.value)
    assert "\n" not in info.value.problem


def test_real_component_is_rejected() -> None:
    component = wat2wasm("(component)")
    with pytest.raises(WasmDecodeError, match="this is a component"):
        Module.decode(component)


@pytest.mark.parametrize(("payload", "what"), [
    # type section declaring 2**32-1 entries: refused before allocating anything
    (b"\x01\x05\xff\xff\xff\xff\x0f", "fits in the remaining"),
    # section size larger than the file
    (b"\x01\x7f\x00", "section of 127 bytes"),
    # LEB longer than 5 bytes
    (b"\x01\x07\x80\x80\x80\x80\x80\x80\x00", "at most 5 bytes"),
    # custom section name that is not UTF-8
    (b"\x00\x03\x02\xff\xfe", "UTF-8"),
    # unknown section id
    (b"\x0e\x00", "known section id"),
    # sections out of order (function before type)
    (b"\x03\x01\x00\x01\x01\x00", "out of place"),
    # duplicate section
    (b"\x01\x01\x00\x01\x01\x00", "at most one type section"),
    # trailing bytes after the last item of a section
    (b"\x01\x02\x00\x00", "the end of the type section"),
    # function body whose expression never ends
    (b"\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x05\x01\x03\x00\x02\x40", "unexpected end"),
    # unknown opcode
    (b"\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x05\x01\x03\x00\xff\x0b", "known opcode"),
])
def test_specific_malformations(payload: bytes, what: str) -> None:
    data = b"\0asm\x01\0\0\0" + payload
    with pytest.raises(WasmDecodeError, match=what):
        Module.decode(data, eager=True)


def test_lazy_errors_surface_on_access() -> None:
    """Item errors appear when the section is first accessed; eager decoding reports them."""
    bad_import = b"\0asm\x01\0\0\0" + b"\x02\x05\x01\x00\x00\x09\x00"
    m = Module.decode(bad_import)
    with pytest.raises(WasmDecodeError, match="import kind"):
        m.imports  # noqa: B018
    with pytest.raises(WasmDecodeError, match="import kind") as info:
        Module.decode(bad_import, eager=True)
    assert info.value.offset == 13  # the kind byte
