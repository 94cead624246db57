"""Two compute-bound threads on two cores: speedup over the same work on one thread.

t1 = one thread doing 2 units, t2 = two threads doing 1 unit each; speedup = (t1 - s) / (t2 - s)
where s is the time of the same program with no work (start-up, compile cache warm).
Run: ``python bench/host_parallel.py [--unit ITERATIONS] [--repeat K]``.
"""

from __future__ import annotations

import argparse

from host_common import assemble, best_of, compute, hosts, workdir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--unit", type=int, default=400_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    tmp = workdir()
    one = assemble(compute(1, 2, opts.unit), tmp, "one")
    two = assemble(compute(2, 1, opts.unit), tmp, "two")
    empty = assemble(compute(2, 0, opts.unit), tmp, "empty")
    print(f"{'host':<18}{'start s':>9}{'1 thread s':>12}{'2 threads s':>13}{'speedup':>9}")
    for name, cmd in hosts().items():
        best_of([*cmd, str(empty)], 1)
        s = best_of([*cmd, str(empty)], opts.repeat)
        t1 = best_of([*cmd, str(one)], opts.repeat)
        t2 = best_of([*cmd, str(two)], opts.repeat)
        print(f"{name:<18}{s:>9.3f}{t1:>12.3f}{t2:>13.3f}{(t1 - s) / (t2 - s):>9.2f}")


if __name__ == "__main__":
    main()
