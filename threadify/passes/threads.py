"""The injected thread runtime: start-up, per-thread stacks and TLS, release, and the trampoline.

What this pass adds (the output ABI, docs/abi.md), all named ``threadify_*`` in the ``name``
section:

* globals ``threadify_tid`` and ``threadify_block`` — per instance, so per thread;
* ``threadify_init`` — the new start function (:func:`_init`);
* ``threadify_lock`` / ``threadify_unlock`` — the free list's lock (:func:`_lock`, :func:`_unlock`);
* ``threadify_alloc_block`` / ``threadify_free_block`` — thread blocks from the free list, or
  fresh from ``memory.grow`` (:func:`_alloc_block`, :func:`_free_block`);
* ``threadify_thread_destroy`` — releases the calling instance's block (:func:`_thread_destroy`);
* ``wasi_thread_start(tid, start_arg)`` — the trampoline (:func:`_wasi_thread_start`);
* ``threadify_out_of_memory`` / ``threadify_stack_overflow`` — ``unreachable`` under a name, so a
  trap message says what went wrong.

Each injected function is built by one function below whose docstring shows the WAT it emits;
the Python follows that WAT line by line. Functions are added in a fixed order (indices, and so
the output bytes, are deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from threadify import abi
from threadify.passes.segments import SegmentInit
from threadify.wasm import (
    FUNCREF,
    I32,
    Export,
    ExternKind,
    FunctionBuilder,
    FuncType,
    Global,
    GlobalType,
    Instr,
    Module,
    TableType,
    ValType,
)
from threadify.wasm.instructions import encode_instructions
from threadify.wasm.opcodes import BY_NAME
from threadify.wasm.writer import sleb, uleb

MEMORY = 0  #: the module's only memory
TABLE = 0  #: the function table C/Rust function pointers index
GROW_FAILED = -1  #: what ``memory.grow`` returns when memory cannot grow
NOTIFY_ALL = -1  #: ``memory.atomic.notify`` count: every waiter (u32 max)
FOREVER = -1  #: ``memory.atomic.wait32`` timeout: none
#: The constant expression ``i32.const 0; end``: the initial value of threadify's globals.
I32_ZERO_INIT = encode_instructions([Instr("i32.const", (0,)), Instr("end")])


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
    #: The module's own start function (not lld's memory initialiser): part of the one-time
    #: start-up, run by the first instance only.
    start_once: int | None = None
    #: lld's memory initialiser with its own once-flag: run by every instance (each must
    #: ``data.drop`` its segments; the first writes memory, the others wait for it).
    start_every_instance: int | None = None
    #: Global indices ``(low, high)`` of a thread's stack limits, set by ``wasi_thread_start``
    #: for ``--stack-check``; ``None``: nothing is emitted.
    stack_limits: tuple[int, int] | None = None


@dataclass
class Injected:
    """Indices of what the pass added, for names and for ``inspect``/``--verify``."""

    functions: dict[str, int]
    globals: dict[str, int]


class _Code(FunctionBuilder):
    """A :class:`FunctionBuilder` with the few idioms the runtime repeats on its control block."""

    def __init__(self, control: int, params: Sequence[ValType] = (),
                 results: Sequence[ValType] = ()) -> None:
        super().__init__(params, results)
        self.control = control

    def ctrl(self, field: int) -> _Code:
        """``i32.const <address of a control-block field>``."""
        self.i32_const(self.control + field)
        return self

    def atomic_load(self, field: int) -> None:
        self.ctrl(field).emit("i32.atomic.load")

    def atomic_store(self, field: int, value: int) -> None:
        self.ctrl(field).i32_const(value).emit("i32.atomic.store")

    def atomic_add(self, field: int, delta: int) -> None:
        self.ctrl(field).i32_const(delta).emit("i32.atomic.rmw.add").emit("drop")

    def compare_exchange(self, field: int, expected: int, new: int) -> None:
        """Leaves the field's old value on the stack."""
        self.ctrl(field).i32_const(expected).i32_const(new).emit("i32.atomic.rmw.cmpxchg")

    def wait_while(self, field: int, value: int) -> None:
        """Sleep while the field holds ``value`` (returns at once if it does not)."""
        self.ctrl(field).i32_const(value).emit("i64.const", FOREVER)
        self.emit("memory.atomic.wait32").emit("drop")

    def notify(self, field: int, count: int) -> None:
        self.ctrl(field).i32_const(count).emit("memory.atomic.notify").emit("drop")


