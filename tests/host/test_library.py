"""threadify.host.run: exit codes, stdio, errors, and a caller process left as it was."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from tests.host import wat
from threadify.errors import ThreadifyError
from threadify.host import run

ECHO = wat.module("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (i32.store (i32.const 400) (i32.const 512))
    (i32.store (i32.const 404) (i32.const 64))
    (drop (call $fd_read (i32.const 0) (i32.const 400) (i32.const 1) (i32.const 408)))
    (i32.store (i32.const 64) (i32.const 512))
    (i32.store (i32.const 68) (i32.load (i32.const 408)))
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))
    (call $exit (i32.const 5)))
  (func (export "_start")
    (drop (call $spawn (i32.const 0)))
    (loop $b (drop (memory.atomic.wait32 (i32.const 4) (i32.const 0) (i64.const -1))) (br $b)))
""")


@pytest.fixture(scope="module")
def echo() -> bytes:
    return wat.assemble(ECHO)


def test_returns_exit_code_with_captured_stdio(echo: bytes) -> None:
    out = io.BytesIO()
    assert run(echo, stdin=b"ping", stdout=out) == 5
    assert out.getvalue() == b"ping"


def test_text_streams_and_paths(tmp_path: Path, echo: bytes) -> None:
    path = tmp_path / "echo.wasm"
    path.write_bytes(echo)
    out = io.StringIO()
    assert run(path, stdin=io.BytesIO(b"text"), stdout=out) == 5
    assert out.getvalue() == "text"


def test_trap_code_and_message(tmp_path: Path) -> None:
    err = io.StringIO()
    code = run(wat.assemble(wat.termination_program("thread", "trap", "busy")),
               stdout=io.BytesIO(), stderr=err)
    assert code == 134
    assert err.getvalue().startswith("threadify run: thread 1 trapped: ")


def test_bad_input_raises_threadify_error(tmp_path: Path) -> None:
    with pytest.raises(ThreadifyError, match="not a WebAssembly module"):
        run(b"not wasm at all")
    with pytest.raises(ThreadifyError, match="file not found"):
        run(tmp_path / "missing.wasm")


def test_no_stray_reader_left_on_the_callers_stdin(echo: bytes) -> None:
    # The program's other thread is blocked reading this pipe when the run ends: afterwards the
    # caller must get everything it writes to the pipe itself.
    r, w = os.pipe()
    try:
        code = run(wat.assemble(wat.termination_program("main", "proc_exit", "fd_read_stdin")),
                   stdin=r, stdout=io.BytesIO())
        assert code == 17
        os.write(w, b"still mine")
        assert os.read(r, 100) == b"still mine"
    finally:
        os.close(r)
        os.close(w)


def _footprint() -> tuple[int, int, int]:
    rss_kib = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return rss_kib, len(os.listdir("/proc/self/fd")), threading.active_count()


@pytest.mark.slow
def test_repeated_runs_leave_memory_threads_and_fds_flat(echo: bytes) -> None:
    program = wat.assemble(wat.spawn_join_program(50))
    for _ in range(3):  # warm-up: imports, first-use allocations
        assert run(program, stdout=io.BytesIO()) == 0
        assert run(echo, stdin=b"x", stdout=io.BytesIO()) == 5
    rss0, fds0, threads0 = _footprint()
    for _ in range(15):
        assert run(program, stdout=io.BytesIO()) == 0
        assert run(echo, stdin=b"x", stdout=io.BytesIO()) == 5
    rss1, fds1, threads1 = _footprint()
    assert fds1 == fds0
    assert threads1 == threads0
    assert rss1 - rss0 < 4096, f"RSS grew by {rss1 - rss0} KiB over 30 runs"
