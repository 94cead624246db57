"""Host start-up: a trivial threaded program (spawn one thread, join, exit), against wasmtime 46.

Usage: ``python bench/host_startup.py [--runs N] [--before CHECKOUT] [--as-is]``.

Timed as whole processes, interleaved round-robin, best of N, wall and CPU (see
``host_common.interleave``):

- ``threadify run trivial.wasm``: this checkout laid out as a regular (non-editable) install in
  a temporary venv, started through the console script pip writes (``bench/transform.py``'s
  ``regular_install``); ``--before CHECKOUT`` adds another checkout (e.g. ``git worktree add
  /tmp/before REV``) in the same rounds; ``--as-is`` times the running environment's script;
- ``wasmtime run -W threads=y,shared-memory=y -S threads=y trivial.wasm`` (46.0.1, its compile
  cache on, as users run it);
- the floor under threadify's figure: ``python -c pass`` (interpreter and ``site``), plus the
  console script's own ``import re``, plus loading wasmtime's shared library with ``ctypes``,
  and ``import wasmtime`` (wasmtime-py's Python layer, which a run no longer imports).

Then one child process times the stages of a run from the inside (CLI modules, host modules,
engine, compile-cache load, describe); what the table leaves is linking, instantiation, the two
OS threads and the exit. The must (docs/performance.md): threadify at most 70 ms, aiming at 40.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from host_common import (  # noqa: E402
    CHILD_ENV,
    TRIVIAL,
    WASMTIME_THREADS,
    assemble,
    interleave,
    threadify_commands,
    wasmtime46,
)

MUST_MS = 70.0
AIM_MS = 40.0

STAGES = r"""
import sys, time
P, C = time.perf_counter, time.process_time
marks = [("start", P(), C())]
def mark(name): marks.append((name, P(), C()))
import re
mark("import re (console script)")
import threadify_cli.main, threadify_cli.run_cmd
mark("CLI modules")
import threadify.host.program, threadify.host.spawning, threadify.host.wasi
mark("host modules (capi: dlopen + declarations)")
from threadify.host import loading
engine = loading.make_engine()
mark("engine")
source = loading.open_module(sys.argv[1])
compiled = loading.compile_module(engine, source)
mark("open + compile cache (key, deserialize_file)")
shape = loading.describe(compiled, source.name)
mark("describe (imports, exports)")
out = {}
for (_, p0, c0), (name, p1, c1) in zip(marks, marks[1:]):
    out[name] = ((p1 - p0) * 1e3, (c1 - c0) * 1e3)
import json
print(json.dumps(out))
"""


def stages(python: str, module: Path, runs: int) -> dict[str, tuple[float, float]]:
    """Best (wall ms, CPU ms) per stage of a run, timed inside ``runs`` child processes."""
    best: dict[str, tuple[float, float]] = {}
    for _ in range(runs + 1):
        proc = subprocess.run([python, "-c", STAGES, str(module)], capture_output=True,
                              text=True, env=CHILD_ENV, check=True)
        for name, (wall, cpu) in json.loads(proc.stdout).items():
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], wall), min(old[1], cpu))
    return best


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="best of N (default 20)")
    parser.add_argument("--before", type=Path, metavar="CHECKOUT",
                        help="another checkout of the project, timed in the same rounds")
    parser.add_argument("--as-is", action="store_true",
                        help="time the running environment's threadify script as installed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="threadify-bench-") as tmp:
        folder = Path(tmp)
        module = assemble(TRIVIAL, folder, "trivial")
        scripts = threadify_commands(folder / "venvs", args.before, args.as_is)
        python = str(Path(scripts["threadify"]).parent / "python")
        wasmtime = wasmtime46()
        lib = ("import ctypes, threadify.native.capi as c" if args.as_is else
               "import ctypes; from importlib.machinery import PathFinder as F; import os; "
               "d = F.find_spec('wasmtime').submodule_search_locations[0]; "
               "ctypes.CDLL(os.path.join(d, 'linux-' + os.uname().machine, "
               "'_libwasmtime.so'))")
        cmds = {name: [script, "run", str(module)] for name, script in scripts.items()}
        cmds["wasmtime 46"] = [wasmtime, "run", *WASMTIME_THREADS, str(module)]
        cmds["python -c pass"] = [python, "-c", "pass"]
        cmds["python + import re"] = [python, "-c", "import re"]
        cmds["python + re + ctypes + dlopen"] = [python, "-c", f"import re; {lib}"]
        cmds["python + import wasmtime"] = [python, "-c", "import wasmtime"]
        wall, cpu = interleave(cmds, args.runs)
        inside = stages(python, module, max(3, args.runs // 4))
    reference = wall["wasmtime 46"]
    rows = []
    print(f"| command | wall (best of {args.runs}) | CPU | wall / wasmtime 46 |")
    print("|---|---|---|---|")
    for name in cmds:
        rows.append({"command": name, "wall_ms": round(wall[name] * 1e3, 1),
                     "cpu_ms": round(cpu[name] * 1e3, 1),
                     "ratio": round(wall[name] / reference, 2)})
        print(f"| {name} | {wall[name] * 1e3:.1f} ms | {cpu[name] * 1e3:.1f} ms "
              f"| {wall[name] / reference:.1f}× |")
    ours = wall["threadify"] * 1e3
    verdict = "meets" if ours <= MUST_MS else "MISSES"
    print(f"\nthreadify run: {ours:.1f} ms wall — {verdict} the {MUST_MS:.0f} ms must "
          f"({'within' if ours <= AIM_MS else 'above'} the {AIM_MS:.0f} ms aim)")
    print("\nInside one run (best of the child processes; wall, CPU):\n")
    print("| stage | wall | CPU |")
    print("|---|---|---|")
    for name, (w, c) in inside.items():
        print(f"| {name} | {w:.1f} ms | {c:.1f} ms |")
        rows.append({"stage": name, "wall_ms": round(w, 1), "cpu_ms": round(c, 1)})
    return rows


if __name__ == "__main__":
    main()