class _Runtime:
    """The module being extended and the indices of what has been added to it so far."""

    def __init__(self, module: Module, plan: RuntimePlan) -> None:
        self.module = module
        self.plan = plan
        self.void = module.add_type(FuncType((), ()))
        self.one_i32 = module.add_type(FuncType((I32,), ()))
        self.returns_i32 = module.add_type(FuncType((), (I32,)))
        self.two_i32 = module.add_type(FuncType((I32, I32), ()))
        self.globals = {
            "threadify_tid": module.add_global(Global(GlobalType(I32, True), I32_ZERO_INIT)),
            "threadify_block": module.add_global(Global(GlobalType(I32, True), I32_ZERO_INIT)),
        }
        self.tid = self.globals["threadify_tid"]
        self.block = self.globals["threadify_block"]
        self.functions: dict[str, int] = {}

    def code(self, params: Sequence[ValType] = (), results: Sequence[ValType] = ()) -> _Code:
        return _Code(self.plan.control, params, results)

    def add(self, name: str, type_index: int, code: _Code) -> int:
        self.functions[name] = self.module.add_function(type_index, code.finish())
        return self.functions[name]


def inject_runtime(module: Module, plan: RuntimePlan) -> Injected:
    """Add the runtime described in the module docstring to ``module``; returns what it added."""
    rt = _Runtime(module, plan)
    oom = rt.add("threadify_out_of_memory", rt.void, _trap(rt))
    overflow = rt.add("threadify_stack_overflow", rt.void, _trap(rt))
    lock = rt.add("threadify_lock", rt.void, _lock(rt))
    unlock = rt.add("threadify_unlock", rt.void, _unlock(rt))
    alloc = rt.add("threadify_alloc_block", rt.returns_i32, _alloc_block(rt, lock, unlock, oom))
    free = rt.add("threadify_free_block", rt.one_i32, _free_block(rt, lock, unlock))
    destroy = rt.add("threadify_thread_destroy", rt.void, _thread_destroy(rt, free, overflow))
    start = rt.add("wasi_thread_start", rt.two_i32, _wasi_thread_start(rt, alloc, destroy))
    module.start = rt.add("threadify_init", rt.void, _init(rt, oom))
    module.add_export(Export(abi.EXPORT_THREAD_START, ExternKind.FUNC, start))
    module.add_export(Export(abi.EXPORT_DESTROY, ExternKind.FUNC, destroy))
    return Injected(rt.functions, rt.globals)


def _trap(rt: _Runtime) -> _Code:
    """``(func unreachable)`` -- a trap whose function name says why."""
    b = rt.code()
    b.emit("unreachable")
    return b


def _lock(rt: _Runtime) -> _Code:
    """::

        loop
          (i32.atomic.rmw.cmpxchg $lock FREE HELD)
          if                           ;; held by another thread: sleep until it is released
            (memory.atomic.wait32 $lock HELD forever) drop
            br 1                       ;; and try again
          end
        end
    """
    b = rt.code()
    with b.loop():
        b.compare_exchange(abi.CTRL_LOCK, abi.LOCK_FREE, abi.LOCK_HELD)
        with b.if_():
            b.wait_while(abi.CTRL_LOCK, abi.LOCK_HELD)
            b.emit("br", 1)
    return b


def _unlock(rt: _Runtime) -> _Code:
    """``(i32.atomic.store $lock FREE) (memory.atomic.notify $lock 1) drop``"""
    b = rt.code()
    b.atomic_store(abi.CTRL_LOCK, abi.LOCK_FREE)
    b.notify(abi.CTRL_LOCK, 1)
    return b


