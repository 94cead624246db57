"""Changing modules: appended functions/globals/types/exports, memory import conversion,
scalar and custom sections, names/producers/target_features."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tooling import assert_valid, print_wat, wat2wasm
from tests.wasm.corpus import DATA
from threadify.wasm import (
    I32,
    Export,
    ExternKind,
    FunctionBuilder,
    FuncType,
    Global,
    GlobalType,
    Import,
    Instr,
    MemoryType,
    Module,
    NameSection,
    Producers,
    TargetFeatures,
)

DEBUG = DATA / "tls_atomics.debug.wasm"


def test_append_function_global_type_export_keeps_body_offsets() -> None:
    data = DEBUG.read_bytes()
    m = Module.decode(data)
    offsets = m.code_body_offsets()
    count = len(m.code)

    b = FunctionBuilder([I32], [I32])
    tmp = b.local(I32)
    with b.block():
        b.emit("local.get", 0).emit("i32.eqz").emit("br_if", 0)
        b.emit("local.get", 0).emit("i32.const", -1).emit("i32.add").emit("local.set", tmp)
    b.emit("local.get", tmp)
    with b.if_(I32):
        b.emit("i32.const", 1)
    with b.else_():
        b.emit("i32.const", 1024).emit("i32.atomic.load", 2, 0, 0)
    gidx = m.add_global(Global(GlobalType(I32, True), bytes([0x41, 0x2A, 0x0B])))
    b.emit("global.get", gidx).emit("i32.add")
    tidx = m.add_type(b.func_type)
    assert m.add_type(b.func_type) == tidx  # reused, not duplicated
    fidx = m.add_function(tidx, b.finish())
    assert m.func_type(fidx) == FuncType((I32,), (I32,))
    m.add_export(Export("threadify_helper", ExternKind.FUNC, fidx))
    with pytest.raises(ValueError):
        m.add_export(Export("threadify_helper", ExternKind.FUNC, fidx))
    ns = m.names()
    assert ns is not None
    ns.functions[fidx] = "threadify_helper_fn"
    ns.globals[gidx] = "threadify_counter"
    m.set_names(ns)

    out = m.encode()
    assert_valid(out)
    m2 = Module.decode(out, eager=True)
    assert len(m2.code) == count + 1
    assert m2.code_body_offsets()[:count] == offsets
    assert m2.code[:count] == m.code[:count]
    # DWARF sections untouched, byte for byte and in place
    assert [n for n, _ in m2.custom_sections()] == [n for n, _ in m.custom_sections()]
    for name, payload in Module.decode(data).custom_sections():
        if name.startswith(".debug"):
            assert m2.get_custom(name) == payload
    wat = print_wat(out)
    assert "$threadify_helper_fn" in wat and "$threadify_counter" in wat
    assert '(export "threadify_helper"' in wat


def test_code_count_width_is_kept() -> None:
    """A padded code-section count keeps its width, so bodies do not move."""
    wat = "(module " + "".join(f"(func (result i32) i32.const {i})" for i in range(3)) + ")"
    data = bytearray(wat2wasm(wat))
    m = Module.decode(bytes(data))
    s = m._known[10]
    # rewrite the code section with a 3-byte count (non-minimal LEB, still valid)
    assert s.payload is not None
    payload = bytes(s.payload)
    padded = bytes([0x83, 0x80, 0x00]) + payload[1:]
    start = s.offset
    data = data[:start] + bytes([10, len(padded)]) + padded
    assert_valid(bytes(data))
    m = Module.decode(bytes(data))
    assert m.encode() == bytes(data)
    before = m.code_body_offsets()
    m.add_function(0, FunctionBuilder([], [I32]).emit("i32.const", 9).finish())
    out = m.encode()
    assert_valid(out)
    assert Module.decode(out).code_body_offsets()[:3] == before


def test_defined_memory_becomes_imported() -> None:
    data = (DATA / "tls_atomics.defined.wasm").read_bytes()
    m = Module.decode(data)
    (mem,) = m.memories
    assert mem.shared and mem.max is not None
    m.memories.clear()
    m.imports.append(Import("env", "memory", ExternKind.MEMORY, mem))
    out = m.encode()
    assert_valid(out)
    m2 = Module.decode(out, eager=True)
    assert m2.memories == []
    assert m2.imports[-1] == Import("env", "memory", ExternKind.MEMORY, mem)
    assert 5 not in m2.section_ids()  # the memory section is gone
    assert m2.num_imported(ExternKind.MEMORY) == 1
    assert m2.code == m.code


def test_new_sections_go_to_canonical_place() -> None:
    m = Module.decode(wat2wasm('(module (func (export "f")) (@custom "late" "x"))'))
    gi = m.add_global(Global(GlobalType(I32, False), b"\x41\x05\x0b"))
    assert gi == 0
    m.memories.append(MemoryType(1, 2, shared=True))
    m.start = 0
    m.data_count = 0
    m.set_custom("added", b"payload")
    out = m.encode()
    assert_valid(out)
    m2 = Module.decode(out)
    # type, function, memory, global, export, start, datacount, code, custom late, added
    assert m2.section_ids() == [1, 3, 5, 6, 7, 8, 12, 10, 0, 0]
    assert [n for n, _ in m2.custom_sections()] == ["late", "added"]
    assert m2.start == 0 and m2.data_count == 0
    m2.start = None
    m2.data_count = None
    assert 8 not in Module.decode(m2.encode()).section_ids()


def test_reading_never_changes_output() -> None:
    data = DEBUG.read_bytes()
    m = Module.decode(data)
    m.decode_all()
    m.names()
    m.custom_sections()
    _ = (m.start, m.data_count, m.type_count(), m.func_type(len(m.functions) - 1))
    ns = m.names()
    assert ns is not None
    m.set_names(ns)  # unchanged names: same bytes
    m.set_custom("producers", m.get_custom("producers") or b"")
    assert m.encode() is data


def test_custom_section_ops() -> None:
    m = Module.decode(wat2wasm('(module (@custom "a" "1") (@custom "b" "2") (@custom "a" "3"))'))
    assert m.custom_sections() == [("a", b"1"), ("b", b"2"), ("a", b"3")]
    m.set_custom("a", b"x")
    assert m.custom_sections() == [("a", b"x"), ("b", b"2"), ("a", b"3")]
    m.remove_custom("a")
    assert m.get_custom("a") is None
    m.set_custom("c", b"")
    assert Module.decode(m.encode()).custom_sections() == [("b", b"2"), ("c", b"")]


@pytest.mark.parametrize("name", ["tls_atomics.debug.wasm", "tls_atomics.defined.wasm"])
def test_name_producers_features_round_trip(name: str) -> None:
    m = Module.decode((DATA / name).read_bytes())
    raw_names = m.get_custom("name")
    assert raw_names is not None
    ns = NameSection.decode(raw_names)
    assert ns.encode() == raw_names
    assert "run" in ns.functions.values()
    assert "__stack_pointer" in ns.globals.values()
    assert ".tdata" in ns.data.values()
    raw_prod = m.get_custom("producers")
    assert raw_prod is not None
    prod = Producers.decode(raw_prod)
    assert prod.encode() == raw_prod
    prod.add("processed-by", "threadify", "0.1.0")
    prod.add("processed-by", "threadify", "0.2.0")
    assert [v for n, v in prod.fields["processed-by"] if n == "threadify"] == ["0.2.0"]
    raw_tf = m.get_custom("target_features")
    assert raw_tf is not None
    tf = TargetFeatures.decode(raw_tf)
    assert tf.encode() == raw_tf
    assert tf.has("atomics") and tf.has("bulk-memory") and not tf.has("no-such-feature")
    m.set_custom("producers", prod.encode())
    out = m.encode()
    assert_valid(out)
    assert "threadify" in print_wat(out)


def test_names_edit_and_new_subsection() -> None:
    m = Module.decode((DATA / "tls_atomics.stripped.wasm").read_bytes())
    assert m.names() is None
    ns = NameSection(functions={0: "first"}, globals={0: "sp"}, module="mod")
    m.set_names(ns)
    out = m.encode()
    wat = print_wat(out)
    assert "$first" in wat and "$sp" in wat and "(module $mod" in wat
    again = Module.decode(out).names()
    assert again is not None
    assert again.functions == {0: "first"} and again.globals == {0: "sp"}


def test_builder_and_instr_helpers() -> None:
    b = FunctionBuilder([I32, I32], [I32])
    a = b.local(I32)
    c = b.local(I32)
    d = b.local(0x7E)
    assert (a, c, d) == (2, 3, 4)
    with b.loop():
        b.emit("local.get", 0).emit("br_if", 0)
    b.emit("local.get", 1).emit("i32.load", 8)  # natural alignment, offset 8
    body = b.finish()
    assert body.locals() == [(2, I32), (1, 0x7E)]
    ops = body.instructions()
    assert ops[-1] == Instr("end")
    assert Instr("i32.load", (2, 8, 0)) in ops
    with pytest.raises(ValueError):
        FunctionBuilder([]).emit("block").finish()


def test_builder_if_else_blocks() -> None:
    """``with b.if_(): ...`` then ``with b.else_(): ...`` give ``if ... else ... end``; an
    ``else_()`` that does not follow an ``if_()`` block is refused."""
    b = FunctionBuilder([I32], [I32])
    b.emit("local.get", 0)
    with b.if_(I32):
        b.i32_const(0xFFFF_FFFF)  # an address >= 2**31 is written as its signed value
    with b.else_():
        b.i32_const(7)
    ops = b.finish().instructions()
    assert [i.op for i in ops] == ["local.get", "if", "i32.const", "else", "i32.const", "end",
                                   "end"]
    assert ops[2].imm == (-1,)
    lone = FunctionBuilder([])
    with lone.block():
        pass
    with pytest.raises(ValueError, match="else_"), lone.else_():
        pass
    after_other = FunctionBuilder([I32])
    with after_other.if_():
        pass
    after_other.emit("nop")
    with pytest.raises(ValueError, match="else_"), after_other.else_():
        pass


def test_list_assignment_and_hashable_items() -> None:
    data = (DATA / "tls_atomics.defined.wasm").read_bytes()
    m = Module.decode(data)
    live = m.exports
    m.exports = [e for e in m.exports if e.name != "wait_for"]
    assert m.exports is live and "wait_for" not in {e.name for e in live}
    seg = m.data[0]
    assert isinstance(seg.init, memoryview)  # decoded segments are views into the input
    copy = type(seg)(seg.passive, seg.memory, seg.offset, bytes(seg.init))
    # memoryview-backed segments compare and hash by value, like a copy holding bytes
    assert seg == copy and hash(seg) == hash(copy) and len({seg, copy}) == 1
    out = m.encode()
    assert_valid(out)
    assert [e.name for e in Module.decode(out).exports] == [e.name for e in live]


def test_removing_a_custom_section_alone_changes_output() -> None:
    data = DEBUG.read_bytes()
    m = Module.decode(data)
    m.remove_custom("no-such-section")
    assert m.encode() is data
    m.remove_custom("producers")
    out = m.encode()
    assert len(out) < len(data) and Module.decode(out).get_custom("producers") is None
    assert_valid(out)


def test_name_append_splices_without_decoding() -> None:
    """Names for appended items are spliced onto the raw maps; the result equals a full
    re-encode, and existing names are untouched."""
    m = Module.decode((DATA / "tls_atomics.debug.wasm").read_bytes())
    raw = m.get_custom("name")
    assert raw is not None
    fast = NameSection.decode(raw)
    fast.append(1, {900: "threadify_new"})
    fast.append(7, {901: "threadify_g"})
    assert 1 not in fast._value  # nothing decoded
    slow = NameSection.decode(raw)
    slow.functions[900] = "threadify_new"
    slow.globals[901] = "threadify_g"
    assert fast.encode() == slow.encode()
    again = NameSection.decode(fast.encode())
    assert again.functions[900] == "threadify_new" and again.globals[901] == "threadify_g"
    assert {k: v for k, v in again.functions.items() if k != 900} == NameSection.decode(
        raw).functions


def test_name_may_contain() -> None:
    raw = Module.decode((DATA / "tls_atomics.debug.wasm").read_bytes()).get_custom("name")
    assert raw is not None
    ns = NameSection.decode(raw)
    assert ns.may_contain("__stack_pointer") and not ns.may_contain("no_such_symbol_name")


@pytest.mark.parametrize("fixture", ["c/wasm/tls.nonshared.wasm", "c/wasm/globals.nonshared.wasm",
                                     "rust/threads_no_core.nonshared.wasm"])
def test_make_data_passive_raw_equals_decoded(fixture: str) -> None:
    """The one-pass byte rewrite of the data section equals the item-by-item rewrite."""
    path = Path(__file__).resolve().parents[2] / "fixtures" / fixture
    raw_path = Module.decode(path.read_bytes())
    summary = raw_path.data_summary()
    writes_raw = raw_path.make_data_passive()
    decoded = Module.decode(path.read_bytes())
    decoded.data  # noqa: B018 - force the decoded path
    writes_decoded = decoded.make_data_passive()
    assert writes_raw == writes_decoded and writes_raw
    assert [(i, o, n) for i, (p, o, n) in enumerate(summary) if not p] == writes_raw
    assert raw_path.encode() == decoded.encode()
    assert raw_path.data_segment_count() == len(summary)
    assert all(seg.passive for seg in raw_path.data)  # the pending chunks, read back
    assert raw_path.encode() == decoded.encode()
    again = Module.decode(raw_path.encode())
    assert all(seg.passive for seg in again.data)
    assert [len(seg.init) for seg in again.data] == [n for _p, _o, n in summary]


def test_name_find_stops_early_and_agrees_with_the_map() -> None:
    raw = Module.decode((DATA / "tls_atomics.debug.wasm").read_bytes()).get_custom("name")
    assert raw is not None
    full = NameSection.decode(raw)
    for sid, mapping in ((1, full.functions), (7, full.globals), (9, full.data)):
        for index, text in mapping.items():
            assert NameSection.decode(raw).find(sid, text) == index
    assert NameSection.decode(raw).find(7, "no_such_global") is None


def test_data_summary_fast_scan_matches_decoded_segments() -> None:
    for path in sorted((Path(__file__).resolve().parents[2] / "fixtures").rglob("*.wasm")):
        data = path.read_bytes()
        fast = Module.decode(data).data_summary()
        decoded = Module.decode(data)
        slow = [(s.passive, None if s.offset is None else bytes(s.offset), len(s.init))
                for s in decoded.data]
        assert fast == slow, path


@pytest.mark.slow
def test_data_scan_on_truncated_or_corrupt_input_raises_only_decode_errors() -> None:
    from threadify.errors import WasmDecodeError

    data = (Path(__file__).resolve().parents[2] / "fixtures/c/wasm/tls.nonshared.wasm").read_bytes()
    for cut in range(8, len(data)):
        for edited in (data[:cut], data[:cut] + b"\x80" + data[cut + 1:]):
            try:
                module = Module.decode(edited)
                module.data_summary()
                module.make_data_passive()
            except WasmDecodeError:
                pass
