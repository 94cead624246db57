"""The injected thread runtime: start-up, per-thread stacks and TLS, release, and the trampoline.

What this pass adds (ABI v1, SPEC §3), all named ``threadify_*`` in the ``name`` section:

* globals ``threadify_tid`` and ``threadify_block`` — per instance, so per thread;
* ``threadify_init`` — the new start function. It makes room for the control block past the
  original initial memory, then lets exactly one instance (the first) initialise memory: it
  writes the data segments that used to be active, marks the control block, and wakes any
  instance that started meanwhile; later instances wait until that is done. Then it calls the
  original start function (lld's ``__wasm_init_memory`` is safe to run in every instance).
* ``threadify_lock`` / ``threadify_unlock`` — a lock word in the control block (``cmpxchg``,
  sleeping in ``memory.atomic.wait32`` when contended);
* ``threadify_alloc_block`` / ``threadify_free_block`` — thread blocks from a free list, or
  fresh from ``memory.grow`` (never the guest's allocator, which may need TLS);
* ``wasi_thread_start(tid, start_arg)`` — reads ``{func, arg}`` first, takes a block, points
  ``__stack_pointer`` and ``__tls_base`` into it, copies the TLS template, calls ``func(arg)``
  through table 0, and releases the block when ``func`` returns;
* ``threadify_thread_destroy`` — releases the calling instance's block (no-op without one);
* ``threadify_out_of_memory`` / ``threadify_stack_overflow`` — ``unreachable`` under a name, so a
  trap message says what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from threadify import abi
from threadify.wasm import (
    I32,
    Export,
    ExternKind,
    FunctionBuilder,
    FuncType,
    Global,
    GlobalType,
    Module,
    TableType,
)
from threadify.wasm.writer import sleb, uleb

I32_ZERO_INIT = b"\x41\x00\x0b"  # i32.const 0; end
ALIGN4 = 2  # log2 of a 4-byte access


def i32(value: int) -> int:
    """An address as the signed immediate ``i32.const`` encodes."""
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass(frozen=True)
class SegmentInit:
    """A data segment the first instance writes (it was active before the transform)."""

    index: int
    offset: bytes  #: the segment's constant offset expression, with its final ``end``
    length: int
    keep: bool  #: ``True`` for ``.tdata``: later threads copy it, so it is never dropped


@dataclass(frozen=True)
class RuntimePlan:
    """Everything the generated code needs to know; fixed at transform time."""

    control: int  #: address of the control block
    layout: abi.BlockLayout
    stack_pointer: int  #: global index
    tls_base: int | None  #: global index, ``None`` when the module has no TLS
    tdata: int | None  #: data segment index of the TLS template
    tdata_len: int
    init_tls: int | None  #: lld's ``__wasm_init_tls`` when present
    segments: tuple[SegmentInit, ...]
    original_start: int | None


@dataclass
class Injected:
    """Indices of what the pass added, for names and for ``inspect``/``--verify``."""

    functions: dict[str, int]
    globals: dict[str, int]


class _Emitter:
    """Thin helpers over :class:`FunctionBuilder` for the few idioms the runtime repeats."""

    def __init__(self, builder: FunctionBuilder, control: int) -> None:
        self.b = builder
        self.control = control

    def const(self, value: int) -> None:
        self.b.emit("i32.const", i32(value))

    def ctrl(self, field: int) -> None:
        """Push the address of a control-block field."""
        self.const(self.control + field)

    def atomic_add(self, field: int, delta: int) -> None:
        self.ctrl(field)
        self.const(delta)
        self.b.emit("i32.atomic.rmw.add", ALIGN4, 0, 0)
        self.b.emit("drop")


def _builder(params: tuple[int, ...] = (), results: tuple[int, ...] = ()) -> FunctionBuilder:
    return FunctionBuilder(params, results)


def inject_runtime(module: Module, plan: RuntimePlan) -> Injected:
    """Add the runtime described in the module docstring to ``module``; returns what it added."""
    funcs: dict[str, int] = {}
    globs: dict[str, int] = {}
    void = module.add_type(FuncType((), ()))
    one_i32 = module.add_type(FuncType((I32,), ()))
    ret_i32 = module.add_type(FuncType((), (I32,)))

    globs["threadify_tid"] = module.add_global(Global(GlobalType(I32, True), I32_ZERO_INIT))
    globs["threadify_block"] = module.add_global(Global(GlobalType(I32, True), I32_ZERO_INIT))
    tid_g = globs["threadify_tid"]
    block_g = globs["threadify_block"]
    control = plan.control
    layout = plan.layout

    def add(name: str, type_index: int, build: Callable[[FunctionBuilder, _Emitter], None],
            params: tuple[int, ...] = (), results: tuple[int, ...] = ()) -> int:
        b = _builder(params, results)
        build(b, _Emitter(b, control))
        funcs[name] = module.add_function(type_index, b.finish())
        return funcs[name]

    # -- traps with a name ------------------------------------------------------------------
    def trap(b: FunctionBuilder, e: _Emitter) -> None:
        b.emit("unreachable")

    oom = add("threadify_out_of_memory", void, trap)
    overflow = add("threadify_stack_overflow", void, trap)

    # -- lock ---------------------------------------------------------------------------------
    def lock(b: FunctionBuilder, e: _Emitter) -> None:
        with b.loop():
            e.ctrl(abi.CTRL_LOCK)
            e.const(0)
            e.const(1)
            b.emit("i32.atomic.rmw.cmpxchg", ALIGN4, 0, 0)
            with b.if_():  # someone holds it: sleep until it is released, then retry
                e.ctrl(abi.CTRL_LOCK)
                e.const(1)
                b.emit("i64.const", -1)
                b.emit("memory.atomic.wait32", ALIGN4, 0, 0)
                b.emit("drop")
                b.emit("br", 1)

    def unlock(b: FunctionBuilder, e: _Emitter) -> None:
        e.ctrl(abi.CTRL_LOCK)
        e.const(0)
        b.emit("i32.atomic.store", ALIGN4, 0, 0)
        e.ctrl(abi.CTRL_LOCK)
        e.const(1)
        b.emit("memory.atomic.notify", ALIGN4, 0, 0)
        b.emit("drop")

    lock_f = add("threadify_lock", void, lock)
    unlock_f = add("threadify_unlock", void, unlock)

    # -- allocation ---------------------------------------------------------------------------
    def alloc(b: FunctionBuilder, e: _Emitter) -> None:
        block = b.local(I32)
        b.emit("call", lock_f)
        e.ctrl(abi.CTRL_FREE_HEAD)
        b.emit("i32.atomic.load", ALIGN4, 0, 0)
        b.emit("local.tee", block)
        with b.if_():  # reuse: pop the free list
            e.ctrl(abi.CTRL_FREE_HEAD)
            b.emit("local.get", block)
            b.emit("i32.load", ALIGN4, abi.BLOCK_NEXT, 0)
            b.emit("i32.atomic.store", ALIGN4, 0, 0)
            b.emit("call", unlock_f)
            b.else_()  # fresh pages, page aligned, beyond everything allocated so far
            b.emit("call", unlock_f)
            e.const(layout.pages)
            b.emit("memory.grow", 0)
            b.emit("local.tee", block)
            e.const(-1)
            b.emit("i32.eq")
            with b.if_():
                b.emit("call", oom)
            b.emit("local.get", block)
            e.const(16)
            b.emit("i32.shl")
            b.emit("local.set", block)
            e.atomic_add(abi.CTRL_BLOCKS_CREATED, 1)
        b.emit("local.get", block)
        e.const(abi.CANARY)
        b.emit("i32.store", ALIGN4, abi.BLOCK_CANARY, 0)
        b.emit("local.get", block)
        b.emit("global.get", tid_g)
        b.emit("i32.store", ALIGN4, abi.BLOCK_TID, 0)
        e.atomic_add(abi.CTRL_BLOCKS_LIVE, 1)
        b.emit("local.get", block)

    def free(b: FunctionBuilder, e: _Emitter) -> None:
        b.emit("call", lock_f)
        b.emit("local.get", 0)
        e.ctrl(abi.CTRL_FREE_HEAD)
        b.emit("i32.atomic.load", ALIGN4, 0, 0)
        b.emit("i32.store", ALIGN4, abi.BLOCK_NEXT, 0)
        e.ctrl(abi.CTRL_FREE_HEAD)
        b.emit("local.get", 0)
        b.emit("i32.atomic.store", ALIGN4, 0, 0)
        b.emit("call", unlock_f)
        e.atomic_add(abi.CTRL_BLOCKS_LIVE, -1)

    alloc_f = add("threadify_alloc_block", ret_i32, alloc, results=(I32,))
    free_f = add("threadify_free_block", one_i32, free, params=(I32,))

    # -- destructor ---------------------------------------------------------------------------
    def destroy(b: FunctionBuilder, e: _Emitter) -> None:
        block = b.local(I32)
        b.emit("global.get", block_g)
        b.emit("local.tee", block)
        b.emit("i32.eqz")
        with b.if_():  # main instance, or released already
            b.emit("return")
        b.emit("local.get", block)
        b.emit("i32.load", ALIGN4, abi.BLOCK_CANARY, 0)
        e.const(abi.CANARY)
        b.emit("i32.ne")
        with b.if_():  # the stack ran into the block header
            b.emit("call", overflow)
        e.const(0)
        b.emit("global.set", block_g)
        b.emit("local.get", block)
        b.emit("call", free_f)

    destroy_f = add("threadify_thread_destroy", void, destroy)

    # -- TLS initialisation -------------------------------------------------------------------
    def init_tls_inline(b: FunctionBuilder, e: _Emitter, address: int) -> None:
        """``__tls_base := address``; copy the template; zero what the template lacks."""
        assert plan.tls_base is not None and plan.tdata is not None
        b.emit("local.get", address)
        b.emit("global.set", plan.tls_base)
        b.emit("local.get", address)
        e.const(0)
        e.const(plan.tdata_len)
        b.emit("memory.init", plan.tdata, 0)
        if layout.tls_size > plan.tdata_len:
            b.emit("local.get", address)
            e.const(plan.tdata_len)
            b.emit("i32.add")
            e.const(0)
            e.const(layout.tls_size - plan.tdata_len)
            b.emit("memory.fill", 0)

    # -- the trampoline -----------------------------------------------------------------------
    def thread_start(b: FunctionBuilder, e: _Emitter) -> None:
        func, arg, block, tls = b.local(I32), b.local(I32), b.local(I32), b.local(I32)
        # The start struct first: the spawner may reuse it as soon as this thread runs.
        b.emit("local.get", 1)
        b.emit("i32.load", ALIGN4, 0, 0)
        b.emit("local.set", func)
        b.emit("local.get", 1)
        b.emit("i32.load", ALIGN4, 4, 0)
        b.emit("local.set", arg)
        b.emit("local.get", 0)
        b.emit("global.set", tid_g)
        e.atomic_add(abi.CTRL_STARTS, 1)
        b.emit("call", alloc_f)
        b.emit("local.tee", block)
        b.emit("global.set", block_g)
        b.emit("local.get", block)
        e.const(layout.stack_top)
        b.emit("i32.add")
        b.emit("global.set", plan.stack_pointer)
        if plan.tls_base is not None and layout.tls_size > 0:
            b.emit("local.get", block)
            e.const(layout.tls_offset)
            b.emit("i32.add")
            b.emit("local.set", tls)
            if plan.init_tls is not None and plan.tdata is None:
                b.emit("local.get", tls)
                b.emit("call", plan.init_tls)
            else:
                init_tls_inline(b, e, tls)
        b.emit("local.get", arg)
        b.emit("local.get", func)
        b.emit("call_indirect", one_i32, 0)
        b.emit("call", destroy_f)

    start_f = add("wasi_thread_start", module.add_type(FuncType((I32, I32), ())), thread_start,
                  params=(I32, I32))

    # -- start function -----------------------------------------------------------------------
    control_end_pages = (control + abi.CONTROL_PAGES * abi.PAGE) // abi.PAGE

    def init(b: FunctionBuilder, e: _Emitter) -> None:
        # Room for the control block (only the first instance finds memory too small).
        b.emit("memory.size", 0)
        e.const(control_end_pages)
        b.emit("i32.lt_u")
        with b.if_():
            e.const(control_end_pages)
            b.emit("memory.size", 0)
            b.emit("i32.sub")
            b.emit("memory.grow", 0)
            e.const(-1)
            b.emit("i32.eq")
            with b.if_():
                b.emit("call", oom)
        e.ctrl(abi.CTRL_INIT_FLAG)
        e.const(0)
        e.const(1)
        b.emit("i32.atomic.rmw.cmpxchg", ALIGN4, 0, 0)
        b.emit("i32.eqz")
        with b.if_():  # the first instance: write memory exactly once
            b.emit_code(_segment_writes(plan.segments))
            if plan.original_start is not None and plan.segments:
                b.emit("call", plan.original_start)
            e.ctrl(abi.CTRL_BLOCK_SIZE)
            e.const(layout.size)
            b.emit("i32.atomic.store", ALIGN4, 0, 0)
            e.ctrl(abi.CTRL_MAGIC)
            e.const(abi.CONTROL_MAGIC)
            b.emit("i32.atomic.store", ALIGN4, 0, 0)
            e.ctrl(abi.CTRL_INIT_FLAG)
            e.const(2)
            b.emit("i32.atomic.store", ALIGN4, 0, 0)
            e.ctrl(abi.CTRL_INIT_FLAG)
            e.const(-1)
            b.emit("memory.atomic.notify", ALIGN4, 0, 0)
            b.emit("drop")
            b.else_()  # a later instance: wait while the first is still initialising
            with b.loop():
                e.ctrl(abi.CTRL_INIT_FLAG)
                b.emit("i32.atomic.load", ALIGN4, 0, 0)
                e.const(1)
                b.emit("i32.eq")
                with b.if_():
                    e.ctrl(abi.CTRL_INIT_FLAG)
                    e.const(1)
                    b.emit("i64.const", -1)
                    b.emit("memory.atomic.wait32", ALIGN4, 0, 0)
                    b.emit("drop")
                    b.emit("br", 1)
        if plan.original_start is not None and not plan.segments:
            # lld's __wasm_init_memory has its own once-only flag and must run everywhere.
            b.emit("call", plan.original_start)

    init_f = add("threadify_init", void, init)
    module.start = init_f

    module.add_export(Export(abi.EXPORT_THREAD_START, ExternKind.FUNC, start_f))
    module.add_export(Export(abi.EXPORT_DESTROY, ExternKind.FUNC, destroy_f))
    return Injected(funcs, globs)


def _segment_writes(segments: tuple[SegmentInit, ...]) -> bytes:
    """The first instance's data initialisation, encoded directly.

    For every segment: ``<offset expr>; i32.const 0; i32.const len; memory.init seg 0`` and,
    unless it is ``.tdata``, ``data.drop seg``. Built as bytes because large modules have
    thousands of segments (8,767 in one real 45 MB module). The offset expression is a constant
    expression, which is valid code as it stands once its ``end`` is removed.
    """
    out = bytearray()
    for seg in segments:
        assert seg.offset[-1:] == b"\x0b"
        out += seg.offset[:-1]
        out += b"\x41\x00\x41" + sleb(seg.length)
        out += b"\xfc\x08" + uleb(seg.index) + b"\x00"
        if not seg.keep:
            out += b"\xfc\x09" + uleb(seg.index)
    return bytes(out)


def ensure_table(module: Module) -> bool:
    """Give the module a funcref table 0 if it has none (``call_indirect`` needs one)."""
    has = any(imp.kind == ExternKind.TABLE for imp in module.imports) or bool(module.tables)
    if has:
        return False
    module.tables.append(TableType(0x70, 0, 0))
    return True

