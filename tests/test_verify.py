"""``--verify``: passes on real outputs, and catches real defects in injected code
(docs/how-it-works.md, "Prove it").

The sabotage tests take a correct output, break one thing in the injected functions at the
instruction level (with the binary layer), and check that ``verify`` fails naming that property.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

import threadify
from tests.programs import READY, TRANSFORMABLE
from tests.tooling import FIXTURES
from threadify.verify import VerificationError, verify
from threadify.wasm import ExternKind, FunctionBody, Instr, Module

SAMPLE = [p for p in TRANSFORMABLE if p.path.name.startswith("tls.") or p.toolchain != "c"]


@pytest.mark.parametrize("program", SAMPLE, ids=[p.id for p in SAMPLE])
def test_verify_passes_on_real_outputs(program: object) -> None:
    output = threadify.transform(program.path.read_bytes())  # type: ignore[attr-defined]
    report = verify(output)
    assert report.runtime_checked and report.threads_per_wave >= 4
    assert len(set(report.blocks)) == report.threads_per_wave


def test_verify_on_already_ready_module_validates_only() -> None:
    data = READY[0].path.read_bytes()
    report = verify(threadify.transform(data))
    assert report.validated and not report.runtime_checked and report.note


Patch = Callable[[list[Instr]], list[Instr]]


def sabotage(output: bytes, function: str, patch: Patch) -> bytes:
    module = Module.decode(output)
    record = json.loads(module.get_custom("threadify") or b"{}")
    index = record["functions"][function] - module.num_imported(ExternKind.FUNC)
    body = module.code[index]
    module.code[index] = FunctionBody.build(body.locals(), patch(body.instructions()))
    return module.encode()


def _drop_stack_pointer_set(instrs: list[Instr]) -> list[Instr]:
    """The thread keeps the linker's stack: every thread shares the main stack."""
    out = list(instrs)
    for pos, ins in enumerate(out):
        if ins.op == "global.set" and pos >= 3 and out[pos - 1].op == "i32.add":
            del out[pos - 3:pos + 1]
            return out
    raise AssertionError("pattern not found")


def _skip_tls_copy(instrs: list[Instr]) -> list[Instr]:
    """The new TLS block is never filled from the template."""
    out = list(instrs)
    for pos, ins in enumerate(out):
        if ins.op == "memory.init":
            del out[pos - 3:pos + 1]
            return out
    raise AssertionError("pattern not found")


def _never_free(instrs: list[Instr]) -> list[Instr]:
    """Released blocks are not put back on the free list (a leak)."""
    return [Instr("end")]


def _everyone_initialises(instrs: list[Instr]) -> list[Instr]:
    """Every instance thinks it is the first and writes the data segments again."""
    out: list[Instr] = []
    for ins in instrs:
        if ins.op == "i32.eqz" and out and out[-1].op == "i32.atomic.rmw.cmpxchg":
            out += [Instr("drop"), Instr("i32.const", (1,))]
        else:
            out.append(ins)
    return out


def _small_blocks(instrs: list[Instr]) -> list[Instr]:
    """Blocks get one page from memory.grow, fewer than their layout needs: they overlap."""
    out = list(instrs)
    for pos, ins in enumerate(out):
        if ins.op == "memory.grow":
            out[pos - 1] = Instr("i32.const", (1,))
            return out
    raise AssertionError("pattern not found")


SABOTAGE = [
    ("wasi_thread_start", _drop_stack_pointer_set, "stack pointer"),
    ("wasi_thread_start", _skip_tls_copy, "template"),
    ("threadify_free_block", _never_free, "reused"),
    ("threadify_init", _everyone_initialises, "written again"),
    ("threadify_alloc_block", _small_blocks, "overlap|out of bounds"),
]
FIXTURES_UNDER_TEST = ["c/wasm/tls.nonshared.wasm", "c/wasm/tls.shared-import-tlsexports.wasm"]
# Class A data is written by lld's own once-only __wasm_init_memory, not by threadify_init, so
# forcing threadify_init's "first instance" branch changes no data there: class B only.
CASES = [(fixture, *case) for fixture in FIXTURES_UNDER_TEST for case in SABOTAGE
         if not (case[2] == "written again" and "shared" in fixture)]


@pytest.mark.parametrize("fixture,function,patch,message", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[3].split('|')[0]}" for c in CASES])
def test_verify_catches_broken_injected_code(fixture: str, function: str, patch: Patch,
                                             message: str) -> None:
    output = threadify.transform((FIXTURES / fixture).read_bytes())
    verify(output)  # the unbroken output passes
    broken = sabotage(output, function, patch)
    with pytest.raises(VerificationError, match=message):
        verify(broken, timeout=20)


def test_verify_module_with_imported_global_and_function() -> None:
    """Imports the checks never use get placeholders (zero global, trapping function)."""
    from tests.tooling import wat2wasm

    text = """(module (import "env" "g" (global i32)) (import "env" "f" (func (param i32)))
      (memory 2 128) (global $sp (mut i32) (i32.const 65536)) (func (export "_start")))"""
    output = threadify.transform(wat2wasm(text), allow_non_atomic=True)
    assert verify(output).runtime_checked


def test_verify_says_when_memory_cannot_hold_the_threads() -> None:
    from tests.tooling import wat2wasm

    text = """(module (memory 2 64) (global $sp (mut i32) (i32.const 65536))
      (func (export "_start")))"""
    output = threadify.transform(wat2wasm(text), allow_non_atomic=True)  # 1 MiB stacks
    with pytest.raises(VerificationError, match="leaves room for 3 thread"):
        verify(output)
    small = threadify.transform(wat2wasm(text), allow_non_atomic=True, stack_size=65536)
    assert verify(small).runtime_checked
