"""Entry point of the ``threadify`` command: transform by default, ``inspect`` and ``run``.

``threadify IN -o OUT`` is the main job (a build step), so it needs no sub-command word; the
first argument picks ``inspect`` or ``run`` when it is one of those. ``run`` and the usual
transform command lines are dispatched without importing typer (~40 ms): a build step runs on
every build, and a trivial threaded program should start in about 120 ms in all. Typer parses
``--help``, ``--version`` and everything unusual.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _start_validation_early(parsed: dict[str, Any]) -> None:
    """Read the input and start validating it before anything else is imported.

    Validation runs on wasmtime's native code in a background thread; on a 16 MiB module it
    needs ~0.1 CPU-seconds, so every millisecond it starts earlier shortens the run. Only a
    regular-file input is read here; anything unusual is left to the command itself.
    """
    from threadify_cli import transform_cmd

    from threadify.validation import VALIDATE_AUTO_LIMIT, BackgroundValidation

    path, validate = parsed["input"], parsed.get("validate")
    if validate is False or path == "-" or not os.path.isfile(path):
        return
    if validate is None and os.path.getsize(path) > VALIDATE_AUTO_LIMIT:
        return
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return  # the command reports it properly
    if data[:4] == b"\0asm":
        transform_cmd.PRELOADED = (path, data, BackgroundValidation(data))


def main(argv: list[str] | None = None) -> None:
    """Dispatch ``inspect`` / ``run`` sub-commands; anything else is the transform."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        from threadify_cli.run_cmd import main as run_main

        run_main(args[1:])
        return
    try:
        if args and args[0] == "inspect":
            from threadify_cli.commands import inspect_app

            inspect_app(args=args[1:], prog_name="threadify inspect")
        else:
            from threadify_cli.transform_cmd import fast_parse, transform

            parsed = fast_parse(args)
            if parsed is not None:  # the usual command line: no typer needed
                _start_validation_early(parsed)
                transform(**parsed)
                return
            from threadify_cli.commands import transform_app

            transform_app(args=args, prog_name="threadify")
    except KeyboardInterrupt:
        sys.stderr.write("threadify: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
