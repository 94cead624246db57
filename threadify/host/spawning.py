"""``wasi.thread-spawn``: a new instance of the module, in a new host thread.

Per the WASI-threads proposal the spawner instantiates the module again (same imports, same shared
memory) and calls ``wasi_thread_start(tid, start_arg)`` in a new thread. Everything reusable is
made once per program: the Engine, the compiled Module, the Linker and its ``InstancePre`` (import
resolution done), and the WASI state (one shared object, nothing per thread). What remains per
spawn is a Store, an instantiation and one call, all through the raw C API (the wasmtime-py
wrappers cost several times more).

Instantiation happens in the spawning thread, as in wasmtime, so that a failure can be reported
as a negative return value. The instance then runs on a pooled OS thread: a finished thread parks
and takes the next spawn, so sequential spawn+join pays no thread creation. TIDs come from a
counter in [1, 2^29), skip TIDs still alive, and wrap; ``max_threads`` bounds how many spawned
threads are alive at once (the main thread is not counted).

The same machinery serves WASIX's ``thread_spawn_v2`` (:mod:`threadify.host.wasix`), which
reports *why* a spawn failed as an errno: :meth:`Spawner.start` returns a :class:`Refusal`, and
``thread-spawn`` turns every refusal into -1. A program that is not threaded (its memory is not
one shared import, see :mod:`threadify.host.loading`) cannot spawn at all.
"""

from __future__ import annotations

import _thread
import ctypes
import enum
import sys
import threading
from typing import Any

from threadify.host import termination
from threadify.native import capi

TID_LIMIT = 1 << 29
SPAWN_FAILED = -1

_THREAD_START = b"wasi_thread_start"


class InstanceFailed(Exception):
    """Instantiation failed; carries a one-line reason and whether the start function trapped."""

    def __init__(self, reason: str, trapped: bool = False) -> None:
        super().__init__(reason)
        self.trapped = trapped


class Refusal(enum.Enum):
    """Why a spawn did not start a thread (``thread-spawn`` says -1 for all of them)."""

    NO_THREAD_START = "the module exports no wasi_thread_start(i32, i32)"
    NOT_SHARED = "the module's memory is not one shared, imported memory"
    LIMIT = "--max-threads threads are alive"
    FAILED = "instantiation or thread creation failed"


#: The running thread's TID (unset on the main thread), for WASIX ``thread_id``; ``exiting`` is
#: set by WASIX ``thread_exit`` just before it unwinds the thread with a trap.
THREAD = threading.local()


class Instance:
    """One instance in its own store, plus the export the thread will call."""

    __slots__ = ("store", "context", "func", "instance", "_extern")

    def __init__(self, engine_ptr: Any, pre_ptr: Any, export: bytes | None,
                 context: Any = None) -> None:
        """Instantiate in a new store, or in the store of ``context`` (then not owned here);
        ``export``: the function a thread will :meth:`call` (``None``: see
        :meth:`call_export`)."""
        if context is None:
            self.store: Any = capi.wasmtime_store_new(engine_ptr, None, capi.NULL_FINALIZER)
            self.context = capi.wasmtime_store_context(self.store)
        else:
            self.store = None
            self.context = context
        self._extern = capi.wasmtime_extern_t()
        self.instance = capi.wasmtime_instance_t()
        trap = ctypes.c_void_p()
        error = capi.wasmtime_instance_pre_instantiate(pre_ptr, self.context,
                                                       ctypes.byref(self.instance),
                                                       ctypes.byref(trap))
        if error or trap.value:
            reason = (termination.describe_error(error) if error
                      else termination.describe_trap(trap.value))
            self.close()
            raise InstanceFailed(reason, trapped=bool(trap.value))
        self.func: Any = None
        if export is not None:
            self.func = self._function(export)
            if self.func is None:
                self.close()
                raise InstanceFailed(f"no function export {export.decode()}")

    def _function(self, export: bytes) -> Any:
        """The function exported as ``export``, or ``None``."""
        found = capi.wasmtime_instance_export_get(self.context, ctypes.byref(self.instance),
                                                  export, len(export),
                                                  ctypes.byref(self._extern))
        if not found or int(self._extern.kind) != capi.EXTERN_FUNC:
            return None
        return capi.wasmtime_func_t(self._extern.of.func.store_id, self._extern.of.func.private)

    def call(self, tid: int | None, *params: int) -> None:
        """Call the export with ``i32`` parameters; a trap or error ends the whole run."""
        values = (capi.wasmtime_val_raw_t * max(1, len(params)))()
        for i, param in enumerate(params):
            values[i].i32 = param
        self._call(self.func, tid, values)

    def call_export(self, export: bytes, tid: int | None, params: list[tuple[str, Any]],
                    results: str) -> Any:
        """Call the function ``export`` (known to exist, of the type given by ``params`` and
        ``results`` kinds); its raw results. A trap or error ends the whole run."""
        values = (capi.wasmtime_val_raw_t * max(1, len(params), len(results)))()
        for i, (kind, value) in enumerate(params):
            setattr(values[i], _RAW_FIELD[kind], value)
        self._call(self._function(export), tid, values)
        return values

    def _call(self, func: Any, tid: int | None, values: Any) -> None:
        trap = ctypes.c_void_p()
        error = capi.wasmtime_func_call_unchecked(self.context, ctypes.byref(func), values,
                                                  len(values), ctypes.byref(trap))
        if error or trap.value:
            if getattr(THREAD, "exiting", False):
                THREAD.exiting = False  # WASIX thread_exit: the thread ends, nothing else
                return
            termination.trapped(tid, trap.value, error)

    def close(self) -> None:
        if self.store is not None:
            capi.wasmtime_store_delete(self.store)
            self.store = None


