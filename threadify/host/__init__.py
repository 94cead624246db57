"""The bundled WASI host (docs/host.md), built on wasmtime-py: WASI-threads, WASIX threads, plain.

``run(module, ...)`` executes a WASI command module — threaded (one shared memory import,
``wasi.thread-spawn`` or WASIX ``thread_spawn_v2``) or plain (single-threaded, any memory) — and
returns its exit code, leaving the calling process as it was: the run happens in a child
process, because ending a run means stopping threads that may be parked where nothing but
process exit reaches them (see :mod:`threadify.host.termination`).

It runs on :mod:`threadify.native` (wasmtime's C functions, declared over wasmtime-py's library
so that a run does not import wasmtime-py, and the compiled-module cache). Modules:
:mod:`~threadify.host.loading` (checks, compilation through the cache),
:mod:`~threadify.host.memory` (the shared memory and the wasmtime-py 50 workaround),
:mod:`~threadify.host.linking` (raw host functions), :mod:`~threadify.host.spawning`
(thread-spawn), :mod:`~threadify.host.wasix` (WASIX threads), :mod:`~threadify.host.wasi`
(preview1 over one fd table), :mod:`~threadify.host.sandbox` (preopens),
:mod:`~threadify.host.entry` (what a run calls, as the wasmtime CLI),
:mod:`~threadify.host.program` (one run in this process), :mod:`~threadify.host.isolation`
(library mode).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

__all__ = ["DEFAULT_MAX_THREADS", "EXIT_INTERRUPTED", "EXIT_TRAP", "run"]

from threadify.host.termination import EXIT_INTERRUPTED, EXIT_TRAP

DEFAULT_MAX_THREADS = 128


def run(module: bytes | str | os.PathLike[str], *, args: Sequence[str] = (),
        dirs: Iterable[str] = (), env: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        stdin: bytes | int | IO[Any] | None = None, stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None, max_threads: int = DEFAULT_MAX_THREADS,
        timeout: float | None = None) -> int:
    """Run a WASI command module (threaded or plain, docs/host.md) and return its exit code.

    ``module``: the module's bytes or a path. ``args``: the program's arguments (argv[0] is the
    module's file name). ``dirs``: preopens as ``HOST[::GUEST]``. ``env``: the program's whole
    environment (nothing is inherited). ``stdin``: ``None`` inherits the caller's, or bytes to
    feed, a file object or an fd. ``stdout``/``stderr``: ``None`` inherits, or a file object
    (anything with ``write``, e.g. ``io.BytesIO``) or an fd. ``max_threads``: spawned threads
    alive at once. ``timeout``: seconds before the run is killed (``TimeoutExpired`` raised).

    Exit code: the program's ``proc_exit`` status, 0 when ``_start`` returns, 134 after a trap
    (with one line on stderr naming the trap and the thread), 1 for a host-side failure.
    Bad input (not a module, unknown imports, an import of the wrong type, ...) raises
    :class:`~threadify.errors.ThreadifyError` with a one-line message.
    """
    from threadify.host.isolation import run_isolated

    pairs = list(env.items()) if isinstance(env, Mapping) else [tuple(kv) for kv in env]
    return run_isolated(module, args=list(args), dirs=list(dirs),
                        env=[(str(k), str(v)) for k, v in pairs], stdin=stdin, stdout=stdout,
                        stderr=stderr, max_threads=max_threads, timeout=timeout)
