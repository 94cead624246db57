"""Entry points as the wasmtime 46 CLI calls them: reactors, no ``_start``, the ``""`` export,
a ``_start`` that takes parameters (from the arguments) or returns results (printed).

Every case runs on ``threadify run`` and on the wasmtime 46.0.1 CLI: same stdout, same exit
code, and at most one line of ours on stderr, never a traceback (docs/host.md, "Entry points").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.host.runner import run_cli
from tests.tooling import run_wasmtime, wat2wasm

#: The cases the fast loop runs (the others are marked slow; the full suite runs them all).
QUICK = {"reactor", "empty-name", "no-entry", "initialize-wrong-type", "decimal", "specials",
         "f32-tie", "missing", "i32-overflow", "v128"}


def _cases(values: list[Any], ids: list[str]) -> list[Any]:
    """``values`` for ``parametrize``, named ``ids``; all but the :data:`QUICK` ones slow."""
    return [pytest.param(*(v if isinstance(v, tuple) else (v,)), id=i,
                         marks=() if i in QUICK else pytest.mark.slow)
            for v, i in zip(values, ids, strict=True)]

FD_WRITE = ('(import "wasi_snapshot_preview1" "fd_write" '
            '(func $w (param i32 i32 i32 i32) (result i32)))')
PROC_EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
#: ``(call $say (i32.const N))`` writes the byte N and a newline to stdout.
SAY = """(memory (export "memory") 1)
  (func $say (param $c i32)
    (i32.store8 (i32.const 100) (local.get $c)) (i32.store8 (i32.const 101) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 2))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))"""


def _module(body: str) -> str:
    return f"(module {FD_WRITE} {PROC_EXIT} {SAY} {body})"


def _compare(tmp_path: Path, body: str, args: list[str] | None = None) -> tuple[int, str, str]:
    path = tmp_path / "m.wasm"
    path.write_bytes(wat2wasm(_module(body)))
    ours = run_cli([str(path), "--", *(args or [])])
    theirs = run_wasmtime("46.0.1", path, args)
    assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode), \
        f"ours: {ours.returncode} {ours.stderr}\nwasmtime: {theirs.returncode} {theirs.stderr}"
    assert "Traceback" not in ours.stderr
    assert len(ours.stderr.splitlines()) <= 1, ours.stderr
    return ours.returncode, ours.stdout, ours.stderr


@pytest.mark.parametrize(("body", "code", "stdout"), _cases([
    # a reactor: `_initialize` and no `_start`
    ('(func (export "_initialize") (call $say (i32.const 73)))', 0, "I\n"),
    # `_initialize` runs first, after the start function
    ('(func $s (call $say (i32.const 83))) (start $s)'
     '(func (export "_initialize") (call $say (i32.const 73)))'
     '(func (export "_start") (call $say (i32.const 77)))', 0, "S\nI\nM\n"),
    # the function exported as "" is the command's default, before `_start`
    ('(func (export "") (call $say (i32.const 69)))'
     '(func (export "_start") unreachable)', 0, "E\n"),
    # nothing to call: the run ends after instantiation
    ('(func $s (call $say (i32.const 83))) (start $s)', 0, "S\n"),
    ('(global (export "_start") i32 (i32.const 0))', 0, ""),
    ('(func (export "main") unreachable)', 0, ""),
    # `_initialize` that is not a function is not called; one of the wrong type is an error
    ('(global (export "_initialize") i32 (i32.const 0))'
     '(func (export "_start") (call $say (i32.const 77)))', 0, "M\n"),
    ('(func (export "_initialize") (param i32))', 1, ""),
    # traps and exits in `_initialize` end the run as anywhere else
    ('(func (export "_initialize") unreachable)'
     '(func (export "_start") (call $say (i32.const 77)))', 134, ""),
    ('(func (export "_initialize") (call $exit (i32.const 9)))', 9, ""),
], ["reactor", "order", "empty-name", "start-section-only", "start-not-a-function",
    "no-entry", "initialize-global", "initialize-wrong-type", "initialize-traps",
    "initialize-exits"]))
def test_entry_points_are_chosen_as_by_wasmtime(tmp_path: Path, body: str, code: int,
                                                 stdout: str) -> None:
    assert _compare(tmp_path, body)[:2] == (code, stdout)


RESULTS = """(func (export "_start")
    (param $a i32) (param $b i64) (param $c f32) (param $d f64)
    (result i32 i64 f32 f64 f32 f32 f32 f32 f32 f64 f64 f64 f64 f64 funcref externref v128)
    (local.get $a) (local.get $b) (local.get $c) (local.get $d)
    (f32.const 0.1) (f32.const -0.0) (f32.const nan) (f32.const -inf) (f32.const 3.4e38)
    (f64.const 1e-7) (f64.const 123456789.125) (f64.const 5e-324) (f64.const -1e21)
    (f64.const 0.3) (ref.null func) (ref.null extern) (v128.const i32x4 1 2 3 -1))"""


@pytest.mark.parametrize("args", _cases([
    ["-7", "0x7fffffffffffffff", "1.5", "1e300"],
    ["0x1F", "-9223372036854775808", "1e-45", "-0"],
    ["0X-80000000", "0", "inf", "NaN"],
    ["2147483647", "0x-10", ".5", "3."],
    # f32: a decimal just above a tie (rounding via f64 would land on it), and one just below
    # the rounding threshold past the largest f32 (a C cast would make it infinity)
    ["1", "1", "1.0000000596046447753906250001", "1e-320"],
    ["1", "1", "3.4028235677973366e38", "-1e-400"],
], ["decimal", "hex-and-limits", "specials", "float-forms", "f32-tie", "f32-largest"]))
def test_parameters_from_arguments_and_results_printed(tmp_path: Path, args: list[str]) -> None:
    """wasmtime parses the main function's parameters from the arguments and prints what it
    returns, one value a line (Rust's formatting of floats: shortest, no exponent)."""
    code, stdout, _ = _compare(tmp_path, RESULTS, args)
    assert code == 0 and len(stdout.splitlines()) == 17


@pytest.mark.parametrize("args", _cases([
    ["1", "2", "3"],  # one short
    ["0xffffffff", "0", "0", "0"],  # beyond i32 (wasmtime reads hex as signed)
    ["1_0", "0", "0", "0"],
    [" 1", "0", "0", "0"],
    ["1", "0x", "0", "0"],
    ["1", "0", "0x1p3", "0"],
    ["1", "0", "1e", "0"],
    ["+0x1F", "0", "0", "0"],
    ["1", "-0x10", "0", "0"],
], ["missing", "i32-overflow", "underscore", "space", "empty-hex", "hex-float", "bad-exponent",
    "sign-before-hex", "minus-before-hex"]))
def test_arguments_that_are_not_parameters_fail_in_one_line(tmp_path: Path,
                                                            args: list[str]) -> None:
    code, stdout, stderr = _compare(tmp_path, RESULTS, args)
    assert code == 1 and stdout == ""
    assert stderr.startswith("threadify run: error: ")


@pytest.mark.parametrize("kind", _cases(["funcref", "v128"], ["funcref", "v128"]))
def test_a_reference_or_vector_parameter_cannot_come_from_the_command_line(
        tmp_path: Path, kind: str) -> None:
    code, _, stderr = _compare(tmp_path, f'(func (export "_start") (param {kind}))', ["1"])
    assert code == 1 and kind in stderr


def test_exports_with_simd_types_do_not_abort_the_host(tmp_path: Path) -> None:
    """wasmtime's C API aborts the process when it describes a function type with ``v128``:
    the host reads such a module's types from its bytes, so a SIMD helper export, an unknown
    import of such a type (reported in one line), a ``v128`` result (printed above) or a
    WASI import declared with one (wrong type) are harmless."""
    body = ('(func (export "dot") (param v128 v128) (result v128) (local.get 0))'
            '(func (export "_start") (call $say (i32.const 79)))')
    assert _compare(tmp_path, body)[:2] == (0, "O\n")
    path = tmp_path / "import.wasm"
    path.write_bytes(wat2wasm('(module (import "env" "f" (func (param v128))) '
                              '(func (export "_start")))'))
    proc = run_cli([str(path)])
    assert proc.returncode == 1 and proc.stderr.startswith(
        "threadify run: error: import.wasm: unknown import env.f"), proc.stderr
    body = ('(func (export "_start") (call $say (i32.const 79)))'
            '(func (export "wasi_thread_start") (param i32 i32)) (func $v (result v128) '
            "(v128.const i64x2 0 0))")
    wrong = _module(body).replace("(func $w (param i32 i32 i32 i32)", "(func $w (param v128)")
    path.write_bytes(wat2wasm(wrong.replace("(drop (call $w (i32.const 1) (i32.const 0) "
                                            "(i32.const 1) (i32.const 8)))", "")))
    proc = run_cli([str(path)])
    assert proc.returncode == 1 and "fd_write has the wrong type" in proc.stderr, proc.stderr
