"""The one command-line parser, and ``--help``, both read from the tables in ``options``.

Start-up matters (``threadify IN -o OUT`` runs on every build, ``threadify run`` in loops), so
this is a small parser of our own rather than a framework: it imports nothing beyond the
standard library's basics, and only an error or ``--help`` loads more.

Accepted syntax: options before or after the arguments; ``--name VALUE`` and ``--name=VALUE``;
``-o VALUE`` and ``-oVALUE``; ``--flag`` and, where declared, ``--no-flag``; a repeated option
overrides the earlier one (``list`` options collect every occurrence); ``--`` ends the options.
``-h``/``--help`` (and ``--version`` where declared) win over everything else on the line.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn, TypeVar

from threadify.errors import Suggestion

from .options import Arguments, Command, Spec, TransformArgs, spec_of

A = TypeVar("A", bound=Arguments)

SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
              "g": 1 << 30, "gib": 1 << 30}


class UsageError(Exception):
    """A command line that cannot be read: the problem, and how to write it instead."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


class HelpRequested(Exception):
    """``-h``/``--help`` was given."""


class VersionRequested(Exception):
    """``--version`` was given."""


def size_text(size: int) -> str:
    """``size`` in the largest binary unit that divides it (``512MiB``, ``2GiB``)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def parse_size(text: str, flag: str) -> int:
    """``1048576``, ``1MiB``, ``64KiB``, ``1G``: binary units (KiB/MiB/GiB or K/M/G)."""
    raw = text.strip().lower().replace("_", "")
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits):]
    if not digits.isdigit() or unit not in SIZE_UNITS:
        raise UsageError(f"{flag} '{text}' is not a size",
                         f"write it as bytes or with KiB/MiB/GiB, e.g. {flag} 1MiB")
    return int(digits) * SIZE_UNITS[unit]


def parse_count(text: str, flag: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(f"{flag} '{text}' is not a whole number (0 or more)",
                         f"e.g. {flag} 64")
    return value


def _fields(command: Command[Any]) -> list[tuple[str, Spec]]:
    return list(command.args.specs.items())


def _flag_table(command: Command[Any]) -> dict[str, tuple[str, Spec, bool]]:
    """Every spelling of every option: flag -> (field, spec, value of a flag)."""
    table: dict[str, tuple[str, Spec, bool]] = {}
    for name, spec in _fields(command):
        for flag in spec.flags:
            table[flag] = (name, spec, True)
        if spec.negatable:
            table["--no-" + spec.long[2:]] = (name, spec, False)
    return table


def parse(command: Command[A], argv: list[str]) -> A:
    """Read ``argv`` into the command's arguments class; raises :class:`UsageError`,
    :class:`HelpRequested` or :class:`VersionRequested`."""
    before_dashes = argv[:argv.index("--")] if "--" in argv else argv
    if "-h" in before_dashes or "--help" in before_dashes:
        raise HelpRequested
    if command.version and "--version" in before_dashes:
        raise VersionRequested
    flags = _flag_table(command)
    values: dict[str, Any] = {}
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positionals.extend(argv[i:])
            break
        if arg == "-" or not arg.startswith("-"):
            positionals.append(arg)
            continue
        if arg.startswith("--"):
            flag, equals, value = arg.partition("=")
            has_value = bool(equals)
        else:  # -oVALUE
            flag, value = arg[:2], arg[2:]
            has_value = bool(value)
        if flag not in flags:
            raise _unknown(command, arg)
        name, spec, on = flags[flag]
        if spec.kind == "flag":
            if has_value:
                raise UsageError(f"{flag} takes no value", f"write {flag} alone")
            values[name] = on
            continue
        if not has_value:
            if i >= len(argv):
                raise UsageError(f"{flag} needs a value",
                                 f"write {flag} {spec.metavar or 'VALUE'}")
            value = argv[i]
            i += 1
        if spec.kind == "size":
            values[name] = parse_size(value, flag)
        elif spec.kind == "count":
            values[name] = parse_count(value, flag)
        elif spec.kind == "list":
            values.setdefault(name, []).append(value)
        else:
            values[name] = value
    _place_positionals(command, positionals, values)
    for name, spec in _fields(command):
        if spec.required and name not in values:
            problem = f"{spec.long} is missing" if spec.flags else f"no {spec.metavar} given"
            raise UsageError(problem, f"usage: {command.usage} ('{command.prog} --help' shows "
                                      f"every option)")
    return command.args(**values)


def _place_positionals(command: Command[Any], positionals: list[str],
                       values: dict[str, Any]) -> None:
    arguments = [(name, spec) for name, spec in _fields(command) if not spec.flags]
    for name, spec in arguments:
        if spec.rest:
            values[name] = positionals
            return
        if positionals:
            values[name] = positionals.pop(0)
    if positionals:
        raise UsageError(f"unexpected argument '{positionals[0]}'",
                         f"usage: {command.usage}")


def _unknown(command: Command[Any], arg: str) -> UsageError:
    import difflib

    flag = arg.partition("=")[0]
    known = [*_flag_table(command), "--help"] + (["--version"] if command.version else [])
    close = difflib.get_close_matches(flag, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return UsageError(f"no such option: {flag}",
                      f"{hint}('{command.prog} --help' lists the options)")


# -- --help -------------------------------------------------------------------------------------


def _names(spec: Spec) -> str:
    short = [f for f in spec.flags if not f.startswith("--")]
    long = [f for f in spec.flags if f.startswith("--")]
    if spec.negatable:
        long = ["--[no-]" + f[2:] for f in long]
    names = ", ".join(short + long) if short else "    " + ", ".join(long)
    return f"{names} {spec.metavar}" if spec.metavar and spec.kind != "flag" else names


def _default(spec: Spec) -> str:
    if spec.kind == "size" and isinstance(spec.default, int):
        return f" Default: {size_text(spec.default)}."
    if spec.kind == "count" and isinstance(spec.default, int):
        return f" Default: {spec.default}."
    return ""


def help_text(command: Command[Any], width: int = 100) -> str:
    """``--help`` for ``command``, wrapped to ``width`` columns."""
    import textwrap

    def wrap(text: str, indent: str = "") -> list[str]:
        return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False)

    def entry(left: str, text: str) -> list[str]:
        column = 27
        body = textwrap.wrap(text, width - column, break_on_hyphens=False) or [""]
        if len(left) + 2 > column:
            return [left, *[" " * column + line for line in body]]
        return [f"{left:<{column}}{body[0]}", *[" " * column + line for line in body[1:]]]

    lines = [f"Usage: {command.usage}", "", *wrap(command.summary), ""]
    arguments = [(n, s) for n, s in _fields(command) if not s.flags]
    lines.append("Arguments:")
    for _name, spec in arguments:
        lines += entry(f"  {spec.metavar}", spec.help)
    lines += ["", "Options:"]
    for _name, spec in _fields(command):
        if spec.flags:
            lines += entry(f"  {_names(spec)}", spec.help + _default(spec))
    lines += entry("  -h, --help", "Show this help and exit.")
    if command.version:
        lines += entry("      --version", "Print the version and exit.")
    lines += ["", "Examples:", *[f"  {example}" for example in command.examples]]
    for paragraph in command.notes.split("\n") if command.notes else []:
        lines += ["", *wrap(paragraph)]
    return "\n".join(lines) + "\n"


# -- reporting ----------------------------------------------------------------------------------


def fail(problem: str, fix: str | None = None, prog: str = "threadify") -> NoReturn:
    """Print the one-line error (and its hint) and exit 1: the way every failure ends."""
    try:
        sys.stdout.flush()  # what was printed before comes first
    except (OSError, ValueError):
        _discard_stdout()
    sys.stderr.write(f"{prog}: error: {problem}\n")
    if fix:
        sys.stderr.write(f"{prog}: hint: {fix}\n")
    sys.stderr.flush()
    raise SystemExit(1)


def write_stdout(text: str) -> None:
    """Print ``text`` on standard output now; a write that fails (a full disk, a closed pipe)
    ends the command the usual way: one error line, exit 1."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as error:
        stdout_failed(error)


