"""Entry point of the ``threadify`` command: transform by default, ``inspect`` and ``run``.

``threadify IN -o OUT`` is the main job (a build step), so it needs no sub-command word; the
first argument picks ``inspect`` or ``run`` when it is one of those. Each command's options are
declared once, in :mod:`threadify_cli.options`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Dispatch ``inspect`` / ``run``; anything else is the transform."""
    args = list(sys.argv[1:] if argv is None else argv)
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


if __name__ == "__main__":
    main()
