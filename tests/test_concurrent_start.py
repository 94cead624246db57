"""Memory is initialised once, by whichever instance starts first, and an instance that starts
while that is still going on waits for it (docs/abi.md, "Initialised once").

Several instances of a transformed module are instantiated at the same moment (a barrier
releases them together), with no earlier instance: the start functions race. Each instance,
as soon as its instantiation returns, must already see every data segment in place, and the
control block must say the initialisation finished exactly once.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import wasmtime

import threadify
from tests.tooling import FIXTURES
from threadify import abi
from threadify.host.memory import SharedLinearMemory
from threadify.validation import engine
from threadify.verify import segment_writes
from threadify.wasm import Module

CASES = ["c/wasm/globals.nonshared.wasm", "c/wasm/tls.nonshared-stripped.wasm",
         "c/wasm/globals.shared-import.wasm", "cxx/threads.nonshared.wasm", "big"]
BIG = 4 << 20


def big_module() -> bytes:
    """A non-shared module with one 4 MiB active data segment: writing it takes long enough
    for an instance that does not wait to be caught reading memory half-written."""
    from tests.tooling import wat2wasm
    from threadify.wasm import DataSegment

    text = """(module (memory 80 200) (global $sp (mut i32) (i32.const 65536))
      (data (i32.const 65536) "x") (func (export "_start")))"""
    module = Module.decode(wat2wasm(text))
    segment = module.data[0]
    module.data[0] = DataSegment(False, 0, segment.offset, bytes(range(256)) * (BIG // 256))
    return module.encode()


def transformed(case: str) -> bytes:
    if case == "big":
        return threadify.transform(big_module(), allow_non_atomic=True)
    return threadify.transform((FIXTURES / case).read_bytes())
INSTANCES = 4
ROUNDS = 15


def _stand_in_first_instance(memory_type: Any, module: str, name: str, control: int) -> bytes:
    """A module that does what a first instance does before it writes the data — grows memory
    for the control block and sets the init flag to 1 ("initialising") — and then nothing."""
    from tests.tooling import wat2wasm

    limits = memory_type.limits
    maximum = "" if limits.max is None else f" {limits.max}"
    pages = control // abi.PAGE + abi.CONTROL_PAGES
    return wat2wasm(f"""(module
      (import "{module}" "{name}" (memory {limits.min}{maximum} shared))
      (func $take_the_flag
        (drop (memory.grow (i32.sub (i32.const {pages}) (memory.size))))
        (i32.atomic.store (i32.const {control + abi.CTRL_INIT_FLAG}) (i32.const 1)))
      (start $take_the_flag))""")


def _race(output: bytes, first_never_finishes: bool = False) -> list[str]:
    """One race: returns the problems seen (empty when every instance saw complete data).

    ``first_never_finishes``: before the race, a stand-in takes the init flag as the first
    instance would and never writes the data, so every racing instance starts while "the first
    one is still initialising" — the interleaving the wait exists for, forced on every run
    instead of left to the scheduler. Correct code then waits forever: only for sabotaged code.
    """
    module = Module.decode(output)
    record = json.loads(module.get_custom("threadify") or b"{}")
    expected = [(address, bytes(module.data[seg].init[:length]))
                for seg, address, length in segment_writes(module, record)]
    eng = engine()
    compiled = wasmtime.Module(eng, output)
    mem_import = next(i for i in compiled.imports if isinstance(i.type, wasmtime.MemoryType))
    memory = SharedLinearMemory(eng, mem_import.type)
    linker = wasmtime.Linker(eng)
    definer = wasmtime.Store(eng)  # must outlive define_in (a context pointer is taken)
    memory.define_in(linker, definer._context(), mem_import.module, mem_import.name or "")
    linker.define_unknown_imports_as_traps(compiled)
    control = int(record["control_block"])
    if first_never_finishes:
        stand_in = _stand_in_first_instance(mem_import.type, mem_import.module,
                                            mem_import.name or "", control)
        linker.instantiate(wasmtime.Store(eng), wasmtime.Module(eng, stand_in))
    barrier = threading.Barrier(INSTANCES)
    problems: list[str] = []

    def instance(_: int) -> None:
        store: Any = wasmtime.Store(eng)
        try:
            barrier.wait(30)
            linker.instantiate(store, compiled)  # runs threadify_init (and lld's start)
            for address, data in expected:
                if memory.read(address, len(data)) != data:
                    problems.append(f"data at {address:#x} incomplete after instantiation")
                    return
        except Exception as error:  # reported below, never lost in the thread
            problems.append(f"{type(error).__name__}: {error}")

    workers = [threading.Thread(target=instance, args=(i,)) for i in range(INSTANCES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    del definer
    if memory.u32(control + abi.CTRL_INIT_FLAG) != 2:
        problems.append("init flag is not 'done'")
    if memory.u32(control + abi.CTRL_MAGIC) != abi.CONTROL_MAGIC:
        problems.append("control block not initialised")
    return problems


@pytest.mark.parametrize("case", CASES)
def test_instances_started_at_once_all_see_initialised_memory(case: str) -> None:
    output = transformed(case)
    for _round in range(ROUNDS):
        assert _race(output) == []


def test_race_detects_a_missing_wait() -> None:
    """The same check on code whose later instances do not wait, with the first instance held
    in the middle of its initialisation: the instances see memory before it was written — so
    the check above can fail (whatever the scheduler does: the interleaving is forced)."""
    from tests.test_verify import sabotage
    from threadify.wasm import Instr

    def no_wait(instrs: list[Instr]) -> list[Instr]:
        # ``addr; 1; i64.const -1; memory.atomic.wait32; drop; br 1`` (wait, then look again)
        # becomes nothing: a later instance goes on while the first is still writing
        out: list[Instr] = []
        skip = 0
        for ins in instrs:
            if skip:
                skip -= 1
                continue
            if ins.op == "memory.atomic.wait32":
                del out[-3:]
                skip = 2  # the drop and the br
                continue
            out.append(ins)
        return out

    broken = sabotage(transformed("big"), "threadify_init", no_wait)
    problems = _race(broken, first_never_finishes=True)
    assert any("incomplete after instantiation" in p for p in problems), problems
