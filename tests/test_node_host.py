"""threadify output on the Node.js WASI-threads host (docs/hosts.md: a further independent engine).

The host (``scripts/node-host/host.mjs``) shares no code with wasmtime or threadify's own host:
V8 compiles the code, Node's ``node:wasi`` serves WASI preview1, each thread is a Worker. A
representative subset of the committed programs runs here — every producer, every input class,
shared/non-shared/defined/imported memory, stripped names — each repeated because races show up
rarely. The host's own contract (exit codes, traps, TIDs) is checked with small WAT modules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import threadify
from tests.node_host import node_host_available, run_node_host
from tests.programs import PROGRAMS, Program
from tests.tooling import FIXTURES, THREADS_FEATURES, assert_valid, wat2wasm

pytestmark = pytest.mark.skipif(not node_host_available(),
                                reason="Node.js >= 20 missing: python scripts/install_node_host.py")

# A run on Node costs seconds (a Worker per thread): every test here is slow but one, which keeps
# the host (spawn, thread id, exit code) in the fast loop.

REPEATS = 3
SUBSET = [
    "c/wasm/tls.nonshared.wasm",
    "c/wasm/tls.shared-import-tlsexports-stripped.wasm",
    "c/wasm/barrier.shared-import.wasm",
    "c/wasm/barrier.nonshared-datafirst.wasm",
    "c/wasm/globals.shared-defined.wasm",
    "c/wasm/stack.nonshared-stripped.wasm",
    "c/wasm/churn.shared-import-datafirst.wasm",
    "rust/threads_no_core.nonshared.wasm",
    "rust/threads_no_core.stripped.wasm",
    "zig/abi_threads.wasm",
    "zig/std_thread.wasm",
]
BY_ID = {p.id: p for p in PROGRAMS}
# churn starts 232 Workers one after another (~12 s a run): once is enough for the subset.
SLOW = {"c/wasm/churn.shared-import-datafirst.wasm"}


def assert_runs(program: Program, path: Path, repeats: int) -> None:
    for attempt in range(repeats):
        proc = run_node_host(path, program.args)
        detail = f"attempt {attempt + 1}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert proc.returncode == program.exit_code, detail
        assert program.stdout is not None and program.stdout in proc.stdout, detail
        assert proc.stderr == "", detail


@pytest.mark.slow
@pytest.mark.parametrize("program_id", SUBSET)
def test_program_runs(program_id: str, tmp_path: Path) -> None:
    program = BY_ID[program_id]
    data = program.path.read_bytes()
    output = threadify.transform(data)
    assert_valid(output, THREADS_FEATURES)
    if program.klass == "C":
        assert output == data  # a real wasi-threads module passes through unchanged
    path = tmp_path / "out.wasm"
    path.write_bytes(output)
    assert_runs(program, path, 1 if program_id in SLOW else REPEATS)


@pytest.mark.slow
def test_tls_program_with_zero_threads(tmp_path: Path) -> None:
    """Arguments reach the program: ``tls 0`` prints another line than the default run."""
    program = BY_ID["c/wasm/tls.nonshared.wasm"]
    about = json.loads((FIXTURES / "manifest.json").read_text())["programs"]["c/tls.c"]
    args = about.get("zero_thread_args")
    expected = about.get("zero_thread_stdout")
    assert isinstance(args, list) and isinstance(expected, str)
    path = tmp_path / "out.wasm"
    path.write_bytes(threadify.transform(program.path.read_bytes()))
    proc = run_node_host(path, [str(a) for a in args])
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout


# A minimal WASI-threads command: `_start` spawns one thread running THREAD_BODY, then parks on
# address 0 until woken (never, unless the thread ends the process), then runs MAIN_TAIL.
HARNESS = """
(module
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "{module}" "{field}" (memory 1 2 shared))
  (data (i32.const 64) "thread started\\n")
  (func $say (i32.store (i32.const 16) (i32.const 64)) (i32.store (i32.const 20) (i32.const 15))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (i32.store (i32.const 8) (local.get $tid))
    {thread_body})
  (func (export "_start")
    (local $tid i32)
    (local.set $tid (call $spawn (i32.const 0)))
    (if (i32.lt_s (local.get $tid) (i32.const 1)) (then (call $exit (i32.const 90))))
    (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const {wait_ns})))
    {main_tail}))
