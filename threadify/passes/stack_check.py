"""Stack-limit checks (``--stack-check``): every write of the stack pointer is compared with the
running thread's stack limits, so an overflow traps at the frame that overflows
(docs/stack-check.md).

Two per-instance globals hold the running thread's stack: ``threadify_stack_low`` (its lowest
byte) and ``threadify_stack_high`` (its top). Their initial values are the main
thread's limits, so the first instance needs no code; ``wasi_thread_start`` sets them to the
thread block's stack before it moves the stack pointer there (see
:mod:`threadify.passes.threads`).

After every ``global.set $__stack_pointer`` in the program's own functions this pass inserts::

    global.get $__stack_pointer  global.get $threadify_stack_low  i32.const RED_ZONE  i32.add
    i32.lt_u
    global.get $__stack_pointer  global.get $threadify_stack_high  i32.gt_u
    i32.or  if  call $threadify_stack_overflow  end

so the trap happens in a function of that name, called from the frame that moved the stack
pointer out of its stack — before the frame stores anything there, however large the frame (a
frame larger than the stack pointer wraps around to a huge address: the upper limit catches
it). The sequence needs no local and leaves the operand stack as it found it, so it is valid
after any ``global.set``; the body's locals are untouched.

Leaf functions: clang's wasm backend lets a leaf function whose frame is at most
:data:`RED_ZONE` bytes use the memory below the stack pointer without moving it. The low limit
check keeps that much room above the stack's lowest byte, so such a frame stays inside its
stack as well.

Only bodies that contain the bytes of a ``global.set`` of the stack pointer are decoded (the
other bodies pass through as bytes); a candidate is decoded completely before it is changed,
since those bytes also occur inside other instructions' immediates. Large code sections are
decoded by the native scanner of :mod:`threadify.wasm.codescan` (same tables, same bytes out).
Changed bodies move the code that follows them, so DWARF and source maps describing the code
would be wrong: they are dropped, and the result says so.
"""

from __future__ import annotations

from typing import NamedTuple

from threadify import abi
from threadify.errors import Hint, Suggestion, UnsupportedModuleError
from threadify.linker import LinkerSymbols, defined_global_init, find_global, i32_const_expr
from threadify.passes.memory import initialised_ranges
from threadify.passes.offsets import drop_offset_sections
from threadify.wasm import (
    I32,
    FunctionBody,
    Global,
    GlobalType,
    Instr,
    Module,
    codescan,
)
from threadify.wasm.instructions import encode_instructions, read_instruction
from threadify.wasm.reader import Reader
from threadify.wasm.writer import uleb

#: Bytes below the stack pointer a leaf function may use without moving it (LLVM's wasm red
#: zone); the low limit keeps them inside the stack.
RED_ZONE = 128

OVERFLOW = "threadify_stack_overflow"
STACK_LOW = "threadify_stack_low"
STACK_HIGH = "threadify_stack_high"

GLOBAL_SET = 0x24

#: Code sections from this size on are scanned natively (:func:`insert_checks`).
NATIVE_FROM = 256 << 10


class StackRange(NamedTuple):
    """A stack's address range ``[low, high)``; the stack grows down from ``high``."""

    low: int
    high: int
    how: str  #: how the range was found, for ``inspect`` and the docs


class LimitGlobals(NamedTuple):
    """Indices of the two per-instance limit globals, which the check reads and
    ``wasi_thread_start`` sets for each thread."""

    low: int
    high: int


class CheckResult(NamedTuple):
    checks: int  #: ``global.set`` instructions now followed by a check
    functions: int  #: bodies that changed
    dropped: list[str]  #: custom sections removed because code offsets changed


