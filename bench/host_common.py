"""Shared helpers for the host benchmarks: build WAT programs, time runs on each host.

Hosts compared in the same run: ``threadify run`` (this repo's bundled host, started the way a
user starts it: a fresh ``threadify run`` process, the installed console script) and the
wasmtime 36.0.9 and 46.0.1 CLIs (unpacked by ``scripts/install_test_tools.py``). Every figure
is the minimum of several runs, which is the least noisy estimate on a shared machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import install_test_tools  # noqa: E402

PRELUDE = """(module
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "env" "memory" (memory 1 1 shared))
  (export "memory" (memory 0))
  (func $await (param $addr i32) (param $n i32)
    (block $done (loop $w
      (br_if $done (i32.ge_u (i32.atomic.load (local.get $addr)) (local.get $n)))
      (drop (memory.atomic.wait32 (local.get $addr) (i32.atomic.load (local.get $addr))
                                  (i64.const -1)))
      (br $w))))
  (func $bump (param $addr i32)
    (drop (i32.atomic.rmw.add (local.get $addr) (i32.const 1)))
    (drop (memory.atomic.notify (local.get $addr) (i32.const -1))))
"""


def spawn_join(count: int) -> str:
    """``count`` sequential spawn+join pairs."""
    return PRELUDE + f"""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32) (call $bump (i32.const 16)))
  (func (export "_start") (local $i i32)
    (block $end (loop $l
      (br_if $end (i32.ge_u (local.get $i) (i32.const {count})))
      (if (i32.lt_s (call $spawn (i32.const 0)) (i32.const 1)) (then (call $exit (i32.const 3))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (call $await (i32.const 16) (local.get $i))
      (br $l))))
)"""


def compute(threads: int, units_each: int, unit: int) -> str:
    """``threads`` threads each run ``units_each`` units of an integer loop; main joins."""
    return PRELUDE + f"""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (local $i i32) (local $x i32)
    (local.set $x (local.get $tid))
    (block $end (loop $l
      (br_if $end (i32.ge_u (local.get $i) (i32.const {units_each * unit})))
      (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1664525))
                             (i32.const 1013904223)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.store (i32.add (i32.const 1024) (i32.shl (local.get $tid) (i32.const 2))) (local.get $x))
    (call $bump (i32.const 16)))
  (func (export "_start") (local $i i32)
    (block $end (loop $l
      (br_if $end (i32.ge_u (local.get $i) (i32.const {threads})))
      (drop (call $spawn (i32.const 0)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $await (i32.const 16) (i32.const {threads})))
)"""


TRIVIAL = PRELUDE + """
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32) (call $bump (i32.const 16)))
  (func (export "_start")
    (drop (call $spawn (i32.const 0)))
    (call $await (i32.const 16) (i32.const 1)))
)"""


def assemble(text: str, directory: Path, name: str) -> Path:
    path = directory / f"{name}.wasm"
    subprocess.run(["wasm-tools", "parse", "-", "-o", str(path)], input=text.encode(),
                   check=True)
    return path


def hosts() -> dict[str, list[str]]:
    console = shutil.which("threadify")
    out = {"threadify": [console, "run"] if console else
           [sys.executable, "-m", "threadify", "run"]}
    flags = {"36.0.9": "threads=y", "46.0.1": "threads=y,shared-memory=y"}
    for version, wflags in flags.items():
        binary = install_test_tools.install_wasmtime(version)
        out[f"wasmtime {version}"] = [str(binary), "run", "-C", "cache=n", "-W", wflags, "-S",
                                      "threads=y"]
    return out


def best_of(cmd: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"{cmd}: exit {proc.returncode}: {proc.stderr.decode()[:300]}")
        best = min(best, elapsed)
    return best


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="threadify-bench-"))