"""


def harness(tmp_path: Path, thread_body: str, main_tail: str = "", wait_ns: int = -1,
            module: str = "env", field: str = "memory") -> Path:
    text = HARNESS.format(thread_body=thread_body, main_tail=main_tail, wait_ns=wait_ns,
                          module=module, field=field)
    data = wat2wasm(text)
    assert_valid(data, THREADS_FEATURES)
    path = tmp_path / "harness.wasm"
    path.write_bytes(data)
    return path


@pytest.mark.slow
def test_trap_in_spawned_thread_ends_the_process(tmp_path: Path) -> None:
    """The main thread waits forever; only the spawned thread's trap can end the run."""
    path = harness(tmp_path, "(call $say) (unreachable)")
    for _ in range(REPEATS):
        proc = run_node_host(path, [], timeout=60)
        assert proc.returncode == 134, proc.stderr
        assert "thread started" in proc.stdout
        assert "thread 1 trapped: wasm trap: unreachable" in proc.stderr


@pytest.mark.slow
def test_trap_in_main_thread(tmp_path: Path) -> None:
    path = harness(tmp_path, "", main_tail="(unreachable)", wait_ns=1_000_000)
    proc = run_node_host(path, [], timeout=60)
    assert proc.returncode == 134
    assert "main thread trapped" in proc.stderr


@pytest.mark.slow
def test_proc_exit_in_spawned_thread_sets_the_exit_code(tmp_path: Path) -> None:
    path = harness(tmp_path, "(call $say) (call $exit (i32.const 7))")
    for _ in range(REPEATS):
        proc = run_node_host(path, [], timeout=60)
        assert proc.returncode == 7, proc.stderr
        assert proc.stdout == "thread started\n"


@pytest.mark.slow
def test_return_from_start_is_exit_zero_even_with_threads_running(tmp_path: Path) -> None:
    """The thread spins forever; returning from `_start` still ends the process with 0."""
    path = harness(tmp_path, "(loop $l (br $l))", wait_ns=1_000_000)
    proc = run_node_host(path, [], timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_memory_import_name_is_free_and_tid_is_one(tmp_path: Path) -> None:
    """Any module/field name for the memory; the first spawned thread gets TID 1, which the
    thread passes back as its exit code."""
    path = harness(tmp_path, "(call $exit (local.get $tid))", module="mem", field="shared")
    proc = run_node_host(path, [], timeout=60)
    assert proc.returncode == 1, proc.stderr


@pytest.mark.slow
def test_exit_status_126_is_refused(tmp_path: Path) -> None:
    path = harness(tmp_path, "(call $exit (i32.const 200))")
    proc = run_node_host(path, [], timeout=60)
    assert proc.returncode == 1
    assert "exit status 200" in proc.stderr


@pytest.mark.slow
def test_module_without_shared_memory_import_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.wasm"
    path.write_bytes(wat2wasm('(module (memory (export "memory") 1) (func (export "_start")))'))
    proc = run_node_host(path, [], timeout=60)
    assert proc.returncode == 1
    assert "does not import a shared memory" in proc.stderr
    assert "Error" not in proc.stderr and "    at " not in proc.stderr  # no JS traceback


@pytest.mark.slow
def test_local_survives_atomic_wait(tmp_path: Path) -> None:
    """Regression for the V8 11.3 Liftoff defect the host works around (docs/hosts.md): a
    local set before `memory.atomic.wait32` must keep its value after the wait."""
    text = """
(module
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "env" "memory" (memory 1 1 shared))
  (func (export "wasi_thread_start") (param i32 i32))
  (func $keep (result i32) (local $v i32)
    (local.set $v (call $spawn (i32.const 0)))
    (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const 1000000)))
    (local.get $v))
  (func (export "_start")
    (if (i32.ne (call $keep) (i32.const 1)) (then (call $exit (i32.const 3))))))
"""
    path = tmp_path / "keep.wasm"
    path.write_bytes(wat2wasm(text))
    proc = run_node_host(path, [], timeout=60)
    assert proc.returncode == 0, proc.stderr