def main_stack(module: Module, syms: LinkerSymbols,
               initialised: list[tuple[int, int]] | None = None) -> StackRange:
    """The main thread's stack, from lld's memory layout (docs/stack-check.md, "The main
    thread's stack"); raises :class:`~threadify.errors.UnsupportedModuleError` when the
    layout does not show it, since limits guessed wrong make every deeper frame trap.

    ``__stack_low`` / ``__stack_high`` (globals only when exported or named) give it directly.
    Otherwise: the top is the stack pointer's initial value; lld places the stack either first
    (at address 0, below all data: ``--stack-first``, lld 22's default for this output) or
    right after the data (``--no-stack-first``, lld 19's layout), aligned to 16. Data is known
    from ``__data_end`` when present, else from the data segments' addresses, the ``.bss``
    ranges and the flag word that lld's memory initialiser writes (``initialised``: those
    ranges, :func:`~threadify.passes.memory.initialised_ranges`, when the caller has them).
    """
    sp_init = syms.stack_pointer_init
    if sp_init is None or sp_init == 0:  # not lld's layout: no constant top of stack
        raise _refusal("stack-limit checks need the stack pointer's initial value, and its "
                       "initialiser is not a constant")
    high = sp_init & 0xFFFF_FFFF
    low_g, high_g = find_global(module, "__stack_low"), find_global(module, "__stack_high")
    if low_g is not None and high_g is not None:
        low_v = defined_global_init(module, low_g.index)
        high_v = defined_global_init(module, high_g.index)
        if low_v is not None and high_v is not None and low_v < high_v:
            return StackRange(low_v, high_v, f"__stack_low/__stack_high ({low_g.how})")
    # data below where the stack starts now: the control block may have moved below data that
    # a snapshot left under the stack's top (passes/memory.place_control_block), which is the
    # stack's own old contents, not data below the stack
    assert syms.stack_pointer is not None
    start_now = defined_global_init(module, syms.stack_pointer.index)
    first_used = high if start_now is None else min(high, start_now & 0xFFFF_FFFF)
    ranges = initialised_ranges(module, syms) if initialised is None else initialised
    below = [end for start, end in ranges if start < first_used]
    if not below:
        stack = StackRange(0, high, "stack first (no data below the initial stack pointer)")
    elif syms.data_end_value is not None and 0 < syms.data_end_value <= high:
        stack = StackRange(abi.align_up(syms.data_end_value, abi.STACK_ALIGN), high,
                           "data first, stack from __data_end")
    elif first_used < high - abi.CONTROL_BYTES or any(end > high for _start, end in ranges):
        # a snapshot: the control block stepped below data at the stack's top, or data lies
        # both below the stack and above its top, where lld puts it on one side only. What
        # lies below may be more of its stale stack, in pieces, as much as the data of a
        # data-first layout
        raise _refusal(f"stack-limit checks cannot tell where the main stack ends: this "
                       f"module looks like a snapshot (start-up data on both sides of its "
                       f"stack's top, {high:#x}), and the data below may be the stack's old "
                       f"contents or the program's",
                       "link with --export=__stack_low --export=__stack_high, or ")
    else:
        stack = StackRange(min(abi.align_up(max(below), abi.STACK_ALIGN), high), high,
                           "data first, stack from the end of the data below it")
    if stack.high - stack.low <= RED_ZONE:
        # every frame would trap: data lies right under where the stack starts (a snapshot's
        # stale stack beyond what the control block can step over)
        raise _refusal(f"stack-limit checks found no main-thread stack: data lies right "
                       f"below the stack pointer's initial value ({high:#x})")
    return stack


def _refusal(problem: str, before: str = "") -> UnsupportedModuleError:
    """``problem``, with the way out that always exists: the transform without the checks
    (after ``before``, another way, when there is one)."""
    return UnsupportedModuleError(problem, Hint(before + "transform without {}",
                                                Suggestion("stack_check", False)))


def add_limit_globals(module: Module, stack: StackRange) -> LimitGlobals:
    """The two per-instance limit globals, initialised to the main thread's limits."""
    low = module.add_global(Global(GlobalType(I32, True), i32_const_expr(stack.low)))
    high = module.add_global(Global(GlobalType(I32, True), i32_const_expr(stack.high)))
    return LimitGlobals(low, high)


def check_sequence(stack_pointer: int, limits: LimitGlobals, overflow: int) -> bytes:
    """The instructions inserted after every ``global.set`` of the stack pointer (the module
    docstring shows them as WAT)."""
    return encode_instructions([
        Instr("global.get", (stack_pointer,)),
        Instr("global.get", (limits.low,)), Instr("i32.const", (RED_ZONE,)), Instr("i32.add"),
        Instr("i32.lt_u"),
        Instr("global.get", (stack_pointer,)), Instr("global.get", (limits.high,)),
        Instr("i32.gt_u"),
        Instr("i32.or"), Instr("if", (None,)), Instr("call", (overflow,)), Instr("end"),
    ])


