"""Exact round trip and encoder correctness on random and real modules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.tooling import FIXTURES, assert_valid, slow_unless, slow_unless_cases
from tests.wasm.corpus import DATA, real_modules, smith_cases, smith_module
from threadify.wasm import (
    F64,
    I32,
    I64,
    FuncType,
    Instr,
    Module,
    decode_instructions,
    encode_instructions,
)
from threadify.wasm.module import _VectorSection
from threadify.wasm.reader import Reader


def _payloads(data: bytes) -> list[tuple[int, bytes]]:
    return [(s.id, bytes(s.payload)) for s in Module.decode(data)._sections
            if s.payload is not None]


def _check_items_reencode(m: Module) -> None:
    """Every item's encoder output decodes back to an equal item."""
    for s in m._sections:
        if isinstance(s, _VectorSection):
            for item in s.items:
                r = Reader(s.encoder(item))
                got = s.reader(r)
                assert r.at_end()
                assert got == item


def _const_exprs(m: Module) -> list[bytes]:
    exprs = [g.init for g in m.globals]
    exprs += [d.offset for d in m.data if d.offset is not None]
    exprs += [t.init for t in m.tables if t.init is not None]
    return exprs


def _check_instructions(m: Module) -> int:
    """decode -> encode is the identity, and re-encoding without ``raw`` decodes to the same
    ops and immediates. Returns the number of instructions checked."""
    n = 0
    for body in m.code:
        instrs = body.instructions()
        start = body.expression_offset()
        assert encode_instructions(instrs) == body.raw[start:]
        stripped = [Instr(i.op, i.imm) for i in instrs]
        again = decode_instructions(encode_instructions(stripped))
        assert [(i.op, i.imm) for i in again] == [(i.op, i.imm) for i in instrs]
        n += len(instrs)
    for expr in _const_exprs(m):
        instrs = decode_instructions(expr)
        assert encode_instructions(instrs) == expr
        stripped = [Instr(i.op, i.imm) for i in instrs]
        assert decode_instructions(encode_instructions(stripped)) == instrs
    return n


@pytest.mark.parametrize(("feature_set", "seed"),
                         slow_unless_cases(lambda case: case[1] < 2, smith_cases(),
                                           ids=lambda case: f"{case[0]}-{case[1]}"))
def test_smith_round_trip(feature_set: str, seed: int) -> None:
    data = smith_module(feature_set, seed)
    if data is None:
        pytest.skip("smith declined this seed")
    m = Module.decode(data, eager=True)
    assert m.encode() == data
    # a changed section is rebuilt from the original bytes of its untouched items, and the
    # other sections are not touched at all
    m2 = Module.decode(data)
    new = FuncType((I32, I64), (F64,))
    m2.types.append(new)
    out = m2.encode()
    assert_valid(out)
    m3 = Module.decode(out, eager=True)
    assert m3.types == m.types + [new]
    before, after = _payloads(data), _payloads(out)
    assert [x for x in after if x[0] != 1] == [x for x in before if x[0] != 1]
    old_types = dict(before).get(1, b"\x00")
    assert dict(after)[1][1:].startswith(old_types[1:])  # 1-byte counts in smith output
    # renaming an import rebuilds the import section, splitting a compact-encoding group
    if m.imports:
        m4 = Module.decode(data)
        last = m4.imports[-1]
        m4.imports[-1] = dataclasses.replace(last, name=last.name + "_renamed")
        out = m4.encode()
        assert_valid(out)
        assert Module.decode(out).imports == m4.imports
    _check_items_reencode(m)
    _check_instructions(m)
    fresh = m.encode(fresh=True)
    assert_valid(fresh)
    assert Module.decode(fresh, eager=True).encode() == fresh


def _real_id(p: Path) -> str:
    return str(p.relative_to(p.parents[2]))


# The fast loop round-trips the compiler outputs of tests/wasm/data and one module per producer.
FAST_REAL = {"c/wasm/tls.shared-import.wasm", "rust/threads_no_core.wasm", "zig/std_thread.wasm",
             "cxx/threads.shared-import.wasm"}


def _fast_real(p: Path) -> bool:
    return p.parent == DATA or (p.is_relative_to(FIXTURES)
                                and str(p.relative_to(FIXTURES)) in FAST_REAL)


@pytest.mark.parametrize("path", slow_unless(_fast_real, real_modules(), ids=_real_id))
def test_real_round_trip(path: Path) -> None:
    data = path.read_bytes()
    m = Module.decode(data, eager=True)
    assert m.encode() == data
    assert m.encode() is data  # unchanged: no copy at all
    _check_items_reencode(m)
    assert _check_instructions(m) > 0
    fresh = m.encode(fresh=True)
    assert_valid(fresh)
    # custom sections survive in place, byte for byte
    assert Module.decode(fresh).custom_sections() == m.custom_sections()


def test_padded_lebs_survive() -> None:
    """lld and object files pad LEBs (relocations); the fresh encoding is smaller, the
    round trip is exact."""
    from tests.wasm.corpus import DATA

    data = (DATA / "tls_atomics.o").read_bytes()
    m = Module.decode(data)
    assert len(m.encode(fresh=True)) < len(data)
    assert m.encode() == data
    body = m.code[0]
    padded = [i for i in body.instructions()
              if i.raw is not None and len(i.raw) > len(encode_instructions([Instr(i.op, i.imm)]))]
    assert padded, "expected relocatable (5-byte) LEB immediates in an object file"
