"""Every benchmark in one command: ``python bench/run.py [--runs N] [--skip-host]``.

1. The transform on the corpus (``bench/transform.py``): threadify vs ``wasm-tools strip`` per
   module, the ratio, the geometric mean.
2. The host (``bench/host_startup.py``, ``bench/host_large.py``): each is run when it is there;
   a module whose corpus file cannot be fetched is skipped with a note by the script itself.

Run it from the project's environment (``python`` of the venv where threadify is installed), on
an otherwise idle machine if the figures are to be published: ratios within one run are what
counts; absolute times vary with the load.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import transform  # noqa: E402

#: Host benchmarks run after the transform table, when their script exists.
HOST_SCRIPTS = ("host_startup", "host_large")


def _print_rows(rows: Any) -> None:
    """Print what a host benchmark's ``main()`` returned (it may also print by itself)."""
    if rows is None:
        return
    if isinstance(rows, str):
        print(rows)
        return
    for row in rows:
        if isinstance(row, dict):
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
        elif isinstance(row, (list, tuple)):
            print("  " + "  ".join(str(v) for v in row))
        else:
            print(f"  {row}")


def run_host(name: str) -> None:
    """Run ``bench/<name>.py``'s ``main`` with its default arguments."""
    if not (HERE / f"{name}.py").exists():
        print(f"\n## {name}: not present, skipped")
        return
    print(f"\n## {name}")
    sys.stdout.flush()
    module = importlib.import_module(name)
    main = getattr(module, "main", None)
    if main is None:
        print(f"{name} has no main(): skipped")
        return
    saved = sys.argv
    sys.argv = [str(HERE / f"{name}.py")]  # scripts that parse sys.argv see no options
    try:
        takes_args = bool(inspect.signature(main).parameters)
        _print_rows(main([]) if takes_args else main())
    except SystemExit as stop:
        if stop.code not in (None, 0):
            print(f"{name} stopped: {stop.code}")
    finally:
        sys.argv = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="best of N (transform)")
    parser.add_argument("--skip-host", action="store_true")
    parser.add_argument("--as-is", action="store_true",
                        help="time the environment's threadify script as installed (see "
                             "bench/transform.py)")
    parser.add_argument("--before", type=Path, metavar="CHECKOUT",
                        help="another checkout timed in the same rounds (bench/transform.py)")
    parser.add_argument("names", nargs="*", help="corpus entries for the transform table")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# threadify benchmarks (load average at start: {load:.2f})\n")
    print(f"## transform: threadify vs wasm-tools strip, best of {args.runs}, whole processes\n")
    sys.stdout.flush()
    print(transform.table(transform.measure(args.names or None, args.runs, args.as_is,
                                                args.before)))
    if not args.skip_host:
        for name in HOST_SCRIPTS:
            run_host(name)
    end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end: {end:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
