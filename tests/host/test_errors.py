"""Modules the host cannot run get one clean line (exit 1), never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.host import wat
from tests.host.runner import run_cli
from tests.tooling import run_wasmtime, wasmtime_cli

START = '(func (export "_start")) (func (export "wasi_thread_start") (param i32 i32))'
SHARED = '(import "env" "memory" (memory 1 1 shared)) (export "memory" (memory 0))'


def _check_clean(stderr: str, *needles: str, at_run_time: bool = False) -> None:
    """One line (and a hint): ``error:`` when the module cannot run, the run's own report
    (a trap, a refused exit status) when it failed while running."""
    lines = stderr.splitlines()
    assert 1 <= len(lines) <= 2, stderr
    prefix = "threadify run: " if at_run_time else "threadify run: error: "
    assert lines[0].startswith(prefix), stderr
    if len(lines) == 2:
        assert lines[1].startswith("threadify run: hint: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], stderr


@pytest.mark.parametrize(("text", "needles"), [
    (f'(module {SHARED} (import "env" "foo" (func)) {START})', ("unknown import env.foo",)),
    (f'(module {SHARED} (import "wasi_snapshot_preview1" "fd_frobnicate" (func)) {START})',
     ("unknown WASI function", "fd_frobnicate")),
    (f'(module {SHARED} (import "wasi_snapshot_preview1" "fd_write" (func (param i32))) '
     f"{START})", ("fd_write", "wrong type")),
    (f'(module {SHARED} (import "wasi" "thread-spawn" (func (param i32))) {START})',
     ("thread-spawn", "wrong type")),
    (f'(module (import "env" "t" (table 1 funcref)) {START})', ("unknown import env.t",)),
    (f'(module (import "env" "g" (global i32)) {START})', ("unknown import env.g",)),
    # the same name imported twice with two types: the second cannot be satisfied
    (f'(module {SHARED} (import "wasi_snapshot_preview1" "fd_write" '
     f'(func (param i32 i32 i32 i32) (result i32))) (import "wasi_snapshot_preview1" "fd_write" '
     f'(func (param i32))) {START})', ("fd_write", "wrong type")),
    # one memory name imported as shared and as ordinary memory
    (f'(module {SHARED} (import "env" "memory" (memory 1)) {START})',
     ("cannot link", "memory types incompatible")),
], ids=["unknown-import", "unknown-wasi", "wasi-wrong-type", "spawn-wrong-type",
        "table-import", "global-import", "duplicate-wrong-type",
        "duplicate-memory-types"])
def test_unfit_modules_are_reported_in_one_line(tmp_path: Path, text: str,
                                                needles: tuple[str, ...]) -> None:
    path = tmp_path / "bad.wasm"
    path.write_bytes(wat.wat2wasm(text))
    proc = run_cli([str(path)])
    assert proc.returncode == 1
    _check_clean(proc.stderr, *needles)


def test_data_beyond_the_memory_traps_at_start_up_as_in_wasmtime(tmp_path: Path) -> None:
    """An active data segment beyond the memory's maximum traps while the module is
    instantiated: exit 134 and the trap, as the wasmtime CLI reports it."""
    path = tmp_path / "big.wasm"
    path.write_bytes(wat.wat2wasm(f'(module {SHARED} (data (i32.const 70000) "x") {START})'))
    proc = run_cli([str(path)])
    assert proc.returncode == 134
    _check_clean(proc.stderr, "main thread trapped", "out of bounds memory access",
                 at_run_time=True)


def test_not_a_wasm_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    proc = run_cli([str(path)])
    assert proc.returncode == 1
    _check_clean(proc.stderr, "not a WebAssembly module")


def test_truncated_module(tmp_path: Path) -> None:
    path = tmp_path / "cut.wasm"
    path.write_bytes(wat.wat2wasm(f"(module {SHARED} {START})")[:-5])
    proc = run_cli([str(path)])
    assert proc.returncode == 1
    _check_clean(proc.stderr, "invalid WebAssembly module")


def test_file_not_found(tmp_path: Path) -> None:
    proc = run_cli([str(tmp_path / "missing.wasm")])
    assert proc.returncode == 1
    _check_clean(proc.stderr, "file not found")


def test_missing_preopen_directory(tmp_path: Path) -> None:
    path = tmp_path / "ok.wasm"
    path.write_bytes(wat.wat2wasm(f"(module {SHARED} {START})"))
    proc = run_cli(["--dir", str(tmp_path / "nope"), str(path)])
    assert proc.returncode == 1
    _check_clean(proc.stderr, "nope")


def test_proc_exit_status_out_of_range_is_refused_like_wasmtime(tmp_path: Path) -> None:
    path = tmp_path / "exit200.wasm"
    path.write_bytes(wat.assemble(wat.module("""
  (func (export "wasi_thread_start") (param i32 i32))
  (func (export "_start") (call $exit (i32.const 200)))""")))
    proc = run_cli([str(path)])
    assert proc.returncode == 1
    _check_clean(proc.stderr, "proc_exit(200)", at_run_time=True)


@pytest.mark.parametrize(("body", "needle"), [
    ('(type $s (struct (field i32))) (func (export "mk") (result (ref null $s)) '
     "(struct.new $s (i32.const 5)))", "gc"),
    ('(type $f (func)) (func $g) (elem declare func $g) '
     '(func (export "get") (result (ref $f)) (ref.func $g))', "function references"),
    ('(tag $t (param i32)) (func (export "ex") (result exnref) (block $h (result exnref) '
     "(try_table (catch_all_ref $h) (throw $t (i32.const 1))) unreachable))",
     "exception"),
], ids=["gc", "function-references", "exceptions"])
def test_proposals_the_wasmtime_cli_leaves_off_are_refused_in_one_line(
        tmp_path: Path, body: str, needle: str) -> None:
    """GC, typed function references and exception handling are off, as in the wasmtime 46 CLI
    (which refuses these modules too, exit 1). They must be: with them on, merely listing such a
    module's exports through wasmtime's C API aborts the process."""
    path = tmp_path / "proposal.wasm"
    path.write_bytes(wat.wat2wasm(f'(module {body} (func (export "_start")))'))
    proc = run_cli([str(path)])
    assert proc.returncode == 1
    _check_clean(proc.stderr, "invalid WebAssembly module", needle)
    assert run_wasmtime("46.0.1", path).returncode == 1
    # The hint names the wasmtime switch that runs it, and with that switch wasmtime does.
    hint = proc.stderr.splitlines()[1]
    switch = hint.split("`wasmtime run ")[1].rstrip("`")
    assert switch.startswith("-W ") and switch.endswith("=y"), hint
    enabled = subprocess.run([str(wasmtime_cli("46.0.1")), "run", *switch.split(), str(path)],
                             capture_output=True, text=True, timeout=120)
    assert enabled.returncode == 0, enabled.stderr
