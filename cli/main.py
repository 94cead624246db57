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

#: Transform options that take a value (so their value is not the input path).
VALUE_OPTIONS = {"-o", "--output", "--stack-size", "--max-memory"}


def _start_validation_early(args: list[str]) -> None:
    """Read the input and start validating it before typer is imported.

    Validation runs on wasmtime's native code in a background thread; on a 45 MB module it needs
    about 0.3 CPU-seconds, so every millisecond it starts earlier shortens the run. Only a plain
    regular-file input is read here; anything unusual is left to the command itself.
    """
    if "--no-validate" in args or "--help" in args or "-h" in args:
        return
    candidates = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            candidates.append(arg)
    if len(candidates) != 1 or not os.path.isfile(candidates[0]):
        return
    from threadify.validation import VALIDATE_AUTO_LIMIT, BackgroundValidation

    if "--validate" not in args and os.path.getsize(candidates[0]) > VALIDATE_AUTO_LIMIT:
        return
    try:
        with open(candidates[0], "rb") as handle:
            data = handle.read()
    except OSError:
        return  # the command reports it properly
    if data[:4] != b"\0asm":
        return
    validation = BackgroundValidation(data)  # starts now; the rest of start-up runs meanwhile
    from threadify_cli import transform_cmd

    transform_cmd.PRELOADED = (candidates[0], data, validation)


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
            _start_validation_early(args)
            from threadify_cli.transform_cmd import fast_parse, transform

            parsed = fast_parse(args)
            if parsed is not None:  # the usual command line: no typer needed
                transform(**parsed)
                return
            from threadify_cli.commands import transform_app

            transform_app(args=args, prog_name="threadify")
    except KeyboardInterrupt:
        sys.stderr.write("threadify: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
