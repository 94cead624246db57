"""Run one program in the current process, which the run then owns and ends.

This is what ``threadify run`` does directly and what the library's child process does (see
:mod:`threadify.host.isolation`). Start-up: read and check the module, compile it (cached), create
the memories it imports from their own import types, link WASI, ``thread-spawn``, the WASIX
thread calls and the memories once, then call the entry points (:mod:`threadify.host.entry`) on
a host thread. A threaded program's instances each get a store of their own; a plain program's
one instance lives in the store its memories were created in (docs/host.md, "Plain modules").
The Python main thread only waits, so Ctrl-C (which Python delivers to the main thread alone) is
seen even while wasm runs.

Whatever ends the run ends the process (see :mod:`threadify.host.termination`), so
:func:`execute` never returns; bad input is raised as ``ThreadifyError`` before anything runs.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Sequence
from ctypes import byref, c_void_p
from typing import Any, NoReturn

from threadify.errors import Hint, Suggestion, ThreadifyError
from threadify.host import DEFAULT_MAX_THREADS, entry, loading, termination
from threadify.host.linking import define, define_wasi
from threadify.host.memory import CallerMemory, LinearMemory, SharedLinearMemory, StoreMemory
from threadify.host.sandbox import Preopen
from threadify.native import capi
from threadify.native.cache import first_line


def parse_env(items: Sequence[str]) -> list[tuple[str, str]]:
    """``--env`` values as wasmtime's CLI reads them: ``K=V`` sets K (the first ``=`` splits,
    so the key may be empty), a bare ``K`` passes on this process's K (nothing when unset)."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            inherited = os.environ.get(key)
            if inherited is None:
                continue
            value = inherited
        out.append((key, value))
    return out


