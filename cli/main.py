"""Entry point of the ``threadify`` command: transform by default, ``inspect`` and ``run``.

``threadify IN -o OUT`` is the main job (a build step), so it needs no sub-command word; the
first argument picks ``inspect`` or ``run`` when it is one of those. Each command's options are
declared once, in :mod:`threadify_cli.options`.
"""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> None:
    """Dispatch ``inspect`` / ``run``; anything else is the transform.

    The cyclic garbage collector is off while a command runs: a command is a short process
    that keeps nearly everything it makes until it ends (a module's thousands of segment
    records, say), so the collections that its allocations trigger find nothing to free and
    cost 5-15 % of a transform's CPU (docs/performance.md). ``run`` turns it on again before
    the program starts (:func:`threadify.host.program.execute`), as a program may run long.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    collecting = gc.isenabled()
    gc.disable()
    try:
        if args[:1] == ["run"]:
            from .run_cmd import main as run_main

            run_main(args[1:])
        elif args[:1] == ["inspect"]:
            from .inspect_cmd import main as inspect_main

            inspect_main(args[1:])
        else:
            from .transform_cmd import main as transform_main

            transform_main(args)
    except KeyboardInterrupt:
        sys.stderr.write("threadify: interrupted\n")
        sys.exit(130)
    finally:
        if collecting:
            gc.enable()


if __name__ == "__main__":
    main()
