"""Entry point of the ``threadify`` command: transform by default, ``inspect`` and ``run``.

``threadify IN -o OUT`` is the main job (a build step), so it needs no sub-command word; the
first argument picks ``inspect`` or ``run`` when it is one of those. ``run`` is dispatched before
anything heavy is imported (typer alone costs ~50 ms; a trivial threaded program should start in
about 120 ms in all).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Dispatch ``inspect`` / ``run`` sub-commands; anything else is the transform."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        from threadify_cli.run_cmd import main as run_main

        run_main(args[1:])
        return
    from threadify_cli.commands import inspect_app, transform_app

    try:
        if args and args[0] == "inspect":
            inspect_app(args=args[1:], prog_name="threadify inspect")
        else:
            transform_app(args=args, prog_name="threadify")
    except KeyboardInterrupt:
        sys.stderr.write("threadify: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
