"""Shared helpers for the host benchmarks: build WAT programs, time runs on each host.

Hosts compared in the same run: ``threadify run`` (this repo's bundled host, started the way a
user starts it: a fresh ``threadify run`` process, the installed console script) and the
wasmtime 36.0.9 and 46.0.1 CLIs (unpacked by ``scripts/install_test_tools.py``). Every figure
is the minimum of several runs, which is the least noisy estimate on a shared machine.

:func:`interleave` is what the start-up benchmarks use: the commands compared run round-robin
(so that all see the same machine state), each figure is the best of N, in wall and in CPU
seconds (user + system of the child; the steadier figure on a loaded machine).
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import install_test_tools  # noqa: E402

#: Children run with byte-code caching on, as on a user's machine (without ``.pyc`` files
#: every start recompiles the package).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

#: The flags wasmtime 46 needs for WASI-threads programs (plain programs need none).
WASMTIME_THREADS = ["-W", "threads=y,shared-memory=y", "-S", "threads=y"]


def wasmtime46() -> str:
    return str(install_test_tools.install_wasmtime("46.0.1"))


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None,
          ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``cmd``, which must exit with a code in ``ok``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env or CHILD_ENV, cwd=cwd)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in ok:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n"
                         f"{proc.stderr.decode(errors='replace')[:600]}")
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def interleave(cmds: dict[str, list[str]], runs: int, warm: int = 1,
               before_each: dict[str, object] | None = None,
               env: dict[str, dict[str, str]] | None = None,
               cwd: str | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Best wall and best CPU seconds per command over ``runs`` round-robin rounds.

    ``warm`` untimed rounds come first (page cache, byte-code cache, compile caches).
    ``before_each[name]`` is called before every run of that command (e.g. to empty a cache).
    """
    best = {name: math.inf for name in cmds}
    cpu = {name: math.inf for name in cmds}
    for round_ in range(warm + runs):
        for name, cmd in cmds.items():
            hook = (before_each or {}).get(name)
            if callable(hook):
                hook()
            seconds, cpu_seconds = timed(cmd, (env or {}).get(name), cwd)
            if round_ >= warm:
                best[name] = min(best[name], seconds)
                cpu[name] = min(cpu[name], cpu_seconds)
    return best, cpu


def threadify_commands(folder: Path, before: Path | None = None,
                       as_is: bool = False) -> dict[str, str]:
    """``threadify`` console scripts to time: this checkout as a regular install (or the running
    environment's script with ``as_is``), and optionally another checkout (``before``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import transform

    out = {}
    if as_is:
        beside = Path(sys.executable).parent / "threadify"
        out["threadify"] = str(beside) if beside.exists() else (shutil.which("threadify") or "")
    else:
        out["threadify"] = transform.regular_install(folder / "now")
    if before is not None:
        out["before"] = transform.regular_install(folder / "before", before)
    return out

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
