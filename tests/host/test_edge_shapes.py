"""Module shapes at the edges of what a WASI host meets, each run on ``threadify run`` and on the
wasmtime 46.0.1 CLI (with WASI-threads on, as the tests run it): same stdout, same exit code,
at most one line of ours on stderr and never a traceback (docs/host.md).

Where the two hosts differ on purpose (docs/host.md, "Differences from wasmtime and Wasmer that
remain"), the test pins our side and says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host.runner import run_cli
from tests.tooling import run_wasmtime, slow_unless_cases, wat2wasm

FD_WRITE = ('(import "wasi_snapshot_preview1" "fd_write" '
            '(func $w (param i32 i32 i32 i32) (result i32)))')
PROC_EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
SPAWN = '(import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))'
#: ``(call $hi)`` writes "hi\n" (from address 16 of memory 0) to stdout.
HI = ('(data (i32.const 16) "hi\\n") (func $hi (i32.store (i32.const 0) (i32.const 16)) '
      '(i32.store (i32.const 4) (i32.const 3)) '
      '(drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))')
HI64 = ('(data (i64.const 16) "hi\\n") (func $hi (i32.store (i64.const 0) (i32.const 16)) '
        '(i32.store (i64.const 4) (i32.const 3)) '
        '(drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))')
START = '(func (export "_start") (call $hi))'

CASES = [
    ("start-section", f'(memory (export "memory") 1) {HI} (start $hi) (func (export "_start"))',
     0, "hi\n"),
    ("shared-memory-defined", f'(memory (export "memory") 1 1 shared) {HI} {START}', 0, "hi\n"),
    ("shared-memory-odd-name", '(import "foo" "bar" (memory 1 1 shared)) '
     f'(export "memory" (memory 0)) {HI} {START}', 0, "hi\n"),
    ("memory-export-is-a-global", '(memory 1) (global (export "memory") i32 (i32.const 0)) '
     f"{HI} {START}", 1, ""),
    ("memory-export-is-a-function", f'(memory 1) {HI} (func (export "memory")) {START}', 1, ""),
    ("two-memories", f'(memory (export "memory") 1) (memory $b 1) {HI} '
     '(func (export "_start") (call $hi) (i32.store $b (i32.const 0) (i32.const 1)))', 0, "hi\n"),
    ("two-shared-imports", '(import "env" "memory" (memory 1 1 shared)) '
     '(import "env" "m2" (memory 1 1 shared)) (export "memory" (memory 0)) '
     f"{HI} {START}", 0, "hi\n"),
    ("memory64-defined", f'(memory (export "memory") i64 1) {HI64} {START}', 0, "hi\n"),
    ("4GiB-shared-memory", '(import "env" "memory" (memory 65536 65536 shared)) '
     f'(export "memory" (memory 0)) {HI} {START}', 0, "hi\n"),
    ("4GiB-initial-memory", f'(memory (export "memory") 65536) {HI} {START}', 0, "hi\n"),
    ("memory-too-large", f'(memory (export "memory") 65537) {HI} {START}', 1, ""),
    ("trap-in-start", f'(memory (export "memory") 1) {HI} '
     '(func (export "_start") (call $hi) unreachable)', 134, "hi\n"),
    ("stack-exhausted", '(memory (export "memory") 1) (func $f (call $f)) '
     '(func (export "_start") (call $f))', 134, ""),
    ("exit-in-start-section", '(memory (export "memory") 1) '
     '(func $s (call $exit (i32.const 5))) (start $s) (func (export "_start"))', 5, ""),
    ("trap-in-start-section", '(memory (export "memory") 1) (func $s unreachable) (start $s) '
     '(func (export "_start"))', 134, ""),
    ("data-beyond-memory", '(memory (export "memory") 1) (data (i32.const 65535) "ab") '
     '(func (export "_start"))', 134, ""),
    ("exit-255", '(memory (export "memory") 1) (func (export "_start") '
     "(call $exit (i32.const 255)))", 1, ""),
    ("exit-minus-1", '(memory (export "memory") 1) (func (export "_start") '
     "(call $exit (i32.const -1)))", 1, ""),
    ("tail-calls", '(memory (export "memory") 1) (func $f (return_call $g)) (func $g) '
     '(func (export "_start") (call $f))', 0, ""),
    ("custom-page-size", '(memory (export "memory") 1 (pagesize 1)) (func (export "_start"))',
     1, ""),
]
QUICK = {"start-section", "memory-export-is-a-global", "trap-in-start-section",
         "shared-memory-defined", "4GiB-shared-memory"}


@pytest.mark.parametrize(("name", "body", "code", "stdout"),
                         slow_unless_cases(lambda case: case[0] in QUICK, CASES,
                                           ids=lambda case: str(case[0])))
def test_shape_runs_as_on_wasmtime(tmp_path: Path, name: str, body: str, code: int,
                                   stdout: str) -> None:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wat2wasm(f"(module {FD_WRITE} {PROC_EXIT} {body})"))
    ours = run_cli([str(path)])
    theirs = run_wasmtime("46.0.1", path)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (code, stdout), \
        f"ours: {ours.stderr}\nwasmtime: {theirs.stderr}"
    assert "Traceback" not in ours.stderr and len(ours.stderr.splitlines()) <= 2, ours.stderr


def test_a_defined_shared_memory_cannot_spawn(tmp_path: Path) -> None:
    """A new instance of such a module would define a memory of its own, which its spawner
    cannot see: -1, and the reason once on stderr (wasmtime 46 starts such a thread)."""
    path = tmp_path / "defined.wasm"
    path.write_bytes(wat2wasm(f"""(module {SPAWN} {PROC_EXIT}
  (memory (export "memory") 1 1 shared)
  (func (export "wasi_thread_start") (param i32 i32))
  (func (export "_start")
    (call $exit
      (i32.add (i32.const 10) (i32.lt_s (call $spawn (i32.const 0)) (i32.const 0))))))"""))
    proc = run_cli([str(path)])
    assert proc.returncode == 11
    assert proc.stderr.count("\n") == 1 and "not one shared, imported memory" in proc.stderr


#: Starts 3000 threads that each count themselves and end, retrying a spawn that fails (at the
#: thread limit), then waits until all 3000 have counted (one that never runs leaves the run
#: waiting, until the test's timeout): exit 0, or 1 if more counted (a failed spawn ran one).
MANY_THREADS = f"""(module {SPAWN} {PROC_EXIT}
  (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
  (import "env" "memory" (memory 1 1 shared)) (export "memory" (memory 0))
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (drop (i32.atomic.rmw.add (i32.const 8) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const 8) (i32.const -1))))
  (func (export "_start") (local $i i32) (local $n i32)
    (loop $l
      (if (i32.lt_s (call $spawn (local.get $i)) (i32.const 0))
        (then (drop (call $yield)))
        (else (local.set $i (i32.add (local.get $i) (i32.const 1)))))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3000))))
    (block $done (loop $w
      (local.set $n (i32.atomic.load (i32.const 8)))
      (br_if $done (i32.ge_u (local.get $n) (i32.const 3000)))
      (drop (memory.atomic.wait32 (i32.const 8) (local.get $n) (i64.const -1)))
      (br $w)))
    (call $exit (i32.ne (i32.atomic.load (i32.const 8)) (i32.const 3000)))))"""


@pytest.mark.parametrize("limit", [pytest.param("128", marks=pytest.mark.slow), "2"])
def test_thousands_of_short_threads(tmp_path: Path, limit: str) -> None:
    """3000 threads, each ending at once, at most ``limit`` alive: every one runs (a spawn at
    the limit fails and is tried again), as on wasmtime, which has no limit. The fast loop
    keeps the limit of 2, where spawns fail most often."""
    path = tmp_path / "many.wasm"
    path.write_bytes(wat2wasm(MANY_THREADS))
    ours = run_cli(["--max-threads", limit, str(path)], timeout=120)
    assert (ours.returncode, ours.stderr) == (0, "")
    assert run_wasmtime("46.0.1", path).returncode == 0
