"""Termination as the WASI-threads proposal specifies it, for every combination of who ends the
run, how, and what the other thread is doing (blocked in wait32, busy, in poll_oneoff, in fd_read
on a stdin that stays open and silent). Each run must end promptly after the event with the
right code; the same programs are cross-checked on the wasmtime 46.0.1 CLI.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.host import wat
from tests.host.runner import RUN, run_timed
from tests.tooling import run_wasmtime, slow_unless_cases

ENDERS = ("main", "thread")
EVENTS = ("proc_exit", "trap", "return")
OTHERS = tuple(wat.BLOCKERS)
CASES = list(itertools.product(ENDERS, EVENTS, OTHERS))
# The fast loop runs a diagonal of the product: every blocker once, every event and both enders
# several times; the full suite runs every combination.
DIAGONAL = {(ENDERS[i % len(ENDERS)], EVENTS[i % len(EVENTS)], other)
            for i, other in enumerate(OTHERS)}
MATRIX = slow_unless_cases(lambda case: tuple(case) in DIAGONAL, CASES, ids="-".join)
PROMPT = 1.0  # seconds from the event to the end of the process ("well under a second")


def _program(tmp_path: Path, ender: str, event: str, other: str) -> Path:
    path = tmp_path / f"{ender}-{event}-{other}.wasm"
    path.write_bytes(wat.assemble(wat.termination_program(ender, event, other)))
    return path


@pytest.mark.parametrize(("ender", "event", "other"), MATRIX)
def test_run_ends_promptly_with_the_right_code(tmp_path: Path, ender: str, event: str,
                                               other: str) -> None:
    result = run_timed([str(_program(tmp_path, ender, event, other))])
    assert result.code == wat.EXPECTED[event], result.stderr
    assert result.after_mark is not None and result.after_mark < PROMPT, result
    lines = result.stderr.splitlines()
    if event == "trap":
        who = "main thread" if ender == "main" else "thread 1"
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"threadify run: {who} trapped: "), result.stderr
        assert "unreachable" in lines[0]
    else:
        assert lines == [], result.stderr


@pytest.mark.parametrize(("ender", "event", "other"), MATRIX)
def test_wasmtime_46_agrees(tmp_path: Path, ender: str, event: str, other: str) -> None:
    proc = run_wasmtime("46.0.1", _program(tmp_path, ender, event, other), timeout=60)
    assert proc.returncode == wat.EXPECTED[event], proc.stderr


def test_ctrl_c_ends_the_run(tmp_path: Path) -> None:
    # main busy, a thread blocked in wait32: SIGINT must still end it (exit 130, one line).
    path = tmp_path / "spin.wasm"
    path.write_bytes(wat.assemble(wat.module("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $signal (i32.const 0))
    (loop $b (drop (memory.atomic.wait32 (i32.const 4) (i32.const 0) (i64.const -1))) (br $b)))
  (func (export "_start")
    (drop (call $spawn (i32.const 1)))
    (call $await (i32.const 0))
    (call $mark)
    (loop $b (br $b)))""")))
    proc = subprocess.Popen([*RUN, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert proc.stdout.readline() == b"E\n"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
        assert time.monotonic() - sent < PROMPT
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert code == 130
    assert proc.stderr.read().decode().splitlines() == ["threadify run: interrupted"]
