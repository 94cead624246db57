"""Run one program in the current process, which the run then owns and ends.

This is what ``threadify run`` does directly and what the library's child process does (see
:mod:`threadify.host.isolation`). Start-up: read and check the module, compile it (cached), create
the shared memory from the module's own import type, link WASI, ``thread-spawn`` and the memory
once, then run ``_start`` on a host thread. The Python main thread only waits, so Ctrl-C (which
Python delivers to the main thread alone) is seen even while wasm runs.

Whatever ends the run ends the process (see :mod:`threadify.host.termination`), so
:func:`execute` never returns; bad input is raised as ``ThreadifyError`` before anything runs.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from threadify.errors import ThreadifyError
from threadify.host import DEFAULT_MAX_THREADS, loading, termination
from threadify.host.linking import define, define_wasi
from threadify.host.memory import SharedLinearMemory
from threadify.host.sandbox import Preopen


def parse_env(items: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ThreadifyError(f"--env {item!r}: expected KEY=VALUE")
        out.append((key, value))
    return out


def execute(module: bytes | str | os.PathLike[str], args: Sequence[str] = (),
            dirs: Sequence[str | Preopen] = (), env: Sequence[tuple[str, str]] = (),
            max_threads: int = DEFAULT_MAX_THREADS) -> NoReturn:
    """Run ``module`` to the end and exit the process with its exit code."""
    from wasmtime import Linker, Store

    from threadify.host.spawning import Instance, InstanceFailed, Spawner
    from threadify.host.wasi import Wasi

    if max_threads < 0:
        raise ThreadifyError(f"--max-threads {max_threads}: must be 0 or more")
    preopens = [d if isinstance(d, Preopen) else Preopen.parse(d) for d in dirs]
    data, name = loading.read_module(module)
    engine = loading.make_engine()
    compiled = loading.compile_module(engine, data, name)
    shape = loading.describe(compiled, name)
    try:
        memory = SharedLinearMemory(engine, shape.memory_type)
    except Exception as exc:  # noqa: BLE001 - wasmtime's reason, one line
        raise ThreadifyError(f"{name}: cannot create the shared memory: "
                             f"{loading._first_line(str(exc))}") from None
    wasi = Wasi(memory, [name, *args], list(env), preopens)

    linker = Linker(engine)
    scratch = Store(engine)
    memory.define_in(linker, scratch._context(), shape.memory_module, shape.memory_name)
    define_wasi(linker, wasi, shape.wasi_imports)
    spawner = Spawner(engine, max_threads, shape.thread_start_ok)
    if shape.imports_thread_spawn:
        def thread_spawn(raw: Any) -> int:
            raw[0].i32 = spawner.spawn(raw[0].i32)
            return 0

        define(linker, "wasi", "thread-spawn", "i", "i", thread_spawn)
    instance_pre = linker.instantiate_pre(compiled)
    spawner.use(instance_pre)

    def main_thread() -> None:
        try:
            instance = Instance(engine.ptr(), instance_pre.ptr(), b"_start")
        except InstanceFailed as exc:
            termination.end_run(termination.EXIT_HOST_ERROR, f"cannot instantiate {name}: {exc}")
        instance.call(None)
        termination.end_run(0)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=main_thread, name="wasm-main", daemon=True).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        termination.end_run(termination.EXIT_INTERRUPTED, "interrupted")
    termination.end_run(termination.EXIT_HOST_ERROR, "host stopped waiting")
