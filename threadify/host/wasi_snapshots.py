"""Which WASI snapshots the host serves, their functions' signatures and implementations.

Import module name -> {function name -> parameter kinds}. Both snapshots share one
:class:`~threadify.host.wasi.Wasi` (one fd table per program). Loading checks a module's imports
against this table; linking defines exactly the imported functions from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from threadify.host import wasi_unstable
from threadify.host.wasi import NO_RESULT, PREVIEW1, SIGNATURES, Wasi

WASI_MODULES: dict[str, dict[str, str]] = {
    PREVIEW1: SIGNATURES,
    wasi_unstable.MODULE: wasi_unstable.P0_SIGNATURES,
}

__all__ = ["NO_RESULT", "WASI_MODULES", "implementation", "signature"]


def signature(module: str, name: str) -> tuple[str, str] | None:
    """The wasm type of import ``module``.``name`` as (parameter kinds, result kinds), or
    ``None`` when this host has no such WASI function: what loading checks an import against
    and linking defines it with."""
    params = WASI_MODULES.get(module, {}).get(name)
    if params is None:
        return None
    return params, "" if name in NO_RESULT else "i"


def implementation(wasi: Wasi, module: str, name: str) -> Callable[..., Any]:
    """The host function behind import ``module``.``name``."""
    if module == wasi_unstable.MODULE:
        return wasi_unstable.implementation(wasi, name)
    return getattr(wasi, name)  # type: ignore[no-any-return]
