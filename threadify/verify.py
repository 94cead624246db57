"""``--verify``: prove an output works by running its injected thread start-up
(docs/how-it-works.md, "Prove it").

The check does not depend on the program spawning threads itself, so it works for any accepted
module (a library with no ``_start`` too). It runs on the bundled host's engine set-up
(wasmtime-py, one Store per thread, the shared memory of :mod:`threadify.host.memory`):

1. the output is validated with threads enabled;
2. the **main instance** is created: its start function writes memory once;
3. verify then overwrites every data segment's destination with a different pattern — if any
   later instance wrote its data again, the pattern would be gone;
4. a **first wave** of ``threads`` (≥ 4) thread instances is started, each on its own OS thread,
   through the real ``wasi_thread_start``; its ``func`` is a probe that records the thread's
   ``__stack_pointer``, ``__tls_base`` and block, compares the TLS block with the template, then
   waits at a barrier until every thread of the wave is inside — all stacks and TLS blocks are
   live at once — and scribbles over its TLS block before returning;
5. a **second wave** of the same size checks that released blocks are reused (and re-initialised);
6. ``threadify_thread_destroy`` on the main instance must change nothing.

Checked: distinct, non-overlapping blocks beyond the module's data and the main stack; stack
pointer at the top of the block's stack; TLS base where the layout says and equal to the
template; data written exactly once; blocks reused, none created in the second wave.

With ``--stack-check`` (docs/stack-check.md) verify also proves that an overflow traps:

7. statically, every ``global.set`` of the stack pointer in the program's functions is followed
   by exactly the check sequence (every body that holds the bytes of such a write is decoded);
8. dynamically, a probe function in the twin moves the stack pointer and then runs that same
   sequence: on a fresh instance (the main thread's limits, from lld's layout) and inside every
   thread of the first wave (limits = its own block's stack, as ``wasi_thread_start`` set them),
   the lowest allowed value passes and one 16 bytes lower traps in ``threadify_stack_overflow``.

To observe a thread from inside, verify runs a *probe twin* of the output: the same module plus
exports of the stack-pointer, TLS-base and block globals and one extra function-table slot for
the probe. The injected code, the start functions it calls and the memory layout are those of
the output itself; function bodies the injected code cannot reach are replaced by
``unreachable`` (they never run here, and compiling them would dominate the time on large
modules). The whole output is validated first.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from threadify import abi
from threadify.errors import Hint, Suggestion, ThreadifyError
from threadify.passes import stack_check
from threadify.passes.metadata import read_section
from threadify.wasm import (
    I32,
    Export,
    ExternKind,
    FunctionBody,
    FuncType,
    Module,
    TableType,
    codescan,
)
from threadify.wasm.writer import uleb

PROBE_SP = "threadify_probe_stack_pointer"
PROBE_TLS = "threadify_probe_tls_base"
PROBE_BLOCK = "threadify_probe_block"
PROBE_TABLE = "threadify_probe_table"
PROBE_LOW = "threadify_probe_stack_low"
PROBE_HIGH = "threadify_probe_stack_high"
PROBE_MOVE = "threadify_probe_move_stack"
#: Start structs are written into the control block's page, past the control fields (outputs
#: whose control block has its own page; otherwise just below it, on the idle main stack).
SCRATCH_OFFSET = 4096


class VerificationError(ThreadifyError):
    """``--verify`` found a property that does not hold; the message names it."""


@dataclass
class ThreadObservation:
    tid: int
    block: int = 0
    stack_pointer: int = 0
    tls_base: int | None = None
    tls_ok: bool = True
    error: str | None = None
    stack_probe: str | None = None  #: what the --stack-check probe found wrong


@dataclass
class VerifyReport:
    """What ``--verify`` checked (all passed when it is returned)."""

    validated: bool = False
    runtime_checked: bool = False
    threads_per_wave: int = 0
    blocks: list[int] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"validated": self.validated, "runtime_checked": self.runtime_checked,
                "threads_per_wave": self.threads_per_wave,
                "blocks": [hex(b) for b in self.blocks], "checks": self.checks,
                "note": self.note}


def validate(data: bytes) -> None:
    """Raise :class:`VerificationError` unless ``data`` validates (threads and every other
    proposal enabled; see :func:`threadify.validation.validate`)."""
    from threadify.validation import InvalidModuleError
    from threadify.validation import validate as validate_module

    try:
        validate_module(data)
    except InvalidModuleError as error:
        reason = error.problem.split(": ", 1)[-1]
        raise VerificationError(
            f"output does not validate (threads enabled): {reason}") from None


def segment_writes(module: Module, record: dict[str, Any]) -> list[tuple[int, int, int]]:
    """``(segment, address, length)`` of every constant-address ``memory.init`` at start-up.

    Both lld's ``__wasm_init_memory`` and threadify's ``threadify_init`` write segments as
    ``i32.const dst; i32.const 0; i32.const len; memory.init seg``.
    """
    first = module.num_imported(ExternKind.FUNC)
    starts = [record["functions"]["threadify_init"]]
    init_instrs = module.code[starts[0] - first].instructions()
    starts += [i.imm[0] for i in init_instrs if i.op == "call" and isinstance(i.imm[0], int)
               and i.imm[0] >= first and i.imm[0] not in record["functions"].values()]
    writes = []
    for funcidx in starts:
        instrs = module.code[funcidx - first].instructions()
        for pos in range(3, len(instrs)):
            ins = instrs[pos]
            if ins.op != "memory.init":
                continue
            window = instrs[pos - 3:pos]
            if all(w.op == "i32.const" for w in window) and window[1].imm[0] == 0:
                dst = int(window[0].imm[0]) & 0xFFFFFFFF
                writes.append((int(ins.imm[0]), dst, int(window[2].imm[0])))
    return writes


def _probe_twin(module: Module, record: dict[str, Any]) -> tuple[bytes, int]:
    """The output plus probe exports and one spare table slot; returns (bytes, slot)."""
    module.add_export(Export(PROBE_SP, ExternKind.GLOBAL, record["stack_pointer"]))
    module.add_export(Export(PROBE_BLOCK, ExternKind.GLOBAL,
                             record["globals"]["threadify_block"]))
    if record.get("tls_base") is not None:
        module.add_export(Export(PROBE_TLS, ExternKind.GLOBAL, record["tls_base"]))
    if module.num_imported(ExternKind.TABLE):
        # the bundled host provides WASI and the memory, not the embedder's table
        raise VerificationError(
            "cannot verify a module whose function table is imported (--import-table): the "
            "bundled host cannot provide it",
            "transform without verifying, or link without --import-table to verify")
    table = module.tables[0]
    slot = table.min
    module.tables[0] = TableType(table.elem, table.min + 1,
                                 None if table.max is None else table.max + 1,
                                 table.table64, table.init)
    module.add_export(Export(PROBE_TABLE, ExternKind.TABLE, 0))
    _stub_unreachable_code(module, record)
    checks = record.get("stack_check")
    if isinstance(checks, dict):
        _add_stack_probe(module, record)
    return module.encode(), slot


def _stack_sequence(record: dict[str, Any]) -> bytes:
    """The check sequence ``--stack-check`` puts after every stack-pointer write."""
    globals_ = record["globals"]
    limits = stack_check.LimitGlobals(int(globals_[stack_check.STACK_LOW]),
                                      int(globals_[stack_check.STACK_HIGH]))
    return stack_check.check_sequence(int(record["stack_pointer"]), limits,
                                      int(record["functions"][stack_check.OVERFLOW]))


def check_stack_writes(module: Module, record: dict[str, Any]) -> int:
    """Every ``global.set $__stack_pointer`` of the program's functions is followed by the check
    sequence; returns how many there are. Threadify's own functions are exempt (they set the
    stack pointer of a new thread). Only bodies that hold the bytes of such a write can contain
    one, and those are decoded completely."""
    sp = int(record["stack_pointer"])
    sequence = _stack_sequence(record)
    own = {int(i) for i in record["functions"].values()}
    first = module.num_imported(ExternKind.FUNC)
    checked = 0
    span = module.code_payload()
    counted = None
    if span is not None and span[2] - span[1] >= stack_check.NATIVE_FROM:
        # threadify's functions follow the program's: the program's are those before them
        counted = codescan.count_followed(*span, sp, sequence, min(own) - first)
    if counted is not None:
        if counted.unfollowed_at is not None:
            raise VerificationError(
                f"verify failed: the function body at code-section offset "
                f"{counted.unfollowed_at:#x} writes the stack pointer without the stack-limit "
                "check")
        checked = counted.count
    for local, body in enumerate([] if counted is not None else module.code):
        if local + first in own or not stack_check.may_write(body.raw, sp):
            continue
        for end in stack_check.sp_write_ends(body, sp):
            if body.raw[end:end + len(sequence)] != sequence:
                raise VerificationError(
                    f"verify failed: function {local + first} writes the stack pointer without "
                    "the stack-limit check")
            checked += 1
    expected = record["stack_check"].get("checks")
    if checked != expected:
        raise VerificationError(f"verify failed: {checked} checked stack-pointer writes, the "
                                f"transform recorded {expected}")
    return checked


def _add_stack_probe(module: Module, record: dict[str, Any]) -> None:
    """``threadify_probe_move_stack(n)``: ``$sp -= n``, then the output's check sequence, then
    ``$sp += n``; plus exports of the limit globals."""
    sp = int(record["stack_pointer"])
    body = b"".join([
        b"\x00",  # no locals
        b"\x23", uleb(sp), b"\x20\x00", b"\x6b", b"\x24", uleb(sp),  # sp := sp - n
        _stack_sequence(record),
        b"\x23", uleb(sp), b"\x20\x00", b"\x6a", b"\x24", uleb(sp),  # sp := sp + n
        b"\x0b",
    ])
    index = module.add_function(module.add_type(FuncType((I32,), ())), FunctionBody(body))
    module.add_export(Export(PROBE_MOVE, ExternKind.FUNC, index))
    module.add_export(Export(PROBE_LOW, ExternKind.GLOBAL,
                             int(record["globals"][stack_check.STACK_LOW])))
    module.add_export(Export(PROBE_HIGH, ExternKind.GLOBAL,
                             int(record["globals"][stack_check.STACK_HIGH])))


#: A body valid for any function type: no locals, ``unreachable``, ``end``.
STUB_BODY = b"\x00\x00\x0b"


def _stub_unreachable_code(module: Module, record: dict[str, Any]) -> int:
    """Replace every body the injected code cannot reach with ``unreachable``.

    The checks run only threadify's functions and what they call (lld's start function,
    ``__wasm_init_tls``); compiling the program's own code would cost most of the time on large
    modules (tens of seconds for 45 MB) and prove nothing here. The full output was validated
    before. Returns the number of bodies replaced.
    """
    first = module.num_imported(ExternKind.FUNC)
    keep: set[int] = set()
    todo = [int(i) for i in record["functions"].values()]
    while todo:
        funcidx = todo.pop()
        if funcidx in keep or funcidx < first:
            continue
        keep.add(funcidx)
        for ins in module.code[funcidx - first].instructions():
            if ins.op in ("call", "return_call") and isinstance(ins.imm[0], int):
                todo.append(ins.imm[0])
    replaced = 0
    stub = type(module.code[0])(STUB_BODY) if module.code else None
    for local in range(len(module.code)):
        if local + first not in keep and stub is not None:
            module.code[local] = stub
            replaced += 1
    return replaced


def _blocks_from(record: dict[str, Any]) -> int:
    """The lowest address a thread block can have: past the initial memory (and past the
    control block's own page, for outputs that grew one; older records lack the field)."""
    if "blocks_from" in record:
        return int(record["blocks_from"])
    return int(record["control_block"]) + abi.CONTROL_PAGES * abi.PAGE


def _check_room(module: Module, record: dict[str, Any], threads: int) -> None:
    """Fail clearly when the memory maximum cannot hold ``threads`` thread blocks at once."""
    memory = next((imp.desc for imp in module.imports if imp.kind == ExternKind.MEMORY), None)
    maximum = getattr(memory, "max", None)
    if maximum is None:
        return
    free_pages = maximum - _blocks_from(record) // abi.PAGE
    fits = free_pages // (int(record["block_size"]) // abi.PAGE)
    if fits < threads:
        raise VerificationError(
            f"verify failed: the memory maximum ({maximum} pages) leaves room for {fits} thread "
            f"stack(s) of {int(record['stack_size'])} bytes; verify runs {threads} at once",
            Hint("raise {} or lower {}", Suggestion("max_memory"), Suggestion("stack_size")))


#: Fields of the ``threadify`` record that verify reads as non-negative integers.
_RECORD_INTS = ("block_size", "control_block", "stack_pointer", "stack_size", "stack_top",
                "tls_offset", "tls_size")
_RECORD_OPTIONAL_INTS = ("blocks_from", "tls_base", "tdata")


def _read_record(payload: bytes | memoryview, module: Module) -> dict[str, Any]:
    """The ``threadify`` record, checked for every field verify reads.

    An already thread-ready input is copied unchanged, and one that merely carries a section
    of that name — another tool's, or a damaged one — is verified against what it claims: a
    record that threadify cannot have written fails verification in one line (not with a
    ``KeyError`` from deep inside the run).
    """
    def bad(what: str) -> VerificationError:
        return VerificationError(f"verify failed: the module's threadify custom section is not "
                                 f"a record threadify wrote ({what})")

    def is_index(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 32

    try:
        record = read_section(bytes(payload))
    except (ValueError, RecursionError) as error:  # also UnicodeDecodeError
        raise bad(str(error).splitlines()[0] if str(error) else type(error).__name__) from None
    for key in _RECORD_INTS:
        if not is_index(record.get(key)):
            raise bad(f"{key} is {record.get(key)!r}")
    for key in _RECORD_OPTIONAL_INTS:
        if record.get(key) is not None and not is_index(record[key]):
            raise bad(f"{key} is {record[key]!r}")
    if record["block_size"] < abi.PAGE:
        raise bad(f"block_size is {record['block_size']}")
    checks = record.get("stack_check")
    needed = {"functions": ["threadify_init"], "globals": ["threadify_block"]}
    if checks is not None:
        if not isinstance(checks, dict) or not is_index(checks.get("checks")) or not (
                isinstance(checks.get("main_stack"), list) and len(checks["main_stack"]) == 2
                and all(is_index(x) for x in checks["main_stack"])):
            raise bad(f"stack_check is {checks!r}")
        needed["functions"].append(stack_check.OVERFLOW)
        needed["globals"] += [stack_check.STACK_LOW, stack_check.STACK_HIGH]
    for key, names in needed.items():
        table = record.get(key)
        if not isinstance(table, dict) or not table or not all(
                is_index(value) for value in table.values()):
            raise bad(f"{key} is {table!r}")
        for name in names:
            if name not in table:
                raise bad(f"{key} lacks {name}")
    # the indices name the module's own functions and its globals
    first = module.num_imported(ExternKind.FUNC)
    functions = range(first, first + len(module.functions))
    globals_ = range(module.num_imported(ExternKind.GLOBAL) + len(module.globals))
    for name, index in record["functions"].items():
        if index not in functions:
            raise bad(f"function {name} is {index}, not a defined function")
    named = [*record["globals"].items(), ("stack_pointer", record["stack_pointer"]),
             ("tls_base", record.get("tls_base"))]
    for name, index in named:
        if index is not None and index not in globals_:
            raise bad(f"global {name} is {index}, not a global of the module")
    return record


def verify(output: bytes, *, threads: int = 4, timeout: float = 60.0) -> VerifyReport:
    """Run the checks in the module docstring on ``output``; raise on the first failure."""
    if threads < 1:
        raise ThreadifyError("verify needs at least one thread")
    report = VerifyReport()
    from threadify.validation import engine as make_engine

    validate(output)
    engine = make_engine()
    report.validated = True
    report.checks.append("validates with threads enabled")

    module = Module.decode(output)
    payload = module.get_custom(abi.CUSTOM_SECTION)
    if payload is None:
        report.note = ("not rewritten by threadify (already thread-ready): validated only; its "
                       "own thread start-up is not threadify's to check")
        return report
    record = _read_record(payload, module)
    _check_room(module, record, threads)
    if isinstance(record.get("stack_check"), dict):
        count = check_stack_writes(module, record)
        report.checks.append(f"every stack-pointer write of the program is checked ({count})")
    twin, slot = _probe_twin(module, record)
    _Run(engine, twin, slot, record, threads, timeout, report).run()
    report.runtime_checked = True
    return report


class _Run:
    """One verification run: the main instance, then two waves of thread instances."""

    def __init__(self, engine: Any, twin: bytes, slot: int, record: dict[str, Any],
                 threads: int, timeout: float, report: VerifyReport) -> None:
        import wasmtime

        from threadify.host.memory import SharedLinearMemory

        self.wasmtime = wasmtime
        self.engine = engine
        self.record = record
        self.slot = slot
        self.threads = threads
        self.timeout = timeout
        self.report = report
        self.decoded = Module.decode(twin)
        try:
            self.module = wasmtime.Module(engine, twin)
        except wasmtime.WasmtimeError as error:
            raise VerificationError(f"output does not compile: {_first_line(error)}") from None
        memory_import = None
        for imp in self.module.imports:
            if isinstance(imp.type, wasmtime.MemoryType):
                memory_import = imp
        if memory_import is None:
            raise VerificationError("output does not import its memory")
        self.memory = SharedLinearMemory(engine, memory_import.type)
        self.linker = wasmtime.Linker(engine)
        store = wasmtime.Store(engine)
        self.memory_module, self.memory_name = memory_import.module, memory_import.name or ""
        self.memory.define_in(self.linker, store._context(), self.memory_module,
                              self.memory_name)
        self._define_placeholders(store, memory_import)
        self.linker.define_unknown_imports_as_traps(self.module)
        self.template = self._template()

    def _define_placeholders(self, store: Any, memory_import: Any) -> None:
        """Note the imported globals and tables, which need placeholder values.

        The checks never run the program's own code, so imported functions become traps
        (``define_unknown_imports_as_traps``); globals and tables need a value to instantiate,
        and belong to a store in wasmtime, so :meth:`_instantiate` defines them per instance.
        """
        wasmtime = self.wasmtime
        self.placeholder_imports = [
            imp for imp in self.module.imports
            if isinstance(imp.type, (wasmtime.GlobalType, wasmtime.TableType))]

    def _template(self) -> bytes:
        tdata = self.record.get("tdata")
        size = int(self.record["tls_size"])
        if tdata is None or size == 0:
            return b""
        init = bytes(self.decoded.data[int(tdata)].init)
        return (init + bytes(size))[:size]

    def _instantiate(self, store: Any) -> Any:
        wasmtime = self.wasmtime
        try:
            linker = self.linker
            if self.placeholder_imports:
                # globals/tables belong to a store: a linker per instance that shadows nothing
                # but adds them (the shared memory and trap functions are store-independent)
                linker = wasmtime.Linker(self.engine)
                linker.allow_shadowing = True
                context = store._context()
                self.memory.define_in(linker, context, self.memory_module, self.memory_name)
                for imp in self.placeholder_imports:
                    linker.define(store, imp.module, imp.name or "", _placeholder(store, imp.type))
                linker.define_unknown_imports_as_traps(self.module)
            return linker.instantiate(store, self.module)
        except (self.wasmtime.WasmtimeError, self.wasmtime.Trap) as error:
            raise VerificationError(f"instantiation failed: {_first_line(error)}") from None

    def fail(self, what: str) -> None:
        raise VerificationError(f"verify failed: {what}")

    def run(self) -> None:
        control = int(self.record["control_block"])
        block_size = int(self.record["block_size"])
        main_store = self.wasmtime.Store(self.engine)
        main = self._instantiate(main_store)
        mem = self.memory
        if mem.u32(control + abi.CTRL_MAGIC) != abi.CONTROL_MAGIC:
            self.fail("the control block was not initialised by the first instance")
        if mem.u32(control + abi.CTRL_INIT_FLAG) != 2:
            self.fail("the first instance did not finish initialising memory")
        self.report.checks.append("first instance initialised memory and the control block")

        # Overwrite data written at start-up; a later re-initialisation would restore it.
        tdata = self.record.get("tdata")
        marked = []
        for seg, address, length in segment_writes(self.decoded, self.record):
            if seg == tdata or length == 0:
                continue
            original = mem.read(address, length)
            pattern = bytes((b ^ 0xA5) for b in original)
            mem.write(address, pattern)
            marked.append((address, pattern))

        first = self._wave(1)
        blocks1 = sorted(o.block for o in first)
        self._check_wave(first, control, block_size)
        created = mem.u32(control + abi.CTRL_BLOCKS_CREATED)
        if created != self.threads:
            self.fail(f"{created} thread blocks created for {self.threads} threads")
        second = self._wave(1 + self.threads)
        self._check_wave(second, control, block_size)
        blocks2 = sorted(o.block for o in second)
        if blocks2 != blocks1 or mem.u32(control + abi.CTRL_BLOCKS_CREATED) != self.threads:
            self.fail("released thread blocks were not reused by the next threads")
        self.report.checks.append("released blocks reused (and their TLS re-initialised)")
        if mem.u32(control + abi.CTRL_BLOCKS_LIVE) != 0:
            self.fail("thread blocks still marked live after every thread ended")

        for address, pattern in marked:
            if mem.read(address, len(pattern)) != pattern:
                self.fail(f"data at {address:#x} was written again by a later instance "
                          "(data segments must be written exactly once)")
        self.report.checks.append(f"data written exactly once ({len(marked)} segments "
                                  "watched)")

        before = mem.read(control, abi.CONTROL_BYTES)
        destroy = main.exports(main_store)[abi.EXPORT_DESTROY]
        destroy(main_store)
        if mem.read(control, abi.CONTROL_BYTES) != before:
            self.fail("threadify_thread_destroy on the main instance changed the free list")
        self.report.checks.append("destroy is a no-op on the main instance")
        self.report.threads_per_wave = self.threads
        self.report.blocks = blocks1
        if isinstance(self.record.get("stack_check"), dict):
            self._main_stack_probe()
            for obs in first:
                if obs.stack_probe is not None:
                    self.fail(f"thread {obs.tid}: {obs.stack_probe}")
            self.report.checks.append(
                "stack overflow traps in threadify_stack_overflow on the main thread's limits "
                f"and in each of {len(first)} threads (its own block's stack), one step past "
                "the lowest allowed stack pointer; the lowest allowed passes")

    def _main_stack_probe(self) -> None:
        """A fresh instance carries the main thread's limits; the probe must pass at the lowest
        allowed stack pointer and trap one step below it."""
        store = self.wasmtime.Store(self.engine)
        instance = self._instantiate(store)
        low, high = (int(x) for x in self.record["stack_check"]["main_stack"])
        problem = _stack_probe(self.wasmtime, store, instance.exports(store), low, high)
        if problem is not None:
            self.fail(f"main thread: {problem}")

    def _check_wave(self, wave: list[ThreadObservation], control: int, size: int) -> None:
        for obs in wave:
            if obs.error:
                self.fail(f"thread {obs.tid}: {obs.error}")
        blocks = sorted(o.block for o in wave)
        if len(set(blocks)) != len(blocks):
            self.fail("two threads got the same stack/TLS block")
        for low, high in zip(blocks, blocks[1:], strict=False):
            if low + size > high:
                self.fail(f"thread blocks at {low:#x} and {high:#x} overlap")
        floor = _blocks_from(record=self.record)
        stack_top = int(self.record["stack_top"])
        tls_offset = int(self.record["tls_offset"])
        for obs in wave:
            if obs.block < floor:
                self.fail(f"thread {obs.tid}'s block {obs.block:#x} overlaps the module's data, "
                          "the main stack or the control block")
            if obs.block % abi.PAGE:
                self.fail(f"thread {obs.tid}'s block {obs.block:#x} is not page aligned")
            if obs.stack_pointer != obs.block + stack_top:
                self.fail(f"thread {obs.tid}'s stack pointer {obs.stack_pointer:#x} is not the "
                          f"top of its own stack ({obs.block + stack_top:#x})")
            if self.template:
                if obs.tls_base != obs.block + tls_offset:
                    self.fail(f"thread {obs.tid}'s TLS base {obs.tls_base!s} is not in its own "
                              "block")
                if not obs.tls_ok:
                    self.fail(f"thread {obs.tid}'s TLS block differs from the .tdata template")
        self.report.checks.append(f"{len(wave)} concurrent threads: distinct, non-overlapping "
                                  "stacks and TLS blocks past data and main stack; TLS = template")

    def _wave(self, first_tid: int) -> list[ThreadObservation]:
        wasmtime = self.wasmtime
        barrier = threading.Barrier(self.threads)
        control = int(self.record["control_block"])
        if self.record.get("control_on_stack"):
            # the control block tops the main stack, which no code uses while verifying: the
            # start structs go just below it
            scratch = control - 8 * self.threads
        else:  # the control block's own page, past its fields
            scratch = control + SCRATCH_OFFSET
        observations = [ThreadObservation(first_tid + i) for i in range(self.threads)]
        template = self.template
        tls_size = len(template)
        mem = self.memory
        stack_probe = first_tid == 1 and isinstance(self.record.get("stack_check"), dict)

        def probe(caller: Any, arg: int) -> None:
            obs = observations[arg]
            try:
                obs.stack_pointer = caller.get(PROBE_SP).value(caller) & 0xFFFFFFFF
                obs.block = caller.get(PROBE_BLOCK).value(caller) & 0xFFFFFFFF
                tls = caller.get(PROBE_TLS)
                if tls is not None:
                    obs.tls_base = tls.value(caller) & 0xFFFFFFFF
                    if tls_size:
                        obs.tls_ok = mem.read(obs.tls_base, tls_size) == template
                if stack_probe:
                    exports = {name: caller.get(name) for name in
                               (PROBE_SP, PROBE_LOW, PROBE_HIGH, PROBE_MOVE)}
                    obs.stack_probe = _stack_probe(
                        wasmtime, caller, exports, obs.block + abi.BLOCK_HEADER,
                        obs.block + int(self.record["stack_top"]))
                barrier.wait(self.timeout)
                if obs.tls_base is not None and tls_size:
                    mem.write(obs.tls_base, b"\xee" * tls_size)  # dirty it for the reuse wave
            except threading.BrokenBarrierError:
                obs.error = "fewer threads than expected were running at the same time"
            except Exception as error:  # never let an exception into wasmtime
                obs.error = f"probe failed: {error}"

        def thread_main(index: int) -> None:
            obs = observations[index]
            try:
                store = wasmtime.Store(self.engine)
                instance = self._instantiate(store)
                exports = instance.exports(store)
                func = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], []),
                                     probe, access_caller=True)
                exports[PROBE_TABLE].set(store, self.slot, func)
                struct_at = scratch + 8 * index
                mem.write(struct_at, struct.pack("<II", self.slot, index))
                exports[abi.EXPORT_THREAD_START](store, obs.tid, struct_at)
            except VerificationError as error:
                obs.error = error.problem
            except Exception as error:
                obs.error = f"thread start-up trapped: {_first_line(error)}"
                barrier.abort()

        workers = [threading.Thread(target=thread_main, args=(i,), daemon=True,
                                    name=f"threadify-verify-{i}")
                   for i in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(self.timeout)
            if worker.is_alive():
                self.fail(f"a thread did not finish within {self.timeout:.0f} s (deadlock in "
                          "thread start-up or release?)")
        return observations


def _stack_probe(wasmtime: Any, store: Any, exports: Any, low: int, high: int) -> str | None:
    """Check one instance's stack limits and the check sequence; ``None`` when all is well.

    The limit globals must be ``[low, high)``; moving the stack pointer to the lowest allowed
    value (``low`` plus the red zone) must pass, 16 bytes lower must trap in
    ``threadify_stack_overflow``. The stack pointer is restored after the trap (the check runs
    right after the write it checks)."""
    sp_global, move = exports[PROBE_SP], exports[PROBE_MOVE]
    got = (exports[PROBE_LOW].value(store) & 0xFFFFFFFF,
           exports[PROBE_HIGH].value(store) & 0xFFFFFFFF)
    if got != (low, high):
        return (f"stack limits are [{got[0]:#x}, {got[1]:#x}), expected [{low:#x}, "
                f"{high:#x})")
    sp = sp_global.value(store) & 0xFFFFFFFF
    allowed = low + stack_check.RED_ZONE
    try:
        move(store, sp - allowed)
    except wasmtime.Trap as trap:
        sp_global.set_value(store, wasmtime.Val.i32(sp - (1 << 32) if sp >= 1 << 31 else sp))
        return f"a stack pointer at the lowest allowed value trapped: {_first_line(trap)}"
    try:
        move(store, sp - allowed + 16)
    except wasmtime.Trap as trap:
        sp_global.set_value(store, wasmtime.Val.i32(sp - (1 << 32) if sp >= 1 << 31 else sp))
        frames = [frame.func_name for frame in trap.frames[:1]]
        if frames != [stack_check.OVERFLOW]:
            return f"an overflow trapped elsewhere: {_first_line(trap)}"
        return None
    return "a stack pointer below the stack's limit did not trap"


def _placeholder(store: Any, extern_type: Any) -> Any:
    """A zero-valued global, or a null-filled table, of ``extern_type``."""
    import wasmtime

    if not isinstance(extern_type, wasmtime.GlobalType):
        return wasmtime.Table(store, extern_type, None)
    kind = str(extern_type.content)
    if kind in ("i32", "i64"):
        value = getattr(wasmtime.Val, kind)(0)
    elif kind in ("f32", "f64"):
        value = getattr(wasmtime.Val, kind)(0.0)
    elif "func" in kind:
        value = wasmtime.Val.funcref(None)
    else:
        value = wasmtime.Val.externref(None)
    return wasmtime.Global(store, extern_type, value)


def _first_line(error: BaseException) -> str:
    """The informative line of a wasmtime error: the trap reason (and the function it happened
    in, e.g. ``threadify_out_of_memory``), not the backtrace header."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    frame = next((line for line in lines if line[:1].isdigit() and " - " in line), None)
    where = f" in {frame.split(' - ', 1)[1].split('!', 1)[-1]}" if frame else ""
    for line in lines:
        if "wasm trap:" in line:
            return line + where
    return (lines[-1] if lines else type(error).__name__) + where
