"""How a run ends: ``proc_exit``, a trap, ``_start`` returning, Ctrl-C.

WASI-threads says a trap or ``proc_exit`` in any thread ends *every* thread. Threads can be parked
where nothing in wasmtime-py can reach them: in ``memory.atomic.wait32`` (woken only by a notify on
the same address), in a busy loop (epoch interruption would stop it, at up to 3x the cost of tight
loops), or in a native blocking read. So the engine always runs in a process of its own (the CLI
process, or a child process for library callers, see :mod:`threadify.host.isolation`) and ends a
run the way wasmtime's CLI does: write the message, then ``_exit`` the process. The kernel stops
every thread at once, whatever it is blocked in, and releases every resource.

Exit codes: ``proc_exit(n)`` gives ``n`` for ``0 <= n < 126`` (wasmtime rejects larger values and
exits 1, we do the same); a trap gives 134 (what the wasmtime CLI reports, 128 + SIGABRT); Ctrl-C
gives 130; a host-side failure gives 1.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any, NoReturn

EXIT_TRAP = 134
EXIT_INTERRUPTED = 130
EXIT_HOST_ERROR = 1

_ending = threading.Lock()


def end_run(code: int, message: str | None = None) -> NoReturn:
    """End the whole run with ``code``, first writing ``message`` as one line on stderr.

    The first caller wins; a second thread ending at the same moment blocks here until the
    process is gone, so exactly one message and one code come out.
    """
    _ending.acquire()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream must not stop the exit
            pass
    if message:
        try:
            os.write(2, (f"threadify run: {message}\n").encode(errors="replace"))
        except OSError:
            pass
    os._exit(code)


def proc_exit(status: int) -> NoReturn:
    """WASI ``proc_exit``: statuses outside [0, 126) are refused as wasmtime refuses them."""
    status &= 0xFFFFFFFF
    if status >= 126:
        end_run(EXIT_HOST_ERROR, f"proc_exit({status}): exit status must be in [0, 126)")
    end_run(status)


def thread_label(tid: int | None) -> str:
    return "main thread" if tid is None else f"thread {tid}"


def describe_trap(trap_ptr: Any) -> str:
    """One line naming the trap (wasmtime's message also carries a multi-line backtrace).

    The innermost named frames of the backtrace are appended (``in f, called from g``): a trap
    raised on purpose by a named function (such as ``threadify_stack_overflow``) then says what
    happened, and where, on the one line the user sees."""
    try:
        from threadify.native import capi

        message = capi.trap_text(trap_ptr)
    except Exception:  # noqa: BLE001 - describing must never fail
        return "wasm trap"
    return _one_line(message) + _where(trap_ptr)


def _where(trap_ptr: Any) -> str:
    """`` in NAME[, called from CALLER]`` from the trap's first two frames, or ``""``."""
    try:
        from threadify.native import capi

        names = capi.trap_function_names(trap_ptr, 2)
    except Exception:  # noqa: BLE001 - a missing backtrace only loses detail
        return ""
    if not names or not names[0]:
        return ""
    where = f" in {names[0]}"
    if len(names) > 1 and names[1]:
        where += f", called from {names[1]}"
    return where


def describe_error(error_ptr: Any) -> str:
    try:
        from threadify.native import capi

        message = capi.error_text(error_ptr)
    except Exception:  # noqa: BLE001
        return "wasmtime error"
    return _one_line(message)


def _one_line(message: str) -> str:
    # wasmtime numbers the causes of an error ("1: wasm trap: ..."): drop the numbering
    lines = [re.sub(r"^\d+:\s+(?=\D)", "", line.strip())
             for line in message.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("wasm trap:"):
            return line
    for line in reversed(lines):
        if not line[:1].isdigit() and not line.startswith(("error while", "Caused by",
                                                              "Stack backtrace", "at ")):
            return line
    return lines[0] if lines else "wasm trap"


def trapped(tid: int | None, trap_ptr: Any = None, error_ptr: Any = None) -> NoReturn:
    """A thread's wasm call ended with a trap (or an error): the whole run ends."""
    what = describe_trap(trap_ptr) if trap_ptr else describe_error(error_ptr)
    end_run(EXIT_TRAP, f"{thread_label(tid)} trapped: {what}")