_RAW_FIELD = {"i": "i32", "I": "i64", "f": "f32", "F": "f64"}


class _Worker:
    __slots__ = ("wake", "job")

    def __init__(self) -> None:
        self.wake = _thread.allocate_lock()
        self.wake.acquire()
        self.job: tuple[int, int, Instance] | None = None


class Spawner:
    """Implements ``thread-spawn`` (and WASIX ``thread_spawn_v2``) for one program."""

    def __init__(self, engine: Any, max_threads: int, thread_start_ok: bool,
                 threaded: bool = True, first_tid: int = 1) -> None:
        self.engine_ptr = engine.ptr()
        self.pre_ptr: Any = None
        self._keep: tuple[Any, ...] = (engine,)
        self.max_threads = max_threads
        self.thread_start_ok = thread_start_ok
        self.threaded = threaded
        self.lock = threading.Lock()
        #: live TID -> a lock held while that thread runs (WASIX ``thread_join`` waits on it)
        self.live: dict[int, Any] = {}
        self.first_tid = self.next_tid = first_tid  # WASIX: 1 is the main thread
        self.idle: list[_Worker] = []
        self._explained = False

    def _explain_once(self, refusal: Refusal) -> None:
        """Say (once) why every spawn fails: the module was not made thread-ready."""
        if self._explained:
            return
        self._explained = True
        try:
            sys.stderr.write(f"threadify run: cannot spawn threads: {refusal.value}; run "
                             "`threadify in.wasm -o out.wasm` first to make it thread-ready\n")
            sys.stderr.flush()
        except Exception:  # a host function must never raise into wasmtime
            pass

    def use(self, instance_pre: Any) -> None:
        """The ``InstancePre`` to instantiate (made after ``thread-spawn`` itself is linked)."""
        self.pre_ptr = instance_pre.ptr()
        self._keep = (*self._keep, instance_pre)

    def _allocate_tid(self) -> int:
        first = self.first_tid
        tid = self.next_tid
        while tid in self.live:
            tid = tid + 1 if tid + 1 < TID_LIMIT else first
        self.next_tid = tid + 1 if tid + 1 < TID_LIMIT else first
        return tid

    def spawn(self, start_arg: int) -> int:
        """The host side of ``thread-spawn``; never raises, negative on failure."""
        result = self.start(start_arg)
        return SPAWN_FAILED if isinstance(result, Refusal) else result

    def start(self, start_arg: int) -> int | Refusal:
        """Start ``wasi_thread_start(tid, start_arg)`` in a new thread; its TID, or why not."""
        if not self.thread_start_ok:
            self._explain_once(Refusal.NO_THREAD_START)
            return Refusal.NO_THREAD_START
        if not self.threaded:
            self._explain_once(Refusal.NOT_SHARED)
            return Refusal.NOT_SHARED
        running = _thread.allocate_lock()
        running.acquire()
        with self.lock:
            if len(self.live) >= self.max_threads:
                return Refusal.LIMIT
            tid = self._allocate_tid()
            self.live[tid] = running
        try:
            instance = Instance(self.engine_ptr, self.pre_ptr, _THREAD_START)
        except InstanceFailed:
            self._finished(tid)
            return Refusal.FAILED
        job = (tid, start_arg, instance)
        try:
            worker = self.idle.pop()
        except IndexError:
            try:
                _thread.start_new_thread(self._worker_main, (job,))
            except RuntimeError:  # the OS refused another thread
                instance.close()
                self._finished(tid)
                return Refusal.FAILED
            return tid
        worker.job = job
        worker.wake.release()
        return tid

    def join(self, tid: int) -> None:
        """Wait until thread ``tid`` has ended (at once when no such thread is alive)."""
        with self.lock:
            running = self.live.get(tid)
        if running is not None:
            running.acquire()
            running.release()

    def _finished(self, tid: int) -> None:
        with self.lock:
            running = self.live.pop(tid, None)
        if running is not None:
            running.release()

    def _worker_main(self, job: tuple[int, int, Instance]) -> None:
        worker = _Worker()
        while True:
            tid, start_arg, instance = job
            THREAD.tid = tid
            instance.call(tid, tid, start_arg)
            instance.close()
            self._finished(tid)
            self.idle.append(worker)
            worker.wake.acquire()
            assert worker.job is not None
            job, worker.job = worker.job, None
