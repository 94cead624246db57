"""Per-spawn cost: N sequential spawn+join pairs (N = 1, 200, 1000), threadify vs wasmtime.

Per-spawn cost = (t(N) - t(1)) / (N - 1), which removes start-up and compilation from the
figure. Run: ``python bench/host_spawn.py [--repeat K]``.
"""

from __future__ import annotations

import argparse

from host_common import assemble, best_of, hosts, spawn_join, workdir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    opts = parser.parse_args()
    tmp = workdir()
    programs = {n: assemble(spawn_join(n), tmp, f"spawn{n}") for n in (1, 200, 1000)}
    print(f"{'host':<18}{'t(1) ms':>10}{'t(200) ms':>11}{'t(1000) ms':>12}"
          f"{'us/spawn@200':>14}{'us/spawn@1000':>15}")
    for name, cmd in hosts().items():
        best_of([*cmd, str(programs[1])], 1)  # warm the compile cache
        t = {n: best_of([*cmd, str(path)], opts.repeat) for n, path in programs.items()}
        per200 = (t[200] - t[1]) / 199 * 1e6
        per1000 = (t[1000] - t[1]) / 999 * 1e6
        print(f"{name:<18}{t[1] * 1e3:>10.1f}{t[200] * 1e3:>11.1f}{t[1000] * 1e3:>12.1f}"
              f"{per200:>14.1f}{per1000:>15.1f}")


if __name__ == "__main__":
    main()