def stdout_failed(error: OSError) -> NoReturn:
    """Report a failed write to standard output as one line, exit 1.

    Python keeps the bytes it could not write and tries them again as the interpreter exits;
    that fails too and turns the exit code into 120, with an "Exception ignored" message on
    stderr. So standard output is pointed at the null device first: nothing is left to retry.
    """
    _discard_stdout()
    if isinstance(error, BrokenPipeError):
        fail("cannot write to standard output: the reader closed the pipe")
    fail(f"cannot write to standard output: {error.strerror or error}")


def _discard_stdout() -> None:
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass  # no descriptor to replace: nothing will be retried at exit either


def parse_or_exit(command: Command[A], argv: list[str]) -> A:
    """:func:`parse`, with ``--help``/``--version`` printed and usage errors reported."""
    try:
        return parse(command, argv)
    except HelpRequested:
        import shutil

        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 100
        write_stdout(help_text(command, max(min(width, 100), 60)))
    except VersionRequested:
        from threadify import __version__

        write_stdout(f"threadify {__version__}\n")
    except UsageError as error:
        fail(error.problem, error.fix, command.prog)
    raise SystemExit(0)


def option_flag(suggestion: Suggestion) -> str:
    """An option that a library hint suggests, as typed on the command line
    (``--max-memory 256MiB``, ``--allow-non-atomic``)."""
    spec = spec_of(TransformArgs, suggestion.option)
    if suggestion.value is None or suggestion.value is True:
        return spec.long
    if suggestion.value is False:
        return "--no-" + spec.long[2:]
    if spec.kind == "size":
        return f"{spec.long} {size_text(suggestion.value)}"
    return f"{spec.long} {suggestion.value}"