def _alloc_block(rt: _Runtime, lock: int, unlock: int, oom: int) -> _Code:
    """A thread block, from the free list or fresh from ``memory.grow``; returns its address::

        call $lock
        (local.tee $block (i32.atomic.load $free_head))
        if                                   ;; reuse: pop the free list
          (i32.atomic.store $free_head (i32.load offset=NEXT $block))
          call $unlock
        else                                 ;; fresh pages, beyond everything allocated so far
          call $unlock
          (local.tee $block (memory.grow PAGES)) (i32.eq -1)
          if call $threadify_out_of_memory end
          (local.set $block (i32.shl $block PAGE_SHIFT))
          (i32.atomic.rmw.add $blocks_created 1) drop
        end
        (i32.store offset=CANARY $block CANARY)
        (i32.store offset=TID $block (global.get $threadify_tid))
        (i32.atomic.rmw.add $blocks_live 1) drop
        local.get $block
    """
    b = rt.code(results=(I32,))
    block = b.local(I32)
    b.emit("call", lock)
    b.atomic_load(abi.CTRL_FREE_HEAD)
    b.emit("local.tee", block)
    with b.if_():
        b.ctrl(abi.CTRL_FREE_HEAD)
        b.emit("local.get", block).emit("i32.load", abi.BLOCK_NEXT)
        b.emit("i32.atomic.store")
        b.emit("call", unlock)
    with b.else_():
        b.emit("call", unlock)
        b.i32_const(rt.plan.layout.pages).emit("memory.grow", MEMORY)
        b.emit("local.tee", block).i32_const(GROW_FAILED).emit("i32.eq")
        with b.if_():
            b.emit("call", oom)
        b.emit("local.get", block).i32_const(abi.PAGE_SHIFT).emit("i32.shl")
        b.emit("local.set", block)
        b.atomic_add(abi.CTRL_BLOCKS_CREATED, 1)
    b.emit("local.get", block).i32_const(abi.CANARY).emit("i32.store", abi.BLOCK_CANARY)
    b.emit("local.get", block).emit("global.get", rt.tid).emit("i32.store", abi.BLOCK_TID)
    b.atomic_add(abi.CTRL_BLOCKS_LIVE, 1)
    b.emit("local.get", block)
    return b


def _free_block(rt: _Runtime, lock: int, unlock: int) -> _Code:
    """Push ``$block`` (param 0) on the free list::

        call $lock
        (i32.store offset=NEXT $block (i32.atomic.load $free_head))
        (i32.atomic.store $free_head $block)
        call $unlock
        (i32.atomic.rmw.add $blocks_live -1) drop
    """
    b = rt.code(params=(I32,))
    block = 0
    b.emit("call", lock)
    b.emit("local.get", block)
    b.atomic_load(abi.CTRL_FREE_HEAD)
    b.emit("i32.store", abi.BLOCK_NEXT)
    b.ctrl(abi.CTRL_FREE_HEAD).emit("local.get", block).emit("i32.atomic.store")
    b.emit("call", unlock)
    b.atomic_add(abi.CTRL_BLOCKS_LIVE, -1)
    return b


def _thread_destroy(rt: _Runtime, free: int, overflow: int) -> _Code:
    """Release the calling instance's block; a no-op on the main instance or when released::

        (local.tee $block (global.get $threadify_block)) i32.eqz
        if return end
        (i32.ne (i32.load offset=CANARY $block) CANARY)
        if call $threadify_stack_overflow end     ;; the stack ran into the block header
        (global.set $threadify_block 0)
        (call $threadify_free_block $block)
    """
    b = rt.code()
    block = b.local(I32)
    b.emit("global.get", rt.block).emit("local.tee", block).emit("i32.eqz")
    with b.if_():
        b.emit("return")
    b.emit("local.get", block).emit("i32.load", abi.BLOCK_CANARY)
    b.i32_const(abi.CANARY).emit("i32.ne")
    with b.if_():
        b.emit("call", overflow)
    b.i32_const(0).emit("global.set", rt.block)
    b.emit("local.get", block).emit("call", free)
    return b


