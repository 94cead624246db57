"""Function bodies (the code section's items) and a small builder for injected functions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from threadify.wasm.instructions import (
    BlockType,
    Instr,
    encode_instructions,
    read_expression,
    read_valtype,
)
from threadify.wasm.opcodes import BLOCK_OPENERS
from threadify.wasm.reader import Reader
from threadify.wasm.types import FuncType, ValType, _set, _Value, encode_valtype
from threadify.wasm.writer import uleb


def _read_locals(r: Reader) -> list[tuple[int, ValType]]:
    n = r.count("a local declaration count", 2)
    out = []
    for _ in range(n):
        count = r.u32("a local count")
        out.append((count, read_valtype(r)))
    return out


class FunctionBody(_Value, shown=("raw",), compared=("raw",)):
    """A code-section entry: the bytes after its size prefix (locals vector + expression).

    Nothing is decoded until asked for, and nothing decoded is cached: a module with tens of
    thousands of functions costs one ``bytes`` slice per function until a pass looks inside.
    ``base`` is the absolute offset of ``raw`` in the decoded module (0 for built bodies); it
    only serves error messages and does not take part in comparisons. (Written out like the
    items of :mod:`.types`.)
    """

    __slots__ = ("raw", "base")
    _defaults = {"base": 0}
    raw: bytes
    base: int

    def __init__(self, raw: bytes, base: int = 0) -> None:
        _set(self, "raw", raw)
        _set(self, "base", base)

    def locals(self) -> list[tuple[int, ValType]]:
        """Local declarations as ``(count, type)`` groups, as encoded."""
        return _read_locals(Reader(self.raw, base=self.base))

    def instructions(self) -> list[Instr]:
        """The body's instructions, through the final ``end`` (checked to end the body)."""
        r = Reader(self.raw, base=self.base)
        _read_locals(r)
        instrs = read_expression(r)
        if not r.at_end():
            raise r.error("the end of the function body after its final `end`")
        return instrs

    def expression_offset(self) -> int:
        """Offset of the first instruction inside ``raw`` (after the locals)."""
        r = Reader(self.raw, base=self.base)
        _read_locals(r)
        return r.pos

    @classmethod
    def build(cls, locals: Sequence[tuple[int, ValType]], instrs: Sequence[Instr]) -> FunctionBody:
        """Encode a body. A final ``end`` is appended when ``instrs`` do not include it (the
        decision counts block openers against ``end`` s, so a trailing block ``end`` is not
        mistaken for the function's)."""
        depth = 0
        for ins in instrs:
            if ins.op in BLOCK_OPENERS:
                depth += 1
            elif ins.op in ("end", "delegate"):
                depth -= 1
        parts = [uleb(len(locals))]
        for count, vt in locals:
            parts.append(uleb(count))
            parts.append(encode_valtype(vt))
        parts.append(encode_instructions(instrs))
        if depth >= 0:
            parts.append(b"\x0b")
        return cls(b"".join(parts))


class FunctionBuilder:
    """Write injected functions readably::

        b = FunctionBuilder([I32, I32])
        tmp = b.local(I32)
        with b.block():
            b.emit("local.get", 0).emit("i32.eqz").emit("br_if", 0)
            b.emit("local.get", 1).emit("local.set", tmp)
        body = b.finish()
        type_index = module.add_type(b.func_type)

    Memory instructions accept ``emit("i32.load", align, offset, mem)``, or just
    ``emit("i32.load", offset)`` / ``emit("i32.load")`` for natural alignment.
    """

    def __init__(self, params: Sequence[ValType], results: Sequence[ValType] = ()) -> None:
        self.params = tuple(params)
        self.results = tuple(results)
        self._locals: list[ValType] = []
        self.instrs: list[Instr] = []
        self._depth = 0
        self._if_end = -1  #: position of the `end` of the if_() block closed last

    @property
    def func_type(self) -> FuncType:
        return FuncType(self.params, self.results)

    def local(self, valtype: ValType) -> int:
        """A new local of ``valtype``; returns its index (parameters are 0..n-1)."""
        self._locals.append(valtype)
        return len(self.params) + len(self._locals) - 1

    def emit(self, op: str, *imm: Any) -> FunctionBuilder:
        if op in BLOCK_OPENERS:
            self._depth += 1
        elif op == "end":
            self._depth -= 1
        self.instrs.append(Instr(op, tuple(imm)))
        return self

    def emit_code(self, code: bytes) -> FunctionBuilder:
        """Append pre-encoded, straight-line instructions (no blocks, no ``end``).

        For generated code too long to build instruction by instruction, such as the
        thousands of ``memory.init`` a module with many data segments needs.
        """
        self.instrs.append(Instr("<code>", (), raw=bytes(code)))
        return self

    @contextmanager
    def _structured(self, op: str, bt: BlockType) -> Iterator[FunctionBuilder]:
        self.emit(op, bt)
        yield self
        self.emit("end")

    def block(self, bt: BlockType = None) -> Any:
        """``with b.block(): ...`` -- a ``block`` closed by ``end`` on exit."""
        return self._structured("block", bt)

    def loop(self, bt: BlockType = None) -> Any:
        """``with b.loop(): ...`` -- a ``loop`` closed by ``end`` on exit."""
        return self._structured("loop", bt)

    @contextmanager
    def if_(self, bt: BlockType = None) -> Iterator[FunctionBuilder]:
        """``with b.if_(): ...`` -- the then-branch; an ``else_()`` block may follow it."""
        self.emit("if", bt)
        yield self
        self.emit("end")
        self._if_end = len(self.instrs) - 1

    @contextmanager
    def else_(self) -> Iterator[FunctionBuilder]:
        """``with b.else_(): ...`` right after ``with b.if_(): ...`` -- the else-branch.

        Each branch is its own indented block in the Python source, as in the WAT it emits.
        """
        if self._if_end != len(self.instrs) - 1:
            raise ValueError("else_() must directly follow an if_() block")
        self.instrs.pop()  # the if's `end` moves after the else-branch
        self._if_end = -1
        self._depth += 1
        self.emit("else")
        yield self
        self.emit("end")

    def i32_const(self, value: int) -> FunctionBuilder:
        """``i32.const value``, with addresses >= 2**31 written as the signed value they encode."""
        value &= 0xFFFF_FFFF
        return self.emit("i32.const", value - (1 << 32) if value >= 1 << 31 else value)

    def finish(self) -> FunctionBody:
        """The body: locals grouped by consecutive type, instructions, and the final ``end``."""
        if self._depth != 0:
            raise ValueError(f"{self._depth} unclosed block(s) in the built function")
        groups: list[tuple[int, ValType]] = []
        for vt in self._locals:
            if groups and groups[-1][1] == vt:
                groups[-1] = (groups[-1][0] + 1, vt)
            else:
                groups.append((1, vt))
        return FunctionBody.build(groups, [*self.instrs, Instr("end")])
