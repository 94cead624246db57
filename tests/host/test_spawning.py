"""thread-spawn: TIDs, limits, failures reported as negative results, stress (docs/host.md)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from tests.host import wat
from tests.host.runner import RUN, run_timed
from tests.tooling import run_wasmtime


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(wat.assemble(text))
    return path


def _alive(tmp_path: Path, count: int, *opts: str) -> tuple[list[int], list[int]]:
    path = _write(tmp_path, f"alive{count}.wasm", wat.alive_program(count))
    proc = subprocess.run([*RUN, *opts, str(path)], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    n = count + 1
    assert len(proc.stdout) == 8 * n
    values = list(struct.unpack(f"<{n}i{n}i", proc.stdout))
    return values[:n], values[n:]


def test_64_threads_alive_at_once_get_distinct_tids_in_range(tmp_path: Path) -> None:
    tids, results = _alive(tmp_path, 64, "--max-threads", "64")
    assert results == tids  # spawn returned the TID the thread was started with
    assert all(1 <= t < 2**29 for t in tids)
    assert len(set(tids[:64])) == 64


def test_spawn_beyond_max_threads_fails_and_the_program_continues(tmp_path: Path) -> None:
    tids, results = _alive(tmp_path, 10, "--max-threads", "4")
    assert [r > 0 for r in results[:10]] == [True] * 4 + [False] * 6
    assert all(r < 0 for r in results[4:10])
    assert results[10] > 0  # a slot freed by ended threads is usable again
    assert results[10] == tids[10]


def test_default_limit_is_128_alive_threads(tmp_path: Path) -> None:
    _tids, results = _alive(tmp_path, 130)
    assert sum(r > 0 for r in results[:130]) == 128


def test_1000_sequential_spawns(tmp_path: Path) -> None:
    path = _write(tmp_path, "seq.wasm", wat.spawn_join_program(1000))
    proc = subprocess.run([*RUN, str(path)], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert run_wasmtime("46.0.1", path).returncode == 0


@pytest.mark.slow
def test_trap_in_one_of_64_busy_threads_ends_the_run(tmp_path: Path) -> None:
    path = _write(tmp_path, "trap64.wasm", wat.module("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (drop (i32.atomic.rmw.add (i32.const 8) (i32.const 1)))
    (if (i32.eq (local.get $arg) (i32.const 37))
      (then
        (block $done (loop $w
          (br_if $done (i32.ge_u (i32.atomic.load (i32.const 8)) (i32.const 64)))
          (br $w)))
        (call $mark)
        (unreachable)))
    (loop $b (br $b)))
  (func (export "_start") (local $i i32)
    (loop $l
      (drop (call $spawn (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 64))))
    (loop $b (br $b)))"""))
    result = run_timed([str(path), "--max-threads", "100"])
    assert result.code == 134
    assert result.after_mark is not None and result.after_mark < 1.0
    assert result.stderr.startswith("threadify run: thread 38 trapped: ")
    assert run_wasmtime("46.0.1", path).returncode == 134


GOOD_START = """(func (export "wasi_thread_start") (param i32 i32))"""


@pytest.mark.parametrize(("thread_start", "start_func", "expected"), [
    (GOOD_START, "", 11),
    ("", "", 10),  # no wasi_thread_start
    ("""(func (export "wasi_thread_start") (param i32))""", "", 10),  # wrong signature
    ("""(func (export "wasi_thread_start") (param i32 i32) (result i32) (i32.const 0))""", "",
     10),
    # instantiation fails in every instance but the first: its start function traps
    (GOOD_START, """(start $init)
  (func $init
    (if (i32.atomic.rmw.cmpxchg (i32.const 1024) (i32.const 0) (i32.const 1))
      (then unreachable)))""", 10),
], ids=["ok", "missing", "one-param", "has-result", "instantiation-traps"])
def test_spawn_failures_return_negative(tmp_path: Path, thread_start: str, start_func: str,
                                        expected: int) -> None:
    path = _write(tmp_path, "spawn.wasm", wat.spawn_result_program(thread_start, start_func))
    proc = subprocess.run([*RUN, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == expected, proc.stderr
    if thread_start == GOOD_START:
        assert proc.stderr == ""
    else:  # no usable wasi_thread_start: the program continues, and the host says why, once
        assert proc.stderr.count("\n") == 1 and "exports no wasi_thread_start" in proc.stderr
