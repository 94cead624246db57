"""Benchmark: whole-process ``threadify in.wasm -o out.wasm`` on large real modules.

Usage: ``python bench/transform.py [--runs N]``. Fetches the inputs with ``bench/fetch_npm.py``
(into a cache outside the repo) and times, in the same run and as whole processes:

- ``threadify IN -o OUT`` (class B with ``--allow-non-atomic`` for @biomejs/wasm-nodejs, class C
  pass-through for @rolldown/binding-wasm32-wasi), by default and with ``--validate`` (inputs
  above 16 MiB are validated only on request);
- ``wasm-tools strip -d '^__no_such_section__$' IN -o OUT`` — a byte-identical Rust copy, the
  reference (target: threadify ≤ 1× its time, must ≤ 2×);
- plain Python read + write of the file (the floor for any Python tool).

Reports the best and median wall time of N runs, peak RSS of the child (``ru_maxrss``), and
validates threadify's output with ``wasm-tools validate``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fetch_npm  # noqa: E402

CASES = [
    ("@biomejs/wasm-nodejs", ["--allow-non-atomic"]),
    ("@rolldown/binding-wasm32-wasi", []),
]


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.decode()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(after, before) * 1024


def peak_rss(cmd: list[str]) -> int:
    """Peak RSS of ``cmd`` alone, measured with GNU time when available."""
    gnu_time = shutil.which("time") or "/usr/bin/time"
    if not os.path.exists(gnu_time):
        return 0
    proc = subprocess.run([gnu_time, "-f", "%M", *cmd], capture_output=True, text=True)
    try:
        return int(proc.stderr.strip().splitlines()[-1]) * 1024
    except (ValueError, IndexError):
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    threadify = shutil.which("threadify")
    wasm_tools = shutil.which("wasm-tools")
    if threadify is None or wasm_tools is None:
        raise SystemExit("install the project first: pip install -e '.[test]'")
    python = sys.executable
    copy = "import sys; open(sys.argv[2], 'wb').write(open(sys.argv[1], 'rb').read())"
    print(f"{'input':<44} {'size':>8} {'tool':<12} {'best s':>7} {'median':>7} {'ratio':>6} "
          f"{'peak MiB':>8}")
    for package, extra in CASES:
        for path in fetch_npm.fetch(package):
            size = path.stat().st_size
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "out.wasm"
                tools = {
                    "wasm-tools": [wasm_tools, "strip", "-d", "^__no_such_section__$",
                                   str(path), "-o", str(out)],
                    "threadify": [threadify, str(path), "-o", str(out), "-q", *extra],
                    "--validate": [threadify, str(path), "-o", str(out), "-q",
                                   "--validate", *extra],
                    "python-copy": [python, "-c", copy, str(path), str(out)],
                }
                times: dict[str, list[float]] = {name: [] for name in tools}
                for _ in range(args.runs):
                    for name, cmd in tools.items():  # interleaved: same machine state
                        times[name].append(timed(cmd)[0])
                subprocess.run(tools["threadify"], check=True)
                valid = subprocess.run([wasm_tools, "validate", "--features", "all",
                                        str(out)], capture_output=True).returncode == 0
                reference = min(times["wasm-tools"])
                for name, cmd in tools.items():
                    best = min(times[name])
                    peak = peak_rss(cmd) / (1 << 20)
                    print(f"{package + '/' + path.name:<44.44} {size / 1e6:7.1f}M {name:<12} "
                          f"{best:7.3f} {statistics.median(times[name]):7.3f} "
                          f"{best / reference:5.2f}x {peak:8.0f}")
                print(f"{'':<44} output validates: {valid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
