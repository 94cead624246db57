"""Start-up: wall time of a trivial threaded program (spawn one thread, join, exit).

Also shows the floor under threadify's figure on this machine: ``python -c pass`` and
``python -c "import wasmtime"``. Run: ``python bench/host_startup.py [--repeat K]``.
"""

from __future__ import annotations

import argparse
import sys

from host_common import TRIVIAL, assemble, best_of, hosts, workdir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    opts = parser.parse_args()
    path = assemble(TRIVIAL, workdir(), "trivial")
    rows = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python + import wasmtime": [sys.executable, "-c", "import wasmtime"],
    }
    rows.update({name: [*cmd, str(path)] for name, cmd in hosts().items()})
    for name, cmd in rows.items():
        best_of(cmd, 1)
        print(f"{name:<28}{best_of(cmd, opts.repeat) * 1e3:>8.1f} ms")


if __name__ == "__main__":
    main()
