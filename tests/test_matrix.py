"""The compiler × host matrix: every producer's output runs correctly on every host
(docs/matrix.md).

Producers: clang-22 freestanding C in every link variant (shared with and without the TLS
exports, defined or imported memory, non-shared, data-first, name section stripped), rustc
``#![no_core]`` + rust-lld, clang++-22 C++ (global constructor, ``thread_local``), ``zig cc``
on threadify's ABI, and Zig ``std.Thread`` (class C,
passed through unchanged). Hosts: the bundled host (``threadify run``), the wasmtime 36.0.9
and 46.0.1 CLIs, Node.js (V8 + ``node:wasi`` + worker threads, ``scripts/node-host``) and
Wasmer (PyPI ``wasmer-sdk`` 0.5.0, ``tests/wasmer_host.py``).
Each cell runs the program's own checks — several threads alive at once — and is repeated,
because races show up rarely. One program per host is quick (not on Node); the other cells are
marked slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import threadify
from tests.node_host import run_node_host
from tests.programs import PITFALLS, PROGRAMS, Program
from tests.tooling import THREADS_FEATURES, WASMTIME_VERSIONS, assert_valid, run_wasmtime
from tests.wasmer_host import run_wasmer

RUNNABLE = [p for p in PROGRAMS
            if p.klass in ("A", "B", "C") and p.runnable and p not in PITFALLS]
REPEATS = int(os.environ.get("THREADIFY_MATRIX_REPEATS", "3"))
HOSTS = ["threadify", *(f"wasmtime-{v}" for v in WASMTIME_VERSIONS), "node", "wasmer"]
#: The cell of each host that runs in every (not slow) test run.
QUICK_PROGRAM = "c/wasm/tls.nonshared.wasm"


def repeats(program: Program, host: str) -> int:
    """Node starts a Worker (~50 ms) per thread: the 232-thread churn program runs once there."""
    if host == "node" and program.threads_at_once and "churn" in program.id:
        return 1
    return REPEATS


class Built(dict[str, Path]):
    """Each program's threadify output, transformed (and validated) when a cell first needs it,
    so that a run of the quick cells alone does not transform every program."""

    def __init__(self, out_dir: Path) -> None:
        super().__init__()
        self.out_dir = out_dir

    def __missing__(self, program_id: str) -> Path:
        program = next(p for p in RUNNABLE if p.id == program_id)
        output = threadify.transform(program.path.read_bytes())
        assert_valid(output, THREADS_FEATURES)
        path = self.out_dir / program.id.replace("/", "__")
        path.write_bytes(output)
        self[program_id] = path
        return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return Built(tmp_path_factory.mktemp("matrix"))


def run_on(host: str, path: Path, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    if host == "node":
        return run_node_host(path, args, timeout=300)
    if host == "threadify":
        cmd = [sys.executable, "-m", "threadify", "run", str(path)]
        if args:
            cmd += ["--", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if host == "wasmer":
        # Wasmer 0.5.0 itself sometimes aborts a threaded run ("FATAL: exception not rethrown",
        # about 1 run in 8 of a 364-thread program, with or without threadify: a defect
        # of that engine, not of the module). run_wasmer sees the abort (the run reports no
        # result) and repeats such a run once; a second abort fails the cell. Wasmer 0.5.0 also
        # now and then never finishes a threaded run (tests/wasmer_host.py; seen on a loaded
        # machine with zig/std_thread.wasm, which threadify passes through unchanged): such a
        # run is repeated once too, and a second timeout fails the cell.
        run = run_wasmer(path, args, timeout=300, retry_abort=True, retry_hang=True)
        return subprocess.CompletedProcess([str(path)], run.returncode, run.stdout,
                                           run.stderr + (" [Wasmer aborted twice]"
                                                         if run.aborted else ""))
    version = host.removeprefix("wasmtime-")
    return run_wasmtime(version, path, list(args), timeout=300)


def _cells() -> list[object]:
    """Every program on every host; slow except QUICK_PROGRAM (but on Node, whose Worker per
    thread makes even that cell take seconds)."""
    return [pytest.param(program, host, id=f"{program.id}-{host}",
                         marks=() if program.id == QUICK_PROGRAM and host != "node"
                         else pytest.mark.slow)
            for program in RUNNABLE for host in HOSTS]


@pytest.mark.parametrize(("program", "host"), _cells())
def test_program_runs(program: Program, host: str, built: Built) -> None:
    for attempt in range(repeats(program, host)):
        proc = run_on(host, built[program.id], program.args)
        detail = f"attempt {attempt + 1}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert proc.returncode == program.exit_code, detail
        assert program.stdout is not None
        assert program.stdout in proc.stdout, detail


@pytest.mark.parametrize("program", PITFALLS, ids=[p.id for p in PITFALLS])
def test_foreign_spawner_abi_cannot_work(program: Program, tmp_path: Path) -> None:
    """Documented cell that cannot work (docs/matrix.md): a Zig ``std.Thread`` program linked
    without ``--export=wasi_thread_start`` looks like plain lld output, so threadify injects its
    own ``wasi_thread_start`` — but Zig's spawner passes Zig's start record, not
    ``{func, arg}``, and the first thread traps. The fix is on the build side: export
    ``wasi_thread_start`` (then threadify passes the module through unchanged)."""
    out = tmp_path / "pitfall.wasm"
    out.write_bytes(threadify.transform(program.path.read_bytes()))
    proc = run_wasmtime("46.0.1", out, list(program.args), timeout=120)
    assert proc.returncode != 0
    assert "wasi_thread_start" in proc.stderr