def _encodings(index: int) -> list[bytes]:
    """Every LEB128 encoding of ``index`` a ``global.set`` may carry (lld pads relocated
    indices to 5 bytes), each after the opcode."""
    out = []
    minimal = len(uleb(index))
    for width in range(minimal, 6):
        out.append(bytes((GLOBAL_SET,)) + uleb(index, width))
    return out


def may_write(raw: bytes, stack_pointer: int) -> bool:
    """Whether ``raw`` holds the bytes of a ``global.set`` of the stack pointer (in any of its
    LEB128 widths); a body without them cannot write it."""
    return any(needle in raw for needle in _encodings(stack_pointer))


def sp_write_ends(body: FunctionBody, stack_pointer: int) -> list[int]:
    """Offsets in ``body.raw`` right after each ``global.set $stack_pointer`` (decodes the
    whole body: raises :class:`~threadify.errors.WasmDecodeError` if it is malformed)."""
    raw = body.raw
    r = Reader(raw, base=body.base)
    r.pos = body.expression_offset()
    out = []
    depth = 0
    while True:
        ins = read_instruction(r)
        op = ins.op
        if op == "global.set":
            if ins.imm[0] == stack_pointer:
                out.append(r.pos)
        elif op in ("block", "loop", "if", "try", "try_table"):
            depth += 1
        elif op == "end" or op == "delegate":
            if depth == 0:
                break
            depth -= 1
    if not r.at_end():
        raise r.error("the end of the function body after its final `end`")
    return out


def start_scan(module: Module, stack_pointer: int, count: int) -> codescan.Insertion | None:
    """Start the native scan of a large code section in the background (it overlaps the other
    passes); ``None`` for a small one, which the Python decoder handles faster than wasmtime
    loads (:func:`insert_checks`)."""
    span = module.code_payload()
    if span is None or span[2] - span[1] < NATIVE_FROM:
        return None
    return codescan.Insertion(*span, stack_pointer, count)


def insert_checks(module: Module, stack_pointer: int, limits: LimitGlobals, overflow: int,
                  count: int, scan: codescan.Insertion | None = None) -> CheckResult:
    """Insert the check after every stack-pointer write in the first ``count`` function
    bodies (the program's own; threadify's injected functions come after them).

    Large code sections go through the native scanner (``scan``, from :func:`start_scan`),
    small ones through the Python decoder (loading wasmtime would cost more than decoding
    them); both give the same bytes."""
    sequence = check_sequence(stack_pointer, limits, overflow)
    checks = functions = 0
    native = None if scan is None else scan.finish(sequence)
    if native is not None:
        module.replace_code(list(native.chunks), count)
        checks, functions = native.inserted, native.functions
    else:
        checks, functions = _insert_in_python(module, stack_pointer, sequence, count)
    dropped = drop_offset_sections(module) if functions else []
    return CheckResult(checks, functions, dropped)


def _insert_in_python(module: Module, stack_pointer: int, sequence: bytes,
                      count: int) -> tuple[int, int]:
    """The same insertion through the Python decoder (when the native scanner is not
    available, or gave up on a body it cannot decode -- which then raises here)."""
    code = module.code
    checks = functions = 0
    for i in range(count):
        body = code[i]
        raw = body.raw
        if not may_write(raw, stack_pointer):
            continue
        ends = sp_write_ends(body, stack_pointer)
        if not ends:
            continue
        parts = []
        last = 0
        for end in ends:
            parts.append(raw[last:end])
            parts.append(sequence)
            last = end
        parts.append(raw[last:])
        code[i] = FunctionBody(b"".join(parts))
        checks += len(ends)
        functions += 1
    return checks, functions


def defined_function_count(module: Module) -> int:
    """Number of function bodies, counted before threadify adds its own: only the program's
    bodies get checks (threadify's own code sets the stack pointer only to a new thread's
    stack, right after its limits)."""
    return module.function_count()