def _wasi_thread_start(rt: _Runtime, alloc: int, destroy: int) -> _Code:
    """``wasi_thread_start(tid, start_arg)``, called by the host in every new instance::

        (local.set $func (i32.load offset=FUNC $start_arg))   ;; read first: the spawner may
        (local.set $arg (i32.load offset=ARG $start_arg))     ;; reuse it once we run
        (global.set $threadify_tid $tid)
        (i32.atomic.rmw.add $starts 1) drop
        (global.set $threadify_block (local.tee $block (call $threadify_alloc_block)))
        (global.set $__stack_pointer (i32.add $block STACK_TOP))
        [stack limits, TLS: see _stack_limits and _tls]
        (call_indirect (param i32) $arg $func)
        call $threadify_thread_destroy
    """
    plan = rt.plan
    b = rt.code(params=(I32, I32))
    tid, start_arg = 0, 1
    func, arg, block = b.local(I32), b.local(I32), b.local(I32)
    b.emit("local.get", start_arg).emit("i32.load", abi.START_FUNC).emit("local.set", func)
    b.emit("local.get", start_arg).emit("i32.load", abi.START_ARG).emit("local.set", arg)
    b.emit("local.get", tid).emit("global.set", rt.tid)
    b.atomic_add(abi.CTRL_STARTS, 1)
    b.emit("call", alloc).emit("local.tee", block).emit("global.set", rt.block)
    b.emit("local.get", block).i32_const(plan.layout.stack_top).emit("i32.add")
    b.emit("global.set", plan.stack_pointer)
    if plan.stack_limits is not None:
        _stack_limits(b, plan, block)
    if plan.tls_base is not None and plan.layout.tls_size > 0:
        _tls(b, plan, block)
    b.emit("local.get", arg).emit("local.get", func)
    b.emit("call_indirect", rt.one_i32, TABLE)
    b.emit("call", destroy)
    return b


def _stack_limits(b: _Code, plan: RuntimePlan, block: int) -> None:
    """The thread's stack limits, for ``--stack-check``::

        (global.set $stack_low (i32.add $block HEADER))      ;; lowest usable byte
        (global.set $stack_high (i32.add $block STACK_TOP))  ;; the top (initial SP)
    """
    assert plan.stack_limits is not None
    low, high = plan.stack_limits
    b.emit("local.get", block).i32_const(abi.BLOCK_HEADER).emit("i32.add")
    b.emit("global.set", low)
    b.emit("local.get", block).i32_const(plan.layout.stack_top).emit("i32.add")
    b.emit("global.set", high)


def _tls(b: _Code, plan: RuntimePlan, block: int) -> None:
    """The thread's TLS block, initialised from the template::

        (local.set $tls (i32.add $block TLS_OFFSET))
        (call $__wasm_init_tls $tls)            ;; when lld's is there and .tdata is not known
      or
        (global.set $__tls_base $tls)
        (memory.init $.tdata $tls 0 TDATA_LEN)
        (memory.fill (i32.add $tls TDATA_LEN) 0 TLS_SIZE-TDATA_LEN)   ;; when .tbss is not in it
    """
    assert plan.tls_base is not None
    tls = b.local(I32)
    b.emit("local.get", block).i32_const(plan.layout.tls_offset).emit("i32.add")
    b.emit("local.set", tls)
    if plan.init_tls is not None and plan.tdata is None:
        b.emit("local.get", tls).emit("call", plan.init_tls)
        return
    assert plan.tdata is not None
    b.emit("local.get", tls).emit("global.set", plan.tls_base)
    b.emit("local.get", tls).i32_const(0).i32_const(plan.tdata_len)
    b.emit("memory.init", plan.tdata, MEMORY)
    zeros = plan.layout.tls_size - plan.tdata_len
    if zeros > 0:
        b.emit("local.get", tls).i32_const(plan.tdata_len).emit("i32.add")
        b.i32_const(0).i32_const(zeros).emit("memory.fill", MEMORY)


