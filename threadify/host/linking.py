"""Host functions at the raw C-API level, with nothing allowed to escape into wasmtime.

wasmtime-py's ``Linker.define_func`` wraps every call in a ``Caller`` object and ``Val``
conversions, and parks a raised exception in one process-wide slot from where it can surface in
*another* thread's call. Here every host function is one ``wasmtime_linker_define_func_unchecked``
entry sharing one of two ctypes trampolines (the second also keeps the caller, for a plain
program's memory: :func:`define`): arguments are read straight from the raw value array, the
result written back in place. The trampolines catch everything: an expected failure becomes
a WASI errno; anything else (a host bug) becomes a wasm trap carrying a one-line message, which
ends the run like any other trap. The functions are store-independent, so one linker (and one
``InstancePre``) serves every thread.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from threadify.host import termination
from threadify.host.memory import CURRENT_CALL, GuestFault
from threadify.host.wasi import M32, PREVIEW1, GuestTrap, Wasi, errno_of
from threadify.host.wasi_snapshots import implementation, signature
from threadify.native import capi

Handler = Callable[[Any], int]

# Index 0 is never used: ctypes passes a NULL env as None.
_HANDLERS: list[Handler | None] = [None]


def trap_pointer(message: str) -> int:
    """A new wasm trap carrying ``message``: what a host function returns to trap its caller."""
    raw = message.encode(errors="replace")
    return int(capi.wasmtime_trap_new(raw, len(raw)) or 0)


def _call(env: int | None, args: Any) -> int:
    """Run handler ``env``; whatever it raises becomes a trap with a one-line message."""
    try:
        handler = _HANDLERS[env or 0]
        assert handler is not None
        return handler(args)
    except BaseException as exc:  # noqa: BLE001 - nothing may unwind into wasmtime
        try:
            return trap_pointer(f"host error: {type(exc).__name__}: {exc}")
        except BaseException:  # noqa: BLE001
            return 0


@capi.callback_t  # type: ignore[untyped-decorator]
def _dispatch(env: int | None, caller: Any, args: Any, nargs: int) -> int:
    """The trampoline of host functions that need nothing of their caller (a threaded
    program's memory is the one shared memory, known at link time)."""
    return _call(env, args)


@capi.callback_t  # type: ignore[untyped-decorator]
def _dispatch_with_caller(env: int | None, caller: Any, args: Any, nargs: int) -> int:
    """The trampoline of a plain program's WASI functions: the memory they use is the caller's
    (:class:`~threadify.host.memory.CallerMemory`), so the caller is kept for the call."""
    call = CURRENT_CALL
    outer = getattr(call, "caller", None)
    call.caller, call.region = caller, None  # restored for a nesting call
    try:
        return _call(env, args)
    finally:
        call.caller, call.region = outer, None


@capi.finalizer_t  # type: ignore[untyped-decorator]
def _no_finalizer(env: int | None) -> None:
    """Handlers live as long as the process (a run is one process)."""


# Function types by signature: made once (a WASI program has ~10 distinct ones among ~30
# imports) and never freed (the linker only borrows them; a run is one process).
_FUNCTYPES: dict[tuple[str, str], int] = {}
_VALKINDS = {"i": capi.VALKIND_I32, "I": capi.VALKIND_I64}


def _functype(params: str, results: str) -> int:
    key = (params, results)
    found = _FUNCTYPES.get(key)
    if found is None:
        vecs = []
        for kinds in key:
            vec = capi.wasm_ptr_vec_t()
            types = (ctypes.c_void_p * max(1, len(kinds)))(
                *[capi.wasm_valtype_new(_VALKINDS[k]) for k in kinds])
            capi.wasm_valtype_vec_new(ctypes.byref(vec), len(kinds), types)
            vecs.append(vec)
        found = _FUNCTYPES[key] = int(capi.wasm_functype_new(ctypes.byref(vecs[0]),
                                                             ctypes.byref(vecs[1])))
    return found


def define(linker: Any, module: str, name: str, params: str, results: str,
           handler: Handler, *, caller_memory: bool = False) -> None:
    """Define ``module.name`` in ``linker`` (wasmtime-py's or a raw handle) as ``handler``.

    ``caller_memory``: the handler reaches guest memory through a
    :class:`~threadify.host.memory.CallerMemory`, which needs to know the calling instance.
    Only then is the caller kept: two thread-local writes and a restore per call that a
    threaded program's calls need not pay.
    """
    _HANDLERS.append(handler)
    index = len(_HANDLERS) - 1
    mod_raw, name_raw = module.encode(), name.encode()
    capi.check(capi.wasmtime_linker_define_func_unchecked(
        linker.ptr(), mod_raw, len(mod_raw), name_raw, len(name_raw),
        _functype(params, results), _dispatch_with_caller if caller_memory else _dispatch,
        index, _no_finalizer))


def memoryless_handler(name: str) -> Handler:
    """A WASI function of a module that has no memory WASI could use: the call ends the run.

    wasmtime's WASI looks for the caller's ``memory`` export on every call, ``proc_exit``
    included, and fails the run (exit 1) with "missing required memory export"; so do we.
    """
    def handler(args: Any) -> int:
        termination.end_run(termination.EXIT_HOST_ERROR,
                            f"main thread: {name}: the module exports no memory, which WASI "
                            "needs (missing required memory export)")

    return handler


def wasi_handler(wasi: Wasi, name: str, module: str = PREVIEW1, *,
                 served_as: str | None = None,
                 guest_errno: Callable[[Exception], int] | None = None) -> Handler:
    """Adapt WASI function ``module``.``name`` to the raw calling convention.

    A :class:`~threadify.host.wasi.GuestTrap` (bad pointer, argument outside its type) ends the
    run with exit code 1, as the wasmtime CLI ends it for the same calls — unless
    ``guest_errno`` turns it into an errno (WASIX serves the same implementation under
    ``served_as``, answering as Wasmer does: :mod:`threadify.host.wasix`).
    """
    impl = implementation(wasi, module, name)
    params, results = signature(module, name) or ("", "")
    spec = [(i, kind == "I") for i, kind in enumerate(params)]
    has_result = bool(results)
    where = f"{served_as}.{name}" if served_as else name

    def handler(args: Any) -> int:
        values = [args[i].i64 if wide else args[i].i32 & M32 for i, wide in spec]
        try:
            result = impl(*values)
        except (GuestTrap, GuestFault) as exc:
            if guest_errno is None:
                termination.end_run(termination.EXIT_HOST_ERROR, f"{module}.{name}: {exc}")
            result = guest_errno(exc)
        except Exception as exc:  # noqa: BLE001 - translated, never re-raised into wasm
            code = errno_of(exc)
            if code is None:
                return trap_pointer(f"host error in {where}: {type(exc).__name__}: {exc}")
            result = code
        if has_result:
            args[0].i32 = result
        return 0

    return handler


def define_wasi(linker: Any, wasi: Wasi, imports: list[tuple[str, str]], *,
                caller_memory: bool = False) -> None:
    """Define each imported WASI function once (a module may import one name twice)."""
    for module, name in dict.fromkeys(imports):
        params, results = signature(module, name) or ("", "")
        define(linker, module, name, params, results, wasi_handler(wasi, name, module),
               caller_memory=caller_memory)
