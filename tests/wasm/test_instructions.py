"""Instruction codec on hand-written modules for what smith does not generate (legacy
exceptions) and for the documented immediate layouts."""

from __future__ import annotations

from tests.tooling import assert_valid, wat2wasm
from threadify.wasm import I32, Instr, Module, TypeIndex, encode_instructions

LEGACY_EH = """
(module
  (tag $e (param i32))
  (func $f (param i32) (result i32)
    try (result i32)
      local.get 0
      throw $e
    catch $e
      i32.const 1
      i32.add
    catch_all
      i32.const 0
    end
    try
      nop
    delegate 0
  )
  (func (result i32)
    try $l (result i32)
      i32.const 5
      call $f
    catch $e
      try
        rethrow $l
      catch_all
      end
      i32.const 9
      drop
    end
  )
)
"""


def _ops(data: bytes) -> list[list[Instr]]:
    return [b.instructions() for b in Module.decode(data, eager=True).code]


def _roundtrip_stripped(bodies: list[list[Instr]]) -> None:
    for instrs in bodies:
        stripped = [Instr(i.op, i.imm) for i in instrs]
        assert encode_instructions(stripped) == encode_instructions(instrs)


def test_legacy_exceptions() -> None:
    data = wat2wasm(LEGACY_EH)
    bodies = _ops(data)
    ops = [i.op for i in bodies[0]]
    assert ops[:3] == ["try", "local.get", "throw"]
    assert "catch" in ops and "catch_all" in ops and "delegate" in ops
    assert bodies[0][0].imm == (I32,)
    assert Instr("delegate", (0,)) in bodies[0]
    assert Instr("rethrow", (1,)) in bodies[1]
    _roundtrip_stripped(bodies)
    assert_valid(Module.decode(data).encode(fresh=True))


def test_immediate_layouts() -> None:
    data = wat2wasm("""
    (module
      (type $t (func (param i32) (result i32)))
      (memory 1 2 shared)
      (memory $m2 i64 1)
      (data $d "abc")
      (table 1 funcref)
      (func (param i32) (result i32)
        (drop (i32.atomic.load offset=8 (local.get 0)))
        (drop (memory.atomic.wait32 offset=4 (local.get 0) (i32.const 0) (i64.const -1)))
        (drop (i8x16.extract_lane_s 15
          (v128.load8_lane $m2 offset=1000 align=1 1 (i64.const 0) (v128.const i64x2 1 2))))
        atomic.fence
        (memory.init $d (i32.const 0) (i32.const 0) (i32.const 3))
        (memory.copy 0 $m2 (i32.const 0) (i64.const 0) (i32.const 1))
        (block (br_table 0 0 0 (i32.const 0)))
        i32.const 7
        block (type $t)
        end
        drop
        (call_indirect (type $t) (i32.const 0) (i32.const 0))
      )
    )""")
    (body,) = _ops(data)
    assert Instr("i32.atomic.load", (2, 8, 0)) in body
    assert Instr("memory.atomic.wait32", (2, 4, 0)) in body
    assert Instr("v128.load8_lane", (0, 1000, 1, 1)) in body
    assert Instr("i8x16.extract_lane_s", (15,)) in body
    assert Instr("atomic.fence") in body
    assert Instr("memory.init", (0, 0)) in body
    assert Instr("memory.copy", (0, 1)) in body
    assert Instr("br_table", ((0, 0), 0)) in body
    assert Instr("call_indirect", (0, 0)) in body
    blocks = [i for i in body if i.op == "block" and i.imm != (None,)]
    assert blocks[0].imm == (TypeIndex(0),) and isinstance(blocks[0].imm[0], TypeIndex)
    consts = [i for i in body if i.op == "v128.const"]
    assert consts[0].imm[0] == (1).to_bytes(8, "little") + (2).to_bytes(8, "little")
    _roundtrip_stripped([body])
    assert_valid(Module.decode(data).encode(fresh=True))


def test_type_index_blocktype_above_63_is_not_a_valtype() -> None:
    """Block type ``(type 127)`` must not be re-encoded as the i32 byte 0x7F."""
    types = "".join(f"(type (func (param {'i32 ' * (k % 3)}) (result i64)))"
                    for k in range(130))
    data = wat2wasm(f"(module {types} (func (result i64) (block (type 127) (i64.const 1))))")
    (body,) = _ops(data)
    bt = body[0].imm[0]
    assert isinstance(bt, TypeIndex) and bt == 127
    stripped = [Instr(i.op, i.imm) for i in body]
    assert encode_instructions(stripped) == encode_instructions(body)
