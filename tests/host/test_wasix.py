"""WASIX threads (``wasix_32v1``): every program runs on Wasmer first, then on ``threadify run``.

Differential tests: Wasmer (PyPI ``wasmer-sdk``, ``tests/wasmer_host.py``) is the reference for
the WASIX thread ABI; the programs (``tests/host/wasix_programs.py``) print what each call did,
and ``threadify run`` must print the same and exit with the same code. Wasmer's result is also
checked against what the program is written to show, so a broken reference cannot make a test
pass by agreeing with a broken host.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.host import wasix_programs
from tests.host.runner import run_cli
from tests.tooling import wat2wasm
from tests.wasmer_host import WasmerRun, run_wasmer

#: What each program prints on Wasmer (one number a line), and its exit code. The comments say
#: what the numbers are; docs/host.md describes the calls.
EXPECTED: dict[str, tuple[str, int]] = {
    # main's thread_id errno and TID (1); the thread's: marker, tid (2), start_ptr, the record's
    # start_args, thread_id errno and value; then main: marker, spawn errno, *ret_tid
    "spawn_basic": ("0 1 1000 2 1024 77 0 2 2000 0 2", 0),
    # record past the end (by 1 byte, far, wrapping), ret_tid out of bounds (twice):
    # MEMVIOLATION; the last 64 bytes of memory are a valid record: 0, and the TID was written
    "spawn_bad_pointers": ("78 78 78 78 78 0 1", 0),
    # MEMVIOLATION for ret_tid, but the thread was started (it set the flag)
    "ret_tid_oob_thread_runs": ("78 1", 0),
    # no wasi_thread_start: NOTCAPABLE, ret_tid untouched
    "no_thread_start": ("76 555", 0),
    # memory not shared: MEMVIOLATION, ret_tid untouched
    "not_shared": ("78 555", 0),
    # checks in order: the record (78), wasi_thread_start (76), then sharing
    "not_shared_no_thread_start": ("76 78", 0),
    # thread_exit ends the thread only (code after it does not run); thread_join returns 0
    "thread_exit_in_thread": ("0 1000 0 2000", 0),
    # thread_exit in the main thread ends the program with 0 (the other thread never prints)
    "thread_exit_in_main": ("0", 0),
    # _start returns while a thread waits forever: exit 0
    "main_returns_threads_blocked": ("0 2000", 0),
    # proc_exit in a thread ends everything with its code
    "proc_exit_in_thread": ("0 1000", 9),
    # futex_wait on a differing value: 0, woken 1; 20 ms timeout: 0, woken 0; wakes with nobody
    # waiting: 0, woken 1 (both); a thread woken from futex_wait; bad pointers: MEMVIOLATION
    "futex_calls": ("0 1 0 0 0 1 0 1 0 0 2000 78 78 78 78 78", 0),
    # four threads in futex_wait, all woken by one futex_wake_all
    "futex_wake_all_threads": ("0 0 0 0 0 4", 0),
    # thread_sleep(0), thread_sleep(1 ms), sched_yield, thread_join(unknown): 0; join waits
    "join_sleep_yield": ("0 0 0 0 0 0 1", 0),
    # four sequential spawns (older name thread_spawn) get TIDs 2, 3, 4, 5
    "tids_sequential": ("2 3 4 5", 0),
    # a thread joining the main thread (TID 1) waits until the run ends
    "join_main_thread": ("0 0", 0),
    # thread_sleep and futex_wait for 2^64-1 ns: the threads wait, the program ends normally
    "huge_timeouts": ("0 0 2000", 0),
    # preview1's fd_write under wasix_32v1: works; a misaligned iovec array is UNKNOWN (79,
    # printed as "O"), one past the end MEMVIOLATION (the exit code), not the end of the run
    "preview1_bad_pointer": ("ok Ok", 78),
    # proc_exit2 (wasix-libc's exit) in a thread: every thread ends, status 300 & 0xff
    "proc_exit2_in_thread": ("0", 44),
    # proc_exit under wasix_32v1 takes statuses of 126 and up (preview1's refuses them)
    "wasix_proc_exit_200": ("", 200),
    # the thread calls accept misaligned pointers (thread_id still writes 1)
    "misaligned_pointers": ("0 1 0 0 0 0", 0),
}
#: Quick enough for every run; the rest are marked slow.
QUICK = {"spawn_basic", "spawn_bad_pointers", "futex_calls", "thread_exit_in_thread"}


def _numbers(stdout: str) -> str:
    return " ".join(stdout.split())


def _both(tmp_path: Path, name: str) -> tuple[WasmerRun, subprocess.CompletedProcess[str]]:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wat2wasm(wasix_programs.PROGRAMS[name]))
    # Wasmer 0.5.0's own rare hangs and aborts are retried once (tests/wasmer_host.py)
    reference = run_wasmer(path, timeout=60, retry_hang=True)
    assert not reference.aborted, reference.stderr
    ours = run_cli([str(path)], timeout=120)
    return reference, ours


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n in QUICK else pytest.mark.slow) for n in EXPECTED])
def test_same_result_as_wasmer(tmp_path: Path, name: str) -> None:
    reference, ours = _both(tmp_path, name)
    want_stdout, want_code = EXPECTED[name]
    assert (_numbers(reference.stdout), reference.returncode) == (want_stdout, want_code), \
        reference.stderr
    assert (_numbers(ours.stdout), ours.returncode) == (want_stdout, want_code), ours.stderr
    assert "Traceback" not in ours.stderr


@pytest.mark.slow
def test_thread_parallelism_reports_the_usable_cpus_as_wasmer_does(tmp_path: Path) -> None:
    reference, ours = _both(tmp_path, "parallelism")
    import os

    cpus = len(os.sched_getaffinity(0))
    assert _numbers(reference.stdout) == f"0 {cpus} 78"
    assert _numbers(ours.stdout) == _numbers(reference.stdout)
    assert ours.returncode == reference.returncode == 0


@pytest.mark.slow
def test_trap_in_a_thread_ends_the_run_with_wasmtimes_code(tmp_path: Path) -> None:
    """Documented difference (docs/host.md): a trap ends every thread on both hosts, but Wasmer
    exits 129 and this host 134, as the wasmtime CLI does for every trap."""
    reference, ours = _both(tmp_path, "trap_in_thread")
    assert _numbers(reference.stdout) == _numbers(ours.stdout) == "0 1000"
    assert reference.returncode == 129
    assert "unreachable" in reference.stderr
    assert ours.returncode == 134
    assert ours.stderr.startswith("threadify run: thread 2 trapped: ")


def test_wrong_wasix_types_and_unknown_wasix_calls_are_one_line_errors(tmp_path: Path) -> None:
    for text, needle in [
        ('(module (import "wasix_32v1" "thread_spawn_v2" (func (param i32) (result i32)))'
         ' (func (export "_start")))', "wasix_32v1.thread_spawn_v2 has the wrong type"),
        ('(module (import "wasix_32v1" "proc_fork" (func (param i32) (result i32)))'
         ' (func (export "_start")))', "unknown import wasix_32v1.proc_fork"),
    ]:
        path = tmp_path / "bad.wasm"
        path.write_bytes(wat2wasm(text))
        proc = run_cli([str(path)])
        assert proc.returncode == 1
        assert proc.stderr.startswith("threadify run: ") and needle in proc.stderr
        assert len(proc.stderr.splitlines()) <= 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("call", "type_", "args"), [
    ("thread_id", "(param i32) (result i32)", "(i32.const 0)"),
    ("thread_sleep", "(param i64) (result i32)", "(i64.const 0)"),  # touches no memory
])
def test_wasix_call_without_a_memory_ends_the_run(tmp_path: Path, call: str, type_: str,
                                                  args: str) -> None:
    """Wasmer refuses to start a module with no memory it could use ("No imported or exported
    memory found"); this host, like wasmtime's WASI, ends the run at the first call (exit 1),
    whether or not the call itself would touch memory (as preview1's ``proc_exit`` does)."""
    path = tmp_path / "nomem.wasm"
    path.write_bytes(wat2wasm(f'(module (import "wasix_32v1" "{call}" (func $t {type_})) '
                              f'(memory 1) (func (export "_start") (drop (call $t {args}))))'))
    proc = run_cli([str(path)])
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"threadify run: main thread: {call}: ")
    assert "missing required memory export" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_spawn_limit_is_eagain(tmp_path: Path) -> None:
    """``--max-threads`` has no Wasmer counterpart: a spawn beyond it returns EAGAIN (6) and
    leaves ``*ret_tid`` alone; the program goes on (docs/host.md)."""
    path = tmp_path / "limit.wasm"
    path.write_bytes(wat2wasm(wasix_programs.program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $signal (i32.const 20))
    (call $await (i32.const 16)))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $await (i32.const 20))
    (i32.store (i32.const 24) (i32.const 555))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 24)))
    (call $print (i32.load (i32.const 24)))
    (call $signal (i32.const 16)))""")))
    proc = run_cli(["--max-threads", "1", str(path)])
    assert (_numbers(proc.stdout), proc.returncode) == ("0 6 555", 0), proc.stderr