def ensure_standard_fds() -> None:
    """Open ``/dev/null`` on any of fds 0-2 that is closed, as Rust programs (wasmtime's CLI)
    start up: else the first file the host opens (the cached module) would become the guest's
    stdin or stdout."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:  # a lower fd was closed too and took it: move it
                os.dup2(opened, fd)
                os.close(opened)


def _check_utf8(name: str, args: Sequence[str], env: Sequence[tuple[str, str]]) -> None:
    """WASI passes arguments (argv[0]: the module's file name) and the environment as UTF-8;
    refuse what is not (the OS hands Python undecodable bytes as surrogates), as wasmtime's CLI
    does, before anything runs."""
    for what, text in [("the module's file name", name), *(("argument", a) for a in args),
                       *(("environment variable", f"{k}={v}") for k, v in env)]:
        try:
            text.encode()
        except UnicodeEncodeError:
            shown = text.encode(errors="surrogateescape").decode(errors="backslashreplace")
            raise ThreadifyError(f"{what} '{shown}' is not valid UTF-8, which WASI requires",
                                 "rename the file" if text is name else "pass it as UTF-8"
                                 ) from None


def execute(module: bytes | str | os.PathLike[str], args: Sequence[str] = (),
            dirs: Sequence[str | Preopen] = (), env: Sequence[tuple[str, str]] = (),
            max_threads: int = DEFAULT_MAX_THREADS) -> NoReturn:
    """Run ``module`` to the end and exit the process with its exit code."""
    from threadify.host.spawning import Instance, InstanceFailed, Spawner
    from threadify.host.wasi import Wasi

    if max_threads < 0:
        raise ThreadifyError(f"the thread limit must be 0 or more, not {max_threads}",
                             Hint("pass {} 0 or more", Suggestion("max_threads")))
    ensure_standard_fds()
    preopens = [d if isinstance(d, Preopen) else Preopen.parse(d) for d in dirs]
    source = loading.open_module(module)
    name = source.name
    _check_utf8(name, args, env)
    engine = loading.make_engine()
    compiled = loading.compile_module(engine, source)
    shape = loading.describe(compiled, name, source)
    linker = capi.Handle(capi.wasmtime_linker_new(engine.ptr()))
    scratch = capi.wasmtime_store_context(
        capi.wasmtime_store_new(engine.ptr(), None, capi.NULL_FINALIZER))
    memory = _link_memories(engine, linker, scratch, shape, name)
    wasi = Wasi(memory, [name, *args], list(env), preopens)
    caller_memory = isinstance(memory, CallerMemory)
    if shape.wasi_memory:
        define_wasi(linker, wasi, shape.wasi_imports, caller_memory=caller_memory)
    else:
        _define_wasi_without_memory(linker, shape.wasi_imports)
    # WASIX numbers the main thread 1, so its spawned threads start at 2
    spawner = Spawner(engine, max_threads, shape.thread_start_ok, shape.threaded,
                      first_tid=2 if shape.wasix_imports else 1)
    if shape.imports_thread_spawn:
        def thread_spawn(raw: Any) -> int:
            raw[0].i32 = spawner.spawn(raw[0].i32)
            return 0

        define(linker, "wasi", "thread-spawn", "i", "i", thread_spawn)
    if shape.wasix_imports:
        from threadify.host.wasix import define_wasix

        define_wasix(linker, shape.wasix_imports, wasi, memory, spawner,
                     has_memory=shape.wasi_memory, caller_memory=caller_memory)
    pre = c_void_p()
    try:
        capi.check(capi.wasmtime_linker_instantiate_pre(linker.ptr(), compiled.ptr(),
                                                        byref(pre)))
    except capi.NativeError as exc:  # e.g. one name imported with two memory types
        raise ThreadifyError(f"{name}: cannot link the module's imports: "
                             f"{first_line(str(exc))}") from None
    instance_pre = capi.Handle(pre.value)
    spawner.use(instance_pre)
    # a plain program's memories belong to the scratch store: the main instance lives there too
    main_context = None if shape.threaded else scratch

    def main_thread() -> None:
        try:
            instance = Instance(engine.ptr(), instance_pre.ptr(), None, main_context)
        except InstanceFailed as exc:
            if exc.trapped:  # the module's start function trapped: a trap like any other
                termination.end_run(termination.EXIT_TRAP, f"main thread trapped: {exc}")
            termination.end_run(termination.EXIT_HOST_ERROR, f"cannot instantiate {name}: {exc}")
        entry.run(instance, shape.entry, args)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # the command line starts up with the cyclic garbage collector off (threadify_cli.main);
    # the program may run for long, and the host's calls for it make garbage: on from here
    gc.enable()
    threading.Thread(target=main_thread, name="wasm-main", daemon=True).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        termination.end_run(termination.EXIT_INTERRUPTED, "interrupted")
    termination.end_run(termination.EXIT_HOST_ERROR, "host stopped waiting")


def _link_memories(engine: Any, linker: Any, context: Any, shape: loading.ProgramShape,
                   name: str) -> LinearMemory:
    """Create and link the memories the module imports; the memory WASI will use.

    A threaded program's one shared memory is linked into every thread's instance and is what
    WASI uses. A plain program runs alone in the store of ``context``: each imported memory is
    created there (or as a shared memory, if declared so) and WASI uses the caller's ``memory``
    export, as wasmtime's WASI does, or else the one imported memory (:class:`CallerMemory`).
    """
    created: list[SharedLinearMemory | StoreMemory] = []
    for imp in shape.memories:
        try:
            if imp.type.is_shared:
                shared = SharedLinearMemory(engine, imp.type)
                shared.define_in(linker, context, imp.module, imp.name)
                created.append(shared)
            else:
                plain = StoreMemory(context, imp.type)
                plain.define_in(linker, imp.module, imp.name)
                created.append(plain)
        except Exception as exc:  # noqa: BLE001 - wasmtime's reason, one line
            raise ThreadifyError(f"{name}: cannot create the memory {imp.module}.{imp.name}: "
                                 f"{first_line(str(exc))}") from None
    if shape.threaded:
        assert isinstance(created[0], SharedLinearMemory)
        return created[0]
    return CallerMemory(context, created[0] if len(created) == 1 else None)


def _define_wasi_without_memory(linker: Any, imports: list[tuple[str, str]]) -> None:
    """WASI for a module with no memory WASI could use: every call ends the run (exit 1)."""
    from threadify.host.linking import memoryless_handler
    from threadify.host.wasi_snapshots import signature

    for module, wasi_name in dict.fromkeys(imports):
        params, results = signature(module, wasi_name) or ("", "")
        define(linker, module, wasi_name, params, results, memoryless_handler(wasi_name))
