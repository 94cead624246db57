"""The Typer apps of ``threadify`` (transform) and ``threadify inspect``.

The transform's work is :func:`threadify_cli.transform_cmd.transform`; this app gives it
``--help``, ``--version`` and typer's handling of unusual command lines.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from threadify_cli.transform_cmd import option_flag, read_input, transform

from threadify import __version__

EPILOG = """\
\b
Examples:
  threadify app.wasm -o app.threads.wasm     # rewrite (a build step)
  threadify app.wasm -o out.wasm --verify     # rewrite, then prove it on the bundled host
  threadify app.wasm -o - --stack-size 256KiB > out.wasm
  threadify inspect app.wasm --json           # what threadify sees, and its verdict
  threadify run out.wasm --dir .::/work -- a  # run on the bundled WASI-threads host

Input: wasm32 modules linked by wasm-ld from code compiled with -matomics -mbulk-memory, with
or without --shared-memory. Already thread-ready modules (they export wasi_thread_start) are
copied unchanged. See docs/ for the ABI (how to spawn a thread) and recipes per compiler.
"""

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
    validate: Annotated[bool | None, typer.Option(  # noqa: UP007
        "--validate/--no-validate", show_default=False,
        help="Validate the whole input (in parallel with the rewrite) and reject it if it is "
             "invalid. Default: inputs up to 16 MiB are validated; larger ones only with "
             "--validate (or --verify), because checking every function body costs more than "
             "the rewrite itself.")] = None,
    stack_check: Annotated[bool, typer.Option(
        help="Add stack-limit checks: a thread that overflows its stack traps instead of "
             "overwriting memory (docs/stack-check.md).")] = False,
    verify: Annotated[bool, typer.Option(
        help="Validate the output and run it on the bundled host with several threads before "
             "writing it.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    json_report: Annotated[bool, typer.Option("--json", help="Print a JSON report of what "
                                              "changed (to stderr when -o -).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    transform(input, output, stack_size, max_memory, allow_non_atomic, validate, verify, quiet,
              json_report, stack_check)


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
        typer.echo(json.dumps(report.as_dict(option_flag), indent=2, sort_keys=True))
    else:
        typer.echo(report.text(option_flag))
    if not report.accepted:
        raise typer.Exit(1)
