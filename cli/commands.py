"""The ``threadify`` transform and ``threadify inspect`` commands (Typer).

Every user-facing failure is one line on stderr (``threadify: error: ...``), optionally followed
by ``threadify: hint: ...`` with the fix, and exit code 1; the output file is written atomically
(temporary file beside it, then a rename) and only after success.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from threadify import __version__
from threadify.errors import ThreadifyError
from threadify.validation import BackgroundValidation

EPILOG = """\
Examples:

  threadify app.wasm -o app.threads.wasm            # rewrite (a build step)

  threadify app.wasm -o out.wasm --verify            # rewrite, then prove it on the bundled host

  threadify app.wasm -o - --stack-size 256KiB > out.wasm

  threadify inspect app.wasm [--json]                # what threadify sees, and its verdict

  threadify run out.wasm --dir .::/work -- arg1      # run on the bundled WASI-threads host

Input: wasm32 modules linked by wasm-ld from code compiled with -matomics -mbulk-memory, with
or without --shared-memory. Already thread-ready modules (they export wasi_thread_start) are
copied unchanged. See docs/ for the ABI (how to spawn a thread) and recipes per compiler.
"""

SUFFIXES = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20,
            "g": 1 << 30, "gib": 1 << 30}


def fail(problem: str, fix: str | None = None) -> NoReturn:
    """Print the one-line error (and hint) and exit 1."""
    typer.echo(f"threadify: error: {problem}", err=True)
    if fix:
        typer.echo(f"threadify: hint: {fix}", err=True)
    raise typer.Exit(1)


def parse_size(text: str, what: str) -> int:
    """``1048576``, ``1MiB``, ``64KiB``, ``1G``: binary units (KiB/MiB/GiB or K/M/G)."""
    raw = text.strip().lower().replace("_", "")
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits):]
    if not digits.isdigit() or unit not in SUFFIXES:
        fail(f"{what} '{text}' is not a size", f"write it as bytes or with KiB/MiB/GiB, e.g. "
                                              f"{what.split()[-1]} 1MiB")
    return int(digits) * SUFFIXES[unit]


#: Set by :func:`threadify_cli.main.main` when it read the input (and started validating it)
#: before this module was even imported: ``(path, data, validation)``.
PRELOADED: tuple[str, bytes, BackgroundValidation] | None = None


def read_input(path: str) -> bytes:
    if PRELOADED is not None and PRELOADED[0] == path:
        return PRELOADED[1]
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    try:
        if p.is_dir():
            fail(f"{path} is a directory, not a .wasm file")
        return p.read_bytes()
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except PermissionError:
        fail(f"{path}: permission denied")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror or error}")


def write_output(path: str, data: bytes | list[bytes | memoryview],
                 before_commit: Callable[[], None] | None = None) -> None:
    """Write ``data`` (bytes or chunks) atomically: a temporary file beside the target, then a
    rename. ``before_commit`` runs before the rename (or before anything reaches stdout) and
    may fail: the temporary file is then removed and nothing is written."""
    chunks = [data] if isinstance(data, bytes) else data
    if path == "-":
        if before_commit is not None:
            before_commit()
        try:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            fail("cannot write to standard output: the reader closed the pipe")
        except OSError as error:
            fail(f"cannot write to standard output: {error.strerror or error}")
        return
    target = Path(path)
    if target.is_dir():
        fail(f"{path} is a directory", "give the output file's name with -o")
    directory = target.parent if str(target.parent) else Path(".")
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=directory)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        if before_commit is not None:
            before_commit()
        os.chmod(tmp_name, 0o644 & ~_umask())
        os.replace(tmp_name, target)
        tmp_name = None
    except FileNotFoundError:
        fail(f"cannot write {path}: directory {directory} does not exist")
    except PermissionError:
        fail(f"cannot write {path}: permission denied")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror or error}")
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _version(value: bool) -> None:
    if value:
        typer.echo(f"threadify {__version__}")
        raise typer.Exit()


transform_app = typer.Typer(add_completion=False, rich_markup_mode=None,
                            pretty_exceptions_enable=False,
                            context_settings={"help_option_names": ["-h", "--help"]})


@transform_app.command(
    help="Make a wasm-ld WebAssembly module thread-ready for WASI-threads hosts.\n\n"
         "Other commands: 'threadify inspect --help', 'threadify run --help'.",
    epilog=EPILOG)
def transform_command(
    input: Annotated[str, typer.Argument(help="Input .wasm file ('-' reads stdin).",
                                         show_default=False)],
    output: Annotated[str, typer.Option("-o", "--output", help="Output file ('-' writes "
                                        "stdout). May equal the input.", show_default=False)],
    stack_size: Annotated[str, typer.Option(help="Stack size of every new thread (bytes, or "
                                            "with KiB/MiB/GiB; a multiple of 16).")] = "1MiB",
    max_memory: Annotated[str | None, typer.Option(  # noqa: UP007 (typer needs Optional)
        help="Maximum memory (multiple of 64KiB). Default: keep the input's, or 1GiB if it "
             "has none.", show_default=False)] = None,
    allow_non_atomic: Annotated[bool, typer.Option(
        help="Accept code compiled without atomics (not thread-safe itself).")] = False,
    validate: Annotated[bool, typer.Option(
        "--validate/--no-validate",
        help="Validate the input (in parallel with the rewrite). --no-validate is faster on "
             "huge modules, but an invalid input then gives an invalid output.")] = True,
    verify: Annotated[bool, typer.Option(
        help="Validate the output and run it on the bundled host with several threads before "
             "writing it.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    json_report: Annotated[bool, typer.Option("--json", help="Print a JSON report of what "
                                              "changed (to stderr when -o -).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    from threadify.pipeline import make_options, run

    data = read_input(input)
    try:
        options = make_options(
            stack_size=parse_size(stack_size, "--stack-size"),
            max_memory=None if max_memory is None else parse_size(max_memory, "--max-memory"),
            allow_non_atomic=allow_non_atomic,
            validate=validate,
        )
        early = PRELOADED[2] if PRELOADED is not None and PRELOADED[0] == input else None
        result = run(data, options, early)
        verified = None
        if verify:
            from threadify.verify import verify as verify_output

            result.check()
            verified = verify_output(result.output).as_dict()
    except ThreadifyError as error:
        fail(error.problem, error.fix)
    except RecursionError:
        fail("the module is nested too deeply to process")
    except MemoryError:
        fail("out of memory while processing the module")

    def check() -> None:
        try:
            result.check()
        except ThreadifyError as error:
            fail(error.problem, error.fix)

    chunks = result.chunks()
    write_output(output, chunks, before_commit=check)
    report = result.as_dict()
    report.update({"input": input, "output": output, "input_size": len(data),
                   "output_size": sum(len(c) for c in chunks), "verified": verified})
    if json_report:
        typer.echo(json.dumps(report, indent=2, sort_keys=True), err=output == "-")
    elif not quiet:
        if result.unchanged:
            typer.echo(f"{input}: {result.reasons[0]}; output = input"
                       f"{'' if output == '-' else ' (' + output + ')'}", err=True)
        else:
            note = ", verified" if verified else ""
            typer.echo(f"{input}: class {result.verdict} -> {output} "
                       f"({len(result.changes)} changes{note})", err=True)


inspect_app = typer.Typer(add_completion=False, rich_markup_mode=None,
                          pretty_exceptions_enable=False,
                            context_settings={"help_option_names": ["-h", "--help"]})


@inspect_app.command(
    help="Show what threadify sees in a module: memory, linker symbols (and how they were "
         "found), TLS, and the verdict: class A/B (will be rewritten), C (already "
         "thread-ready) or D (rejected, with the reason and the fix). Exit code 0 when the "
         "module is accepted, 1 when rejected.",
    epilog="Example: threadify inspect app.wasm --json")
def inspect_command(
    input: Annotated[str, typer.Argument(help="Input .wasm file ('-' reads stdin).",
                                         show_default=False)],
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    from threadify.inspection import inspect

    report = inspect(read_input(input))
    if json_out:
        typer.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        typer.echo(report.text())
    if not report.accepted:
        raise typer.Exit(1)
