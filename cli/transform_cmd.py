"""``threadify INPUT -o OUTPUT [options]``: the transform, as a build step.

It runs on every build, so start-up matters: the input is read and its validation started (by
the wasm-tools executable, in a child process) before the transform's own modules are
imported, and nothing else is imported that the run does not need.

Every user-facing failure is one line on stderr (``threadify: error: ...``), optionally followed
by ``threadify: hint: ...`` with the fix, and exit code 1; the output is written only after
success (see :mod:`threadify_cli.files`).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, NoReturn

from threadify.errors import ThreadifyError

from .files import map_input, write_output
from .options import TRANSFORM, TransformArgs
from .parsing import fail, option_flag, parse_or_exit, write_stdout

if TYPE_CHECKING:
    import mmap

    from threadify.validation import BackgroundValidation


def main(argv: list[str]) -> None:
    """Entry point for ``threadify ARGV...`` (the default command)."""
    transform(parse_or_exit(TRANSFORM, argv))


def _start_validation(data: bytes | mmap.mmap, validate: bool | None,
                      path: str) -> BackgroundValidation | None:
    """Start validating ``data`` now, if the options ask for it (see ``Options.validates``;
    the default reads only the section headers): on 2 MiB of code it needs ~20 ms of CPU,
    so every millisecond it starts earlier shortens the run."""
    from threadify.validation import BackgroundValidation, validated_by_default

    if validate is False or data[:4] != b"\0asm":
        return None  # not wasm: the decoder says why, at once
    if validate is None and not validated_by_default(data):
        return None
    return BackgroundValidation(data, None if isinstance(data, bytes) else path)


def transform(args: TransformArgs) -> None:
    """Rewrite ``args.input`` into ``args.output``; report on stderr (or as JSON)."""
    data = map_input(args.input)
    validation = _start_validation(data, args.validate, args.input)
    from threadify.pipeline import Options, run

    options = Options(**{name: getattr(args, name)
                         for name, spec in TransformArgs.specs.items() if spec.library})
    try:
        result = run(data, options, validation)
        verified = None
        if args.verify:
            from threadify.verify import verify as verify_output

            result.check()
            verified = verify_output(result.output).as_dict()
        # encoding reads what the rewrite did not need to (an untouched section's item
        # count, say), so it can still find the input malformed
        chunks = result.chunks()
    except ThreadifyError as error:
        _reject(error)
    except RecursionError:
        fail("the module is nested too deeply to process")
    except MemoryError:
        fail("out of memory while processing the module")

    def check() -> None:
        try:
            result.check()
        except ThreadifyError as error:
            _reject(error)

    write_output(args.output, chunks, before_commit=check)
    for message in result.warning_texts(option_flag):
        sys.stderr.write(f"threadify: warning: {message}\n")
    report = result.as_dict(option_flag)
    report.update({"input": args.input, "output": args.output, "input_size": len(data),
                   "output_size": sum(len(c) for c in chunks), "verified": verified})
    if args.json_report:
        _echo(json.dumps(report, indent=2, sort_keys=True), err=args.output == "-")
    elif not args.quiet:
        into = "" if args.output == "-" else f" ({args.output})"
        if result.unchanged:
            _echo(f"{args.input}: {result.reasons[0]}; output = input{into}", err=True)
        else:
            note = ", verified" if verified else ""
            _echo(f"{args.input}: class {result.verdict} -> {args.output} "
                  f"({len(result.changes)} changes{note})", err=True)


def _reject(error: ThreadifyError) -> NoReturn:
    """Report a rejection the one way, with its hint naming our flags (``--max-memory 256MiB``),
    whether it comes from the rewrite or from the check just before the output is committed."""
    fail(error.problem, error.fix_for(option_flag))


def _echo(text: str, err: bool = False) -> None:
    if not err:
        write_stdout(text + "\n")
        return
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
