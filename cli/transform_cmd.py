"""The transform command's implementation, free of typer.

``threadify IN -o OUT`` is a build step that runs on every build, so its start-up matters:
:func:`fast_parse` recognises the documented command lines by hand and :func:`transform` does
the work, without importing typer (~40 ms). ``--help``, ``--version`` and anything the fast
parser does not recognise go to the Typer app in :mod:`threadify_cli.commands`, which calls the
same :func:`transform`; both accept exactly the same command lines.

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
from typing import Any, NoReturn

from threadify.errors import Suggestion, ThreadifyError
from threadify.validation import BackgroundValidation

#: Set by :func:`threadify_cli.main.main` when it read the input (and started validating it)
#: before anything else was imported: ``(path, data, validation)``.
PRELOADED: tuple[str, bytes, BackgroundValidation] | None = None


def _echo(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


SUFFIXES = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20,
            "g": 1 << 30, "gib": 1 << 30}


def fail(problem: str, fix: str | None = None) -> NoReturn:
    """Print the one-line error (and hint) and exit 1."""
    sys.stdout.flush()
    sys.stderr.write(f"threadify: error: {problem}\n")
    if fix:
        sys.stderr.write(f"threadify: hint: {fix}\n")
    sys.stderr.flush()
    raise SystemExit(1)


def size_text(size: int) -> str:
    """``size`` in the largest binary unit that divides it (``512MiB``, ``2GiB``)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def option_flag(suggestion: Suggestion) -> str:
    """An option suggested by a library hint, as typed on the command line."""
    flag = "--" + suggestion.option.replace("_", "-")
    if suggestion.value is None or suggestion.value is True:
        return flag
    if suggestion.value is False:
        return "--no-" + flag[2:]
    return f"{flag} {size_text(suggestion.value)}"


def parse_size(text: str, what: str) -> int:
    """``1048576``, ``1MiB``, ``64KiB``, ``1G``: binary units (KiB/MiB/GiB or K/M/G)."""
    raw = text.strip().lower().replace("_", "")
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits):]
    if not digits.isdigit() or unit not in SUFFIXES:
        fail(f"{what} '{text}' is not a size", f"write it as bytes or with KiB/MiB/GiB, e.g. "
                                              f"{what.split()[-1]} 1MiB")
    return int(digits) * SUFFIXES[unit]


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


def transform(input: str, output: str, stack_size: str = "1MiB", max_memory: str | None = None,
              allow_non_atomic: bool = False, validate: bool | None = None, verify: bool = False,
              quiet: bool = False, json_report: bool = False, stack_check: bool = False) -> None:
    """``threadify INPUT -o OUTPUT [options]`` (see ``threadify --help``)."""
    from threadify.pipeline import Options, run

    data = read_input(input)
    try:
        options = Options(
            stack_size=parse_size(stack_size, "--stack-size"),
            max_memory=None if max_memory is None else parse_size(max_memory, "--max-memory"),
            allow_non_atomic=allow_non_atomic,
            validate=validate,
            stack_check=stack_check,
        )
        early = PRELOADED[2] if PRELOADED is not None and PRELOADED[0] == input else None
        result = run(data, options, early)
        verified = None
        if verify:
            from threadify.verify import verify as verify_output

            result.check()
            verified = verify_output(result.output).as_dict()
    except ThreadifyError as error:
        fail(error.problem, error.fix_for(option_flag))
    except RecursionError:
        fail("the module is nested too deeply to process")
    except MemoryError:
        fail("out of memory while processing the module")

    def check() -> None:
        try:
            result.check()
        except ThreadifyError as error:
            fail(error.problem, error.fix_for(option_flag))

    chunks = result.chunks()
    write_output(output, chunks, before_commit=check)
    for message in result.warnings:
        sys.stderr.write(f"threadify: warning: {message}\n")
    report = result.as_dict()
    report.update({"input": input, "output": output, "input_size": len(data),
                   "output_size": sum(len(c) for c in chunks), "verified": verified})
    if json_report:
        _echo(json.dumps(report, indent=2, sort_keys=True), err=output == "-")
    elif not quiet:
        if result.unchanged:
            _echo(f"{input}: {result.reasons[0]}; output = input"
                       f"{'' if output == '-' else ' (' + output + ')'}", err=True)
        else:
            note = ", verified" if verified else ""
            _echo(f"{input}: class {result.verdict} -> {output} "
                       f"({len(result.changes)} changes{note})", err=True)


#: Boolean flags of the transform command and the value they set.
FLAGS = {
    "--allow-non-atomic": ("allow_non_atomic", True),
    "--no-allow-non-atomic": ("allow_non_atomic", False),
    "--validate": ("validate", True),
    "--no-validate": ("validate", False),
    "--verify": ("verify", True),
    "--no-verify": ("verify", False),
    "--quiet": ("quiet", True),
    "-q": ("quiet", True),
    "--json": ("json_report", True),
    "--stack-check": ("stack_check", True),
    "--no-stack-check": ("stack_check", False),
}
#: Options of the transform command that take a value.
VALUED = {"-o": "output", "--output": "output", "--stack-size": "stack_size",
          "--max-memory": "max_memory"}


def fast_parse(args: list[str]) -> dict[str, Any] | None:
    """Keyword arguments for :func:`transform`, or None when typer should parse ``args``.

    Accepts: one INPUT, ``-o/--output X`` (also ``-oX``, ``--output=X``), ``--stack-size``,
    ``--max-memory`` (separate or ``=`` values), the boolean flags, and ``--``. The last of a
    repeated option wins, as with typer.
    """
    values: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    only_positional = False
    while i < len(args):
        arg = args[i]
        i += 1
        if only_positional or arg == "-" or not arg.startswith("-"):
            positional.append(arg)
        elif arg == "--":
            only_positional = True
        elif arg in FLAGS:
            key, flag = FLAGS[arg]
            values[key] = flag
        elif arg in VALUED:
            if i >= len(args):
                return None
            values[VALUED[arg]] = args[i]
            i += 1
        elif arg.startswith("-o") and not arg.startswith("--"):
            values["output"] = arg[2:]
        elif "=" in arg and arg.split("=", 1)[0] in VALUED and arg.startswith("--"):
            name, text = arg.split("=", 1)
            values[VALUED[name]] = text
        else:
            return None  # --help, --version, typos: typer explains
    if len(positional) != 1 or "output" not in values:
        return None
    values["input"] = positional[0]
    return values
