"""Every benchmark in one command: ``python bench/run.py [--runs N] [--before CHECKOUT]``.

1. The transform on the corpus (``bench/transform.py``): threadify against ``wasm-tools strip``
   per module (the Rust executable and pip's console script), wall and CPU, geometric means.
2. The host (``bench/host_startup.py``, ``bench/host_large.py``, ``bench/host_syscalls.py``),
   each run when it is there and
   given the same ``--before``/``--as-is``; a program whose corpus file cannot be fetched is
   skipped with a note by the script itself.
3. A summary: the ratios of all of them side by side.

Run it from the project's environment (the venv where threadify is installed), on an otherwise
idle machine if the figures are to be published: ratios within one run are what counts;
absolute times vary with the load, which is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import transform  # noqa: E402

#: Host benchmarks run after the transform table, when their script exists.
HOST_SCRIPTS = ("host_startup", "host_large", "host_syscalls")


def run_host(name: str, argv: list[str]) -> list[dict[str, Any]]:
    """Run ``bench/<name>.py``'s ``main`` (it prints its own tables); its rows, if any."""
    if not (HERE / f"{name}.py").exists():
        print(f"\n## {name}: not present, skipped")
        return []
    print(f"\n## {name}\n")
    sys.stdout.flush()
    module = importlib.import_module(name)
    main = getattr(module, "main", None)
    if main is None:
        print(f"{name} has no main(): skipped")
        return []
    saved = sys.argv
    sys.argv = [str(HERE / f"{name}.py"), *argv]  # for scripts that read sys.argv themselves
    try:
        rows = main(argv) if inspect.signature(main).parameters else main()
    except SystemExit as stop:
        if stop.code not in (None, 0):
            print(f"{name} stopped: {stop.code}")
        return []
    finally:
        sys.argv = saved
    return [r for r in rows or [] if isinstance(r, dict)]


def summary(rows: list[transform.Row], host: dict[str, list[dict[str, Any]]]) -> str:
    """The headline ratios of every benchmark, one line each."""
    lines = ["| benchmark | figure | ratio |", "|---|---|---|"]
    tools = ["threadify", "before"] if rows and all("before" in r.wall for r in rows) else [
        "threadify"]
    for tool in tools:
        for figure in ("wall", "cpu"):
            for label, reference in (("executable", "strip"), ("console script", "script")):
                ratios = [getattr(r, figure)[tool] / getattr(r, figure)[reference]
                          for r in rows]
                if ratios:
                    worst = max(zip(ratios, (r.name for r in rows), strict=True))
                    lines.append(f"| transform ({tool}) | {figure}, against strip ({label}): "
                                 f"geometric mean, worst | "
                                 f"{transform.geometric_mean(ratios):.2f}×, "
                                 f"{worst[0]:.2f}× ({worst[1]}) |")
    for name, host_rows in host.items():
        for r in host_rows:
            if "ratio" not in r:
                continue
            what = ", ".join(str(r[k]) for k in ("module", "kind", "shape", "command") if k in r)
            wall = (f"{r['wall_ms']:.1f} ms" if "wall_ms" in r else
                    f"{r['wall_s']:.3f} s" if "wall_s" in r else
                    f"{r['wall_us']:.2f} µs per call" if "wall_us" in r else "")
            lines.append(f"| {name} | {what} ({wall} wall) | {r['ratio']:.2f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="best of N (transform)")
    parser.add_argument("--skip-host", action="store_true")
    parser.add_argument("--skip-transform", action="store_true")
    parser.add_argument("--as-is", action="store_true",
                        help="time the environment's threadify script as installed (see "
                             "bench/transform.py)")
    parser.add_argument("--before", type=Path, metavar="CHECKOUT",
                        help="another checkout timed in the same rounds (e.g. made with: "
                             "git archive REV threadify cli | tar -x -C DIR)")
    parser.add_argument("names", nargs="*", help="corpus entries for the transform table")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"# threadify benchmarks (load average at start: {load:.2f})\n")
    rows: list[transform.Row] = []
    if not args.skip_transform:
        print(f"## transform: threadify against wasm-tools strip, best of {args.runs}, "
              "whole processes\n")
        sys.stdout.flush()
        rows = transform.measure(args.names or None, args.runs, args.as_is, args.before)
        print(transform.table(rows))
    host: dict[str, list[dict[str, Any]]] = {}
    if not args.skip_host:
        shared = (["--as-is"] if args.as_is else []) + (
            ["--before", str(args.before)] if args.before else [])
        for name in HOST_SCRIPTS:
            host[name] = run_host(name, shared)
    print("\n## summary\n")
    print(summary(rows, host))
    end = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"\nload average at the end: {end:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
