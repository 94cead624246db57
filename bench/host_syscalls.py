"""Host calls: the cost of one WASI call on ``threadify run`` against wasmtime 46.

Usage: ``python bench/host_syscalls.py [--runs N] [--calls C] [--before CHECKOUT] [--as-is]``.

Two WAT programs make ``C`` rounds of three WASI calls each — ``fd_write`` of 16 bytes to
stdout (``/dev/null``: the figure is the host's, not a reader's), ``clock_time_get`` and
``fd_fdstat_get`` — and exit:

- **plain**: a WASI command with its own memory (the host reaches it through the calling
  instance, :class:`threadify.host.memory.CallerMemory`: the trampoline that keeps the caller);
- **threaded**: the same calls from a module that imports one shared memory (a threadify
  output's shape: the memory is known at link time, the lighter trampoline).

Each runs as whole processes, interleaved round-robin with ``0`` rounds (start-up alone), best
of N, wall and CPU (``host_common.interleave``); the figure is the cost per call,
``(t(C) - t(0)) / (3 C)``. ``--before CHECKOUT`` adds another checkout in the same rounds.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from host_common import (  # noqa: E402
    WASMTIME_THREADS,
    assemble,
    interleave,
    threadify_commands,
    wasmtime46,
)

#: WASI calls made per round of the loop.
CALLS_PER_ROUND = 3


def program(rounds: int, threaded: bool) -> str:
    """The WAT text: ``rounds`` rounds of ``fd_write``, ``clock_time_get``, ``fd_fdstat_get``."""
    memory = ('(import "env" "memory" (memory 1 1 shared))\n  (export "memory" (memory 0))'
              if threaded else '(memory (export "memory") 1)')
    return f"""(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
  {memory}
  (func (export "_start") (local $i i32)
    (i32.store (i32.const 0) (i32.const 64))   ;; iovec: 16 bytes at 64
    (i32.store (i32.const 4) (i32.const 16))
    (i64.store (i32.const 64) (i64.const 0x3736353433323130))
    (i64.store (i32.const 72) (i64.const 0x0a65646362613938))
    (block $end (loop $l
      (br_if $end (i32.ge_u (local.get $i) (i32.const {rounds})))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 16)))
      (drop (call $fdstat (i32.const 1) (i32.const 32)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
)"""


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="best of N (default 9)")
    parser.add_argument("--calls", type=int, default=20000,
                        help="rounds of three calls in the timed program (default 20000)")
    parser.add_argument("--before", type=Path, metavar="CHECKOUT",
                        help="another checkout of the project, timed in the same rounds")
    parser.add_argument("--as-is", action="store_true",
                        help="time the running environment's threadify script as installed")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="threadify-bench-") as tmp:
        folder = Path(tmp)
        scripts = threadify_commands(folder / "venvs", args.before, args.as_is)
        wasmtime = wasmtime46()
        for shape in ("plain", "threaded"):
            threaded = shape == "threaded"
            modules = {n: assemble(program(n, threaded), folder, f"{shape}{n}")
                       for n in (0, args.calls)}
            cmds: dict[str, list[str]] = {}
            for n, module in modules.items():
                for label, script in scripts.items():
                    cmds[f"{label} {n}"] = [script, "run", str(module)]
                cmds[f"wasmtime 46 {n}"] = [wasmtime, "run",
                                            *(WASMTIME_THREADS if threaded else []), str(module)]
            # stdout to /dev/null, through a shell (its start is in t(0) too, so it cancels)
            cmds = {name: ["sh", "-c", f"exec {shlex.join(cmd)} >/dev/null"]
                    for name, cmd in cmds.items()}
            wall, cpu = interleave(cmds, args.runs)
            for host in [*scripts, "wasmtime 46"]:
                per_call = CALLS_PER_ROUND * args.calls
                row = {"shape": shape, "command": host,
                       "start_ms": round(wall[f"{host} 0"] * 1e3, 1),
                       "wall_us": round((wall[f"{host} {args.calls}"] - wall[f"{host} 0"])
                                        / per_call * 1e6, 2),
                       "cpu_us": round((cpu[f"{host} {args.calls}"] - cpu[f"{host} 0"])
                                       / per_call * 1e6, 2)}
                rows.append(row)
    reference = {r["shape"]: r for r in rows if r["command"] == "wasmtime 46"}
    print(f"| program | command | start (wall) | wall per call | CPU per call "
          f"| wall / wasmtime 46 | ({args.calls} × {CALLS_PER_ROUND} calls, best of "
          f"{args.runs}) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ref = reference[r["shape"]]["wall_us"]
        r["ratio"] = round(r["wall_us"] / ref, 2) if ref > 0 else float("nan")
        print(f"| {r['shape']} | {r['command']} | {r['start_ms']:.1f} ms | {r['wall_us']:.2f} µs "
              f"| {r['cpu_us']:.2f} µs | {r['ratio']:.2f}× | |")
    return rows


if __name__ == "__main__":
    main()
