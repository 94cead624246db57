"""WASIX threads: the ``wasix_32v1`` thread calls, as Wasmer implements them (docs/host.md).

WASIX is Wasmer's extension of WASI preview1. Its thread ABI differs from WASI-threads in how a
thread is described and how failures are reported: ``thread_spawn_v2(start_ptr, ret_tid)`` gets
the address of a 64-byte ``ThreadStart`` record (wasm32: ``stack_upper, tls_base, start_funct,
start_args, reserved[10], stack_size, guard_size``, all u32) that the guest's own
``wasi_thread_start(tid, start_ptr)`` reads, writes the new TID at ``ret_tid`` and returns an
errno. Threads are made exactly as for ``thread-spawn`` (:mod:`threadify.host.spawning`).

Only what a WASIX libc's pthreads need for threads to start, wait for each other and end is
provided, each call checked against Wasmer by the differential tests in
``tests/host/test_wasix.py``:

- ``thread_spawn_v2`` (and its older name ``thread_spawn``): the record must lie in memory
  (else ``MEMVIOLATION``, 78); then ``NOTCAPABLE`` (76) without a ``wasi_thread_start`` export,
  ``MEMVIOLATION`` when the memory is not shared. The TID is written after the thread started, so
  a bad ``ret_tid`` gives ``MEMVIOLATION`` with the thread running — Wasmer's order.
- TIDs: the main thread is 1, spawned threads get 2, 3, ... (``thread_id``).
- ``thread_exit``: ends the calling thread; in the main thread it ends the program with 0, as
  returning from ``_start`` does.
- ``thread_join(tid)``: waits for a live thread (for the main thread: until the run ends); at
  once for any other TID.
- ``thread_sleep(ns)``, ``thread_parallelism`` (the CPUs this process may run on).
- ``proc_exit2(code)`` and ``proc_exit(code)`` under ``wasix_32v1``: end the program with
  ``code & 0xff`` (preview1's ``proc_exit`` refuses 126 and up, as wasmtime).
- ``futex_wait(ptr, expected, timeout_ptr, ret_woken)``, ``futex_wake``, ``futex_wake_all``:
  a futex table of the host's own (it does not wake ``memory.atomic.wait32``, nor the other way
  round, as in Wasmer). ``futex_wait`` returns success both when the value differed and on a
  timeout, telling them apart only by ``*ret_woken`` (1, resp. 0); the wakes always report 1.
- The preview1 functions under ``wasix_32v1`` (Wasmer serves both namespaces with the same code):
  the same implementations as ``wasi_snapshot_preview1``, except that a bad pointer or argument
  is an errno as in Wasmer (``MEMVIOLATION``; ``UNKNOWN``, 79, when misaligned) where preview1
  ends the run as wasmtime does.

Any bad pointer is an errno (``MEMVIOLATION``), never a trap.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from threadify.host import termination
from threadify.host.linking import Handler, define, memoryless_handler, trap_pointer, wasi_handler
from threadify.host.memory import GuestFault
from threadify.host.spawning import THREAD, Refusal
from threadify.host.wasi import M32, M64, PREVIEW1, GuestMisaligned
from threadify.host.wasi_snapshots import signature

WASIX_MODULE = "wasix_32v1"

ESUCCESS = 0
EAGAIN = 6
ENOTCAPABLE = 76
EMEMVIOLATION = 78  # WASIX's errno for a guest pointer outside memory
EUNKNOWN = 79  # what Wasmer answers for a misaligned pointer

THREAD_START_SIZE = 64
MAIN_TID = 1

#: The calls implemented here (the others are preview1's): name -> (parameter kinds, result
#: kinds); 'i' = i32, 'I' = i64.
CALLS: dict[str, tuple[str, str]] = {
    "thread_spawn_v2": ("ii", "i"),
    "thread_spawn": ("ii", "i"),
    "thread_id": ("i", "i"),
    "thread_exit": ("i", ""),
    "thread_join": ("i", "i"),
    "thread_sleep": ("I", "i"),
    "thread_parallelism": ("i", "i"),
    "futex_wait": ("iiii", "i"),
    "futex_wake": ("ii", "i"),
    "futex_wake_all": ("ii", "i"),
    # how a WASIX program ends (wasix-libc's exit paths call proc_exit2)
    "proc_exit2": ("i", ""),
    "proc_exit": ("i", ""),
}


def wasix_signature(name: str) -> tuple[str, str] | None:
    """The wasm32 type of ``wasix_32v1.<name>`` as this host provides it, or ``None``."""
    if name in CALLS:
        return CALLS[name]
    return signature(PREVIEW1, name)


def parallelism() -> int:
    """CPUs this process may run on (what Rust's ``available_parallelism`` reports)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Futexes:
    """WASIX futexes: per address, the waiters in arrival order, each a lock it blocks on.

    A waiter is registered before the value is compared, so a wake that comes between the
    comparison and the wait is not lost (the waiter's lock is then already released).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiters: dict[int, list[Any]] = {}

    def register(self, addr: int) -> Any:
        waiter = threading.Lock()
        waiter.acquire()
        with self.lock:
            self.waiters.setdefault(addr, []).append(waiter)
        return waiter

    def withdraw(self, addr: int, waiter: Any) -> bool:
        """Remove ``waiter`` if still registered; False when a wake already took it."""
        with self.lock:
            queue = self.waiters.get(addr)
            if queue is None or waiter not in queue:
                return False
            queue.remove(waiter)
            if not queue:
                del self.waiters[addr]
            return True

    def wake(self, addr: int, count: int | None) -> int:
        with self.lock:
            queue = self.waiters.get(addr, [])
            taken = queue if count is None else queue[:count]
            rest = [] if count is None else queue[count:]
            if rest:
                self.waiters[addr] = rest
            else:
                self.waiters.pop(addr, None)
        for waiter in taken:
            waiter.release()
        return len(taken)


class Wasix:
    """The WASIX thread calls of one program, over its memory and its spawner."""

    def __init__(self, memory: Any, spawner: Any) -> None:
        self.mem = memory
        self.spawner = spawner
        self.futexes = Futexes()

    def thread_spawn_v2(self, start_ptr: int, ret_tid: int) -> int:
        try:
            self.mem.check(start_ptr, THREAD_START_SIZE)
        except GuestFault:
            return EMEMVIOLATION
        result = self.spawner.start(start_ptr)
        if result is Refusal.NO_THREAD_START:
            return ENOTCAPABLE
        if result is Refusal.NOT_SHARED:
            return EMEMVIOLATION
        if isinstance(result, Refusal):
            return EAGAIN
        self.mem.set_u32(ret_tid, result)  # a GuestFault here: MEMVIOLATION, thread running
        return ESUCCESS

    def thread_id(self, ret_tid: int) -> int:
        self.mem.set_u32(ret_tid, getattr(THREAD, "tid", MAIN_TID))
        return ESUCCESS

    def thread_exit(self, code: int) -> None:
        """Never returns normally: the trampoline unwinds the thread (see ``_handler``)."""
        if getattr(THREAD, "tid", None) is None:
            termination.end_run(0)  # the main thread: the program ends, as Wasmer does
        THREAD.exiting = True

    def proc_exit2(self, code: int) -> None:
        """Ends every thread with exit status ``code & 0xff``, as Wasmer (and a POSIX shell)
        reports it; preview1's ``proc_exit`` refuses statuses of 126 and up, as wasmtime does.
        ``proc_exit`` under ``wasix_32v1`` is the same in Wasmer. (Wasmer's vfork case, where
        ``proc_exit2`` returns to the parent, does not arise: there is no ``proc_fork_env``.)"""
        termination.end_run(code & 0xFF)

    proc_exit = proc_exit2

    def thread_join(self, tid: int) -> int:
        if tid == MAIN_TID:  # the main thread ends the whole run: the caller never goes on
            threading.Event().wait()
        self.spawner.join(tid)
        return ESUCCESS

    def thread_sleep(self, duration: int) -> int:
        seconds = duration / 1e9
        if seconds > threading.TIMEOUT_MAX:  # longer than the host can wait: for ever
            threading.Event().wait()
        time.sleep(seconds)
        return ESUCCESS

    def thread_parallelism(self, ret: int) -> int:
        self.mem.set_u32(ret, parallelism())
        return ESUCCESS

    def futex_wait(self, addr: int, expected: int, timeout_ptr: int, ret_woken: int) -> int:
        tag = self.mem.read(timeout_ptr, 16)[0]
        timeout = self.mem.u64(timeout_ptr + 8) / 1e9 if tag == 1 else -1
        if timeout > threading.TIMEOUT_MAX:  # longer than the host can wait: no timeout
            timeout = -1
        waiter = self.futexes.register(addr)
        try:
            value = self.mem.u32(addr)
        except Exception:
            self.futexes.withdraw(addr, waiter)
            raise
        if value != expected:
            self.futexes.withdraw(addr, waiter)
            self.mem.write(ret_woken, b"\1")
            return ESUCCESS
        try:
            self.mem.write(ret_woken, b"\0")
        except Exception:
            self.futexes.withdraw(addr, waiter)
            raise
        woken = waiter.acquire(True, timeout)
        if not woken and not self.futexes.withdraw(addr, waiter):
            woken = True  # a wake took it between the timeout and the withdrawal
        self.mem.write(ret_woken, b"\1" if woken else b"\0")
        return ESUCCESS

    def futex_wake(self, addr: int, ret_woken: int) -> int:
        self.futexes.wake(addr, 1)
        self.mem.write(ret_woken, b"\1")
        return ESUCCESS

    def futex_wake_all(self, addr: int, ret_woken: int) -> int:
        self.futexes.wake(addr, None)
        self.mem.write(ret_woken, b"\1")
        return ESUCCESS


def define_wasix(linker: Any, names: list[str], wasi: Any, memory: Any, spawner: Any, *,
                 has_memory: bool = True, caller_memory: bool = False) -> None:
    """Define the ``wasix_32v1`` functions the module imports (``names``) in ``linker``.

    Without a memory WASI could use (``has_memory``), every call ends the run, decided here at
    link time as for the preview1 calls (docs/host.md, "Plain modules"). ``caller_memory``: the
    memory is the caller's (:func:`threadify.host.linking.define`).
    """
    wasix = Wasix(memory, spawner)
    for name in names:
        params, results = wasix_signature(name) or ("", "")
        handler: Handler
        if not has_memory:
            handler = memoryless_handler(name)
        elif name not in CALLS:  # a preview1 function: the same implementation
            handler = wasi_handler(wasi, name, served_as=WASIX_MODULE, guest_errno=_guest_errno)
        else:
            impl = getattr(wasix, "thread_spawn_v2" if name == "thread_spawn" else name)
            handler = _handler(name, impl, params, results)
        define(linker, WASIX_MODULE, name, params, results, handler,
               caller_memory=caller_memory and has_memory)


def _handler(name: str, impl: Any, params: str, results: str) -> Handler:
    """Adapt ``impl`` to the raw calling convention; a bad pointer becomes MEMVIOLATION.

    ``thread_exit`` unwinds its thread with a trap, which :mod:`threadify.host.spawning` ends
    quietly because the thread asked for it (``THREAD.exiting``).
    """
    wide = [kind == "I" for kind in params]
    exits = name == "thread_exit"

    def handler(args: Any) -> int:
        values = [args[i].i64 & M64 if w else args[i].i32 & M32 for i, w in enumerate(wide)]
        try:
            result = impl(*values)
        except GuestFault:
            result = EMEMVIOLATION
        if exits:
            return trap_pointer("thread_exit")
        if results:
            args[0].i32 = result
        return 0

    return handler


def _guest_errno(exc: Exception) -> int:
    """Wasmer's answer to a bad pointer or argument of a preview1 function under
    ``wasix_32v1``, where preview1 (as wasmtime's) ends the run: out of bounds is
    ``MEMVIOLATION``, a misaligned pointer ``UNKNOWN``."""
    return EUNKNOWN if isinstance(exc, GuestMisaligned) else EMEMVIOLATION
