"""Benchmark: whole-process decode + encode of large real modules vs. native tools.

Usage: ``python bench/codec.py [FILE.wasm ...]`` (default: the modules fetched by
``bench/fetch_npm.py``). Each measurement is a fresh child process (interpreter start-up
included, like the native tools' process start-up), timed by wall clock, with peak memory taken
from the child's ``ru_maxrss`` (``os.wait4``). The best of ``--repeat`` runs is reported.

Scenarios:

- ``threadify unchanged``: read, ``Module.decode``, ``encode()``, write;
- ``threadify modified``: read, decode, append a function + export + global, set the
  ``producers`` section, ``encode()``, write -- what a rewrite pass costs at the binary layer
  (the code section is split into bodies, existing bodies are emitted from the input bytes);
- ``threadify modified --stream``: the same, written with ``Module.chunks()`` (no joined copy);
- ``wasm-tools strip``: ``wasm-tools strip -d '^__no_such_section__$'`` (parses the sections and
  re-emits them all);
- ``wasm-opt``: ``wasm-opt --all-features`` parse + write with no passes, when ``wasm-opt`` is
  on PATH or ``$WASM_OPT`` points at it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys
from threadify.wasm import Module, FunctionBuilder, Global, GlobalType, Export, ExternKind, I32
src, dst, mode = sys.argv[1], sys.argv[2], sys.argv[3]
with open(src, "rb") as f:
    data = f.read()
m = Module.decode(data)
if mode != "unchanged":
    b = FunctionBuilder([], [I32])
    b.emit("i32.const", 42)
    f_idx = m.add_function(m.add_type(b.func_type), b.finish())
    m.add_export(Export("__bench_added", ExternKind.FUNC, f_idx))
    m.add_global(Global(GlobalType(I32, False), b"\x41\x00\x0b"))
    m.set_custom("producers", b"\x00")
with open(dst, "wb") as f:
    if mode == "stream":
        for chunk in m.chunks():
            f.write(chunk)
    else:
        f.write(m.encode())
"""


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"{cmd[0]} failed: {err.strip()[:300]}")
    return elapsed, usage.ru_maxrss * 1024


def check(path: Path) -> None:
    """Decode every function body of ``path`` and check that re-encoding the instructions
    gives the body's bytes back (a real-world complement to the test suite; slow: ~3 µs per
    instruction)."""
    sys.path.insert(0, str(ROOT))
    from threadify.wasm import Module, encode_instructions

    t0 = time.perf_counter()
    m = Module.decode(path.read_bytes())
    m.decode_all()
    count = mismatches = 0
    for body in m.code:
        instrs = body.instructions()
        count += len(instrs)
        if encode_instructions(instrs) != body.raw[body.expression_offset():]:
            mismatches += 1
    print(f"{path.name}: {len(m.code)} bodies, {count} instructions, {mismatches} mismatches, "
          f"{time.perf_counter() - t0:.1f} s")


def default_files() -> list[Path]:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "fetch_npm.py")],
                          capture_output=True, text=True, check=True)
    return [Path(line) for line in proc.stdout.splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--check", action="store_true",
                    help="instead of timing, decode every instruction and check the re-encoding")
    args = ap.parse_args()
    files = args.files or default_files()
    if args.check:
        for path in files:
            check(path)
        return 0
    wasm_tools = shutil.which("wasm-tools")
    wasm_opt = os.environ.get("WASM_OPT") or shutil.which("wasm-opt")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, best of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.wasm")
        for path in files:
            size = path.stat().st_size
            print(f"\n{path.name}: {size / 1e6:.1f} MB")
            rows: list[tuple[str, list[str]]] = []
            for mode in ("unchanged", "modified", "stream"):
                rows.append((f"threadify {mode}",
                             [sys.executable, "-c", CHILD, str(path), out, mode]))
            if wasm_tools:
                rows.append(("wasm-tools strip",
                             [wasm_tools, "strip", "-d", "^__no_such_section__$", str(path),
                              "-o", out]))
            if wasm_opt:
                rows.append(("wasm-opt (no passes)",
                             [wasm_opt, "--all-features", str(path), "-o", out]))
            ref = None
            # round-robin, so that load from other processes hits every tool alike
            samples: dict[str, list[tuple[float, int]]] = {label: [] for label, _ in rows}
            failed: dict[str, str] = {}
            for _ in range(args.repeat):
                for label, cmd in rows:
                    if label in failed:
                        continue
                    try:
                        samples[label].append(run(cmd))
                    except RuntimeError as exc:
                        failed[label] = str(exc)
            for label, _cmd in rows:
                if label in failed:
                    print(f"  {label:28s} failed: {failed[label]}")
                    continue
                secs = min(t for t, _ in samples[label])
                rss = max(r for _, r in samples[label])
                if label == "wasm-tools strip":
                    ref = secs
                print(f"  {label:28s} {secs * 1000:8.0f} ms   peak {rss / 1e6:7.1f} MB "
                      f"({rss / size:4.2f}x file)")
            if ref is not None:
                print(f"  (wasm-tools strip reference: {ref * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