def _init(rt: _Runtime, oom: int) -> _Code:
    """The start function: the first instance initialises memory, later ones wait for it::

        (i32.lt_u (memory.size) CONTROL_END_PAGES)
        if                          ;; room for the control block (only the first finds none)
          (memory.grow (i32.sub CONTROL_END_PAGES (memory.size))) (i32.eq -1)
          if call $threadify_out_of_memory end
        end
        (i32.atomic.rmw.cmpxchg $init_flag NOT_STARTED RUNNING) i32.eqz
        if                          ;; the first instance: write memory exactly once
          [memory.init / data.drop of every segment that was active]
          [call the module's own start function]
          (i32.atomic.store $block_size SIZE)
          (i32.atomic.store $magic MAGIC)
          (i32.atomic.store $init_flag DONE)
          (memory.atomic.notify $init_flag all) drop
        else                        ;; a later instance: wait while the first is initialising
          loop
            (i32.eq (i32.atomic.load $init_flag) RUNNING)
            if (memory.atomic.wait32 $init_flag RUNNING forever) drop br 1 end
          end
        end
        [call lld's __wasm_init_memory, which every instance runs]
    """
    plan = rt.plan
    control_end_pages = (plan.control + abi.CONTROL_PAGES * abi.PAGE) // abi.PAGE
    b = rt.code()
    b.emit("memory.size", MEMORY).i32_const(control_end_pages).emit("i32.lt_u")
    with b.if_():
        b.i32_const(control_end_pages).emit("memory.size", MEMORY).emit("i32.sub")
        b.emit("memory.grow", MEMORY).i32_const(GROW_FAILED).emit("i32.eq")
        with b.if_():
            b.emit("call", oom)
    b.compare_exchange(abi.CTRL_INIT_FLAG, abi.INIT_NOT_STARTED, abi.INIT_RUNNING)
    b.emit("i32.eqz")
    with b.if_():
        b.emit_code(_segment_writes(plan.segments))
        if plan.start_once is not None:
            b.emit("call", plan.start_once)
        b.atomic_store(abi.CTRL_BLOCK_SIZE, plan.layout.size)
        b.atomic_store(abi.CTRL_MAGIC, abi.CONTROL_MAGIC)
        b.atomic_store(abi.CTRL_INIT_FLAG, abi.INIT_DONE)
        b.notify(abi.CTRL_INIT_FLAG, NOTIFY_ALL)
    with b.else_():
        with b.loop():
            b.atomic_load(abi.CTRL_INIT_FLAG)
            b.i32_const(abi.INIT_RUNNING).emit("i32.eq")
            with b.if_():
                b.wait_while(abi.CTRL_INIT_FLAG, abi.INIT_RUNNING)
                b.emit("br", 1)
    if plan.start_every_instance is not None:
        b.emit("call", plan.start_every_instance)
    return b


_I32_CONST = BY_NAME["i32.const"][0]
_MEMORY_INIT = BY_NAME["memory.init"][0]
_DATA_DROP = BY_NAME["data.drop"][0]
_ZERO = _I32_CONST + sleb(0)
_IN_MEMORY = uleb(MEMORY)
_END = BY_NAME["end"][0]
#: One segment's write (offset expression, length, segment index), then its ``data.drop``
#: (segment index again) or, for ``.tdata``, none: filled by one ``%`` per segment.
_WRITE = b"%b" + _ZERO + _I32_CONST + b"%b" + _MEMORY_INIT + b"%b" + _IN_MEMORY
_WRITE_DROP = _WRITE + _DATA_DROP + b"%b"


def _segment_writes(segments: Sequence[SegmentInit]) -> bytes:
    """The first instance's data initialisation, encoded directly.

    For every segment::

        <its offset expression>            ;; a constant expression is valid code without `end`
        (memory.init $seg (i32.const 0) (i32.const LEN))
        (data.drop $seg)                   ;; except .tdata, the TLS template

    Built as bytes, not :class:`~threadify.wasm.Instr` s, because large modules have thousands
    of segments (10 000 in CRuby): one template per segment, filled in one operation.
    """
    out = []
    for segment, offset, length, keep in segments:
        assert offset[-1:] == _END  # the constant expression's `end`, left out
        encoded = uleb(segment)
        if keep:
            out.append(_WRITE % (offset[:-1], sleb(length), encoded))
        else:
            out.append(_WRITE_DROP % (offset[:-1], sleb(length), encoded, encoded))
    return b"".join(out)


def ensure_table(module: Module) -> bool:
    """Give the module a funcref table 0 if it has none (``call_indirect`` needs one)."""
    has = any(imp.kind == ExternKind.TABLE for imp in module.imports) or bool(module.tables)
    if has:
        return False
    module.tables.append(TableType(FUNCREF, 0, 0))
    return True
