"""The command line as a user meets it: files, pipes, reports, and failures that leave no trace.

Every failure must be one line (plus an optional hint), exit code 1, no output file, the input
untouched, and never a traceback. The parser is tested in-process on the source package ``cli``
(installed as ``threadify_cli``) against the option tables it is driven by; everything else runs
the real command in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import threadify as threadify_library
from cli.options import INSPECT, RUN, TRANSFORM, Command, TransformArgs, spec_of
from cli.parsing import (
    HelpRequested,
    UsageError,
    VersionRequested,
    help_text,
    option_flag,
    parse,
)
from tests.tooling import (
    FIXTURES,
    THREADS_FEATURES,
    assert_valid,
    imports_added_by,
    slow_unless_cases,
)
from threadify import Suggestion, __version__

CLASS_B = FIXTURES / "c/wasm/tls.nonshared.wasm"
CLASS_C = FIXTURES / "zig/std_thread.wasm"
NON_ATOMIC = FIXTURES / "c/wasm/nonatomic.plain.wasm"


def threadify(*args: str, stdin: bytes | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "threadify", *args], input=stdin,
                          capture_output=True, timeout=120, cwd=cwd)


def assert_clean_failure(proc: subprocess.CompletedProcess[bytes], *words: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2, err
    assert lines[0].startswith("threadify: error: ")
    for word in words:
        assert word in err, err


def test_transform_to_file(tmp_path: Path) -> None:
    out = tmp_path / "out.wasm"
    proc = threadify(str(CLASS_B), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "class B" in proc.stderr.decode()
    assert_valid(out.read_bytes(), THREADS_FEATURES)
    assert not [p for p in tmp_path.iterdir() if p.name != "out.wasm"]  # no temp files left


def test_stdin_to_stdout_equals_file_output(tmp_path: Path) -> None:
    out = tmp_path / "out.wasm"
    threadify(str(CLASS_B), "-o", str(out), "-q")
    proc = threadify("-", "-o", "-", "-q", stdin=CLASS_B.read_bytes())
    assert proc.returncode == 0
    assert proc.stdout == out.read_bytes()
    assert proc.stderr == b""


def test_in_place(tmp_path: Path) -> None:
    target = tmp_path / "app.wasm"
    target.write_bytes(CLASS_B.read_bytes())
    assert threadify(str(target), "-o", str(target), "-q").returncode == 0
    assert_valid(target.read_bytes(), THREADS_FEATURES)
    first = target.read_bytes()
    proc = threadify(str(target), "-o", str(target))  # second run: already thread-ready
    assert proc.returncode == 0 and "output = input" in proc.stderr.decode()
    assert target.read_bytes() == first


def test_json_report(tmp_path: Path) -> None:
    proc = threadify(str(CLASS_B), "-o", str(tmp_path / "o.wasm"), "--json")
    report = json.loads(proc.stdout)
    assert report["class"] == "B" and report["changes"] and not report["unchanged"]
    assert report["layout"]["stack_size"] == 1 << 20
    proc = threadify(str(CLASS_B), "-o", "-", "--json")  # JSON goes to stderr then
    assert json.loads(proc.stderr)["output"] == "-"
    assert proc.stdout.startswith(b"\0asm")


def test_class_c_copied_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "o.wasm"
    proc = threadify(str(CLASS_C), "-o", str(out))
    assert proc.returncode == 0 and "already thread-ready" in proc.stderr.decode()
    assert out.read_bytes() == CLASS_C.read_bytes()


def test_options_with_units(tmp_path: Path) -> None:
    out = tmp_path / "o.wasm"
    proc = threadify(str(CLASS_B), "-o", str(out), "--stack-size", "256KiB",
                     "--max-memory", "64MiB", "--json")
    report = json.loads(proc.stdout)
    assert report["layout"]["stack_size"] == 256 * 1024
    assert report["layout"]["options"]["max_memory"] == 64 << 20


def test_verify_flag(tmp_path: Path) -> None:
    proc = threadify(str(CLASS_B), "-o", str(tmp_path / "o.wasm"), "--verify", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verified"]["runtime_checked"] is True


def test_inspect(tmp_path: Path) -> None:
    proc = threadify("inspect", str(CLASS_B), "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["class"] == "B"
    assert report["symbols"]["stack_pointer"]["how"] == "name section"
    assert report["tls"]["size"] > 0
    stripped = threadify("inspect", str(FIXTURES / "c/wasm/tls.nonshared-stripped.wasm"),
                         "--json")
    assert json.loads(stripped.stdout)["symbols"]["stack_pointer"]["how"].startswith(
        "heuristic")
    text = threadify("inspect", str(NON_ATOMIC))
    assert text.returncode == 1 and b"class D" in text.stdout and b"atomics" in text.stdout
    # the command line speaks in flags, the library in keywords
    assert b"pass --allow-non-atomic" in text.stdout and b"allow_non_atomic" not in text.stdout
    rejected = json.loads(threadify("inspect", str(NON_ATOMIC), "--json").stdout)
    assert "pass --allow-non-atomic" in rejected["fix"]


# -- failures: one line, exit 1, nothing written, input untouched ----------------------------

def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rejected_input_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "plain.wasm"
    src.write_bytes(NON_ATOMIC.read_bytes())
    before = _digest(src)
    out = tmp_path / "out.wasm"
    proc = threadify(str(src), "-o", str(out))
    assert_clean_failure(proc, "atomics", "--allow-non-atomic")
    assert b"allow_non_atomic" not in proc.stderr
    assert not out.exists() and _digest(src) == before
    # in place: the input stays as it was
    proc = threadify(str(src), "-o", str(src))
    assert_clean_failure(proc, "atomics")
    assert _digest(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.wasm"]


@pytest.mark.parametrize("content,words", [
    (b"", ["magic"]),
    (b"not wasm at all", ["magic"]),
    (CLASS_B.read_bytes()[:100], ["malformed"]),
    (b"\x00asm\x0d\x00\x01\x00", ["component"]),
])
def test_malformed_inputs(tmp_path: Path, content: bytes, words: list[str]) -> None:
    src = tmp_path / "bad.wasm"
    src.write_bytes(content)
    out = tmp_path / "out.wasm"
    assert_clean_failure(threadify(str(src), "-o", str(out)), *words)
    assert not out.exists()


def test_missing_input_and_directory_input(tmp_path: Path) -> None:
    assert_clean_failure(threadify(str(tmp_path / "nope.wasm"), "-o", str(tmp_path / "o")),
                         "no such file")
    assert_clean_failure(threadify(str(tmp_path), "-o", str(tmp_path / "o")), "directory")
    assert not (tmp_path / "o").exists()


def test_read_only_output_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    immutable = False
    if os.geteuid() == 0:  # root ignores permissions; an immutable directory stops it too
        immutable = subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode == 0
        if not immutable:
            pytest.skip("running as root without chattr: cannot make a read-only directory")
    try:
        assert_clean_failure(threadify(str(CLASS_B), "-o", str(ro / "o.wasm")),
                             "cannot write")
        assert list(ro.iterdir()) == []
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(ro)], check=True)


def test_unwritable_output_location(tmp_path: Path) -> None:
    """Even as root some places cannot be written: /proc, and a missing directory."""
    assert_clean_failure(threadify(str(CLASS_B), "-o", "/proc/threadify-out.wasm"),
                         "cannot write")
    assert_clean_failure(threadify(str(CLASS_B), "-o", str(tmp_path / "no/such/dir/o.wasm")),
                         "cannot write")


STDOUT_COMMANDS = {"output": [str(CLASS_B), "-o", "-"],
                   "inspect": ["inspect", "--json", str(CLASS_B)],
                   "help": ["run", "--help"], "version": ["--version"]}


# The fast loop keeps the output written buffered (the default, and the case CI met).
@pytest.mark.parametrize(("args", "buffered"), slow_unless_cases(
    lambda case: case == (STDOUT_COMMANDS["output"], True),
    [(args, buffered) for args in STDOUT_COMMANDS.values() for buffered in (True, False)],
    ids=lambda case: "-".join((next(k for k, v in STDOUT_COMMANDS.items() if v == case[0]),
                               "buffered" if case[1] else "unbuffered"))))
def test_full_disk_on_stdout(args: list[str], buffered: bool) -> None:
    """Anything printed on stdout into a full device (/dev/full answers every write with
    ENOSPC) fails with one line. Buffered (Python's default) the bytes held back were once
    written again at exit: a second error, exit 120; so both ways are run whatever the
    environment's ``PYTHONUNBUFFERED``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "threadify", *args], stdout=full,
                              stderr=subprocess.PIPE, timeout=120, env=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.decode().splitlines() == [
        "threadify: error: cannot write to standard output: No space left on device"]


@pytest.mark.parametrize("args,words", [
    (["--stack-size", "12"], ["multiple of 16"]),
    (["--stack-size", "lots"], ["not a size"]),
    (["--max-memory", "100"], ["64 KiB", "pass e.g. --max-memory 256MiB"]),
    (["--stack-size", "1000"], ["pass e.g. --stack-size 1MiB"]),
    (["--max-memory", "64KiB"], ["smaller than the module's initial memory", "--max-memory "]),
])
def test_bad_option_values(tmp_path: Path, args: list[str], words: list[str]) -> None:
    out = tmp_path / "o.wasm"
    assert_clean_failure(threadify(str(CLASS_B), "-o", str(out), *args), *words)
    assert not out.exists()


def test_full_disk_on_file_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A write that fails half-way (ENOSPC) removes the temporary file and reports one line."""
    import errno

    from cli import files as cli_main

    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, fd: int) -> None:
            self.inner = real_fdopen(fd, "wb")

        def __enter__(self) -> FullFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self.inner.close()

        def write(self, data: bytes) -> int:
            self.inner.write(data[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullFile(fd))
    target = tmp_path / "out.wasm"
    with pytest.raises(SystemExit) as info:
        cli_main.write_output(str(target), b"\0asm" + bytes(100))
    assert info.value.code == 1
    assert "No space left on device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_invalid_body_rejected_and_nothing_written(tmp_path: Path) -> None:
    """The background validation fails after the output was written to its temporary file:
    the temporary file is removed and the target never appears."""
    from threadify.wasm import Module

    module = Module.decode(CLASS_B.read_bytes())
    body = module.code[-1]
    raw = bytes(body.raw)
    module.code[-1] = type(body)(raw[:-1] + b"\xff" + raw[-1:])
    src = tmp_path / "corrupt.wasm"
    src.write_bytes(module.encode())
    out = tmp_path / "out.wasm"
    assert_clean_failure(threadify(str(src), "-o", str(out)), "not valid WebAssembly")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.wasm"]
    proc = threadify(str(src), "-o", "-")
    assert proc.returncode == 1 and proc.stdout == b""


# -- the one parser, driven by the option tables ----------------------------------------------

SAMPLES: dict[str, tuple[str, object]] = {
    "size": ("64KiB", 64 * 1024), "count": ("7", 7), "text": ("X.wasm", "X.wasm"),
}
COMMANDS: list[Command[Any]] = [TRANSFORM, INSPECT, RUN]


def _minimal(command: Command[Any]) -> list[str]:
    """The shortest valid command line of ``command`` (its required parts)."""
    return {"threadify": ["IN", "-o", "OUT"]}.get(command.prog, ["IN"])


def _spellings(command: Command[Any]) -> list[tuple[str, list[str], object]]:
    """Every way the table says each option may be written, with the value it must give."""
    cases: list[tuple[str, list[str], object]] = []
    for name, spec in command.args.specs.items():
        for flag in spec.flags:
            if spec.kind == "flag":
                cases.append((name, [flag], True))
                continue
            text, value = SAMPLES.get(spec.kind, SAMPLES["text"])
            expect = [text, text] if spec.kind == "list" else value
            if flag.startswith("--"):
                cases.append((name, [f"{flag}={text}", flag, text], expect))
            else:
                cases.append((name, [flag + text, flag, text], expect))
            cases.append((name, [flag, text, flag, text], expect))
        if spec.negatable:
            cases.append((name, [spec.long, "--no-" + spec.long[2:]], False))
    return cases


CASES: list[tuple[Command[Any], str, list[str], object]] = [
    (command, *case) for command in COMMANDS for case in _spellings(command)]


@pytest.mark.parametrize("command,name,args,expect", CASES,
                         ids=[f"{c.prog}:{' '.join(a)}" for c, _, a, _ in CASES])
def test_every_spelling_in_the_table_parses(command: Command[Any], name: str, args: list[str],
                                           expect: object) -> None:
    """Each option, written each way its table entry allows, before and after the
    arguments, sets its field and nothing else."""
    defaults = parse(command, _minimal(command)).as_dict()
    for argv in (_minimal(command) + args, args + _minimal(command)):
        parsed = parse(command, argv).as_dict()
        if name == "output":
            assert parsed[name] in (expect, "OUT")  # the last -o wins
            continue
        assert parsed == defaults | {name: expect}


def test_arguments_options_and_double_dash() -> None:
    args = parse(TRANSFORM, ["-o", "OUT", "--", "-odd-name.wasm"])
    assert (args.input, args.output) == ("-odd-name.wasm", "OUT")
    assert parse(TRANSFORM, ["-", "-o", "-"]).input == "-"
    run = parse(RUN, ["--dir", "a", "x.wasm", "--env=K=V", "--dir=b::/c", "one", "--", "-v",
                      "--dir"])
    assert (run.module, run.dirs, run.env) == ("x.wasm", ["a", "b::/c"], ["K=V"])
    assert run.args == ["one", "-v", "--dir"]  # the program's own, after -- or the module


@pytest.mark.parametrize("command,argv,words", [
    (TRANSFORM, ["IN", "-o", "OUT", "--stak-size", "1"], ["no such option: --stak-size",
                                                          "did you mean --stack-size?"]),
    (TRANSFORM, ["IN"], ["--output is missing", "usage: threadify INPUT -o OUTPUT"]),
    (TRANSFORM, ["-o", "OUT"], ["no INPUT given"]),
    (TRANSFORM, ["A", "B", "-o", "OUT"], ["unexpected argument 'B'"]),
    (TRANSFORM, ["IN", "-o"], ["-o needs a value", "-o OUTPUT"]),
    (TRANSFORM, ["IN", "-o", "O", "--quiet=yes"], ["--quiet takes no value"]),
    (TRANSFORM, ["IN", "-o", "O", "--stack-size", "big"], ["not a size", "--stack-size 1MiB"]),
    (INSPECT, ["IN", "--version"], ["no such option: --version"]),
    (RUN, [], ["no MODULE given"]),
    (RUN, ["x.wasm", "--max-threads", "-1"], ["--max-threads '-1' is not a whole number"]),
    (RUN, ["x.wasm", "-v"], ["no such option: -v"]),
])
def test_usage_errors_name_the_problem_and_the_fix(command: Command[Any], argv: list[str],
                                                  words: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        parse(command, argv)
    text = f"{info.value.problem}\n{info.value.fix}"
    for word in words:
        assert word in text


def test_typo_in_option_is_a_clean_error(tmp_path: Path) -> None:
    proc = threadify(str(CLASS_B), "-o", str(tmp_path / "o.wasm"), "--stak-size", "1MiB")
    assert_clean_failure(proc, "no such option: --stak-size", "did you mean --stack-size?")
    assert not (tmp_path / "o.wasm").exists()
    run = subprocess.run([sys.executable, "-m", "threadify", "run", "--dir", "", "x.wasm"],
                         capture_output=True, timeout=120)
    assert run.returncode == 1 and run.stderr.decode().splitlines() == [
        "threadify run: error: --dir '': empty host directory",
        "threadify run: hint: write --dir HOST[::GUEST]"]


@pytest.mark.parametrize("command", COMMANDS, ids=[c.prog for c in COMMANDS])
def test_help_is_made_from_the_table(command: Command[Any]) -> None:
    """``--help`` shows every flag and argument of the table, the defaults, and examples."""
    text = help_text(command)
    assert text.startswith(f"Usage: {command.usage}\n")
    for spec in command.args.specs.values():
        for flag in spec.flags or (spec.metavar,):
            assert (flag if not spec.negatable else "--[no-]" + flag[2:]) in text
    assert "Examples:\n" in text and all(example in text for example in command.examples)
    assert all(len(line) <= 100 for line in text.splitlines())


def test_help_and_version_on_the_command_line() -> None:
    proc = threadify("--version")
    assert proc.returncode == 0 and proc.stdout.decode() == f"threadify {__version__}\n"
    for argv, command in ((["--help"], TRANSFORM), (["inspect", "-h"], INSPECT),
                          (["run", "--help"], RUN), (["IN", "-o", "X", "--help"], TRANSFORM)):
        proc = threadify(*argv)
        assert proc.returncode == 0 and proc.stderr == b""
        assert proc.stdout.decode() == help_text(command)  # 100 columns when not a terminal
    assert "Default: 1MiB." in help_text(TRANSFORM)
    assert "Default: 128." in help_text(RUN)


def test_library_options_are_command_line_options() -> None:
    """The options the table marks ``library`` are exactly transform()'s keywords, with the
    same defaults, and their flags are the keywords' spelling: a new library option without a
    flag (or a flag the library lacks) fails here."""
    import inspect

    keywords = {name: p.default for name, p in
                inspect.signature(threadify_library.transform).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    marked = {name: spec.default for name, spec in TransformArgs.specs.items() if spec.library}
    assert marked == keywords
    for name in keywords:
        assert spec_of(TransformArgs, name).long == "--" + name.replace("_", "-")


@pytest.mark.parametrize("suggestion,text", [
    (Suggestion("allow_non_atomic", True), "--allow-non-atomic"),
    (Suggestion("validate", False), "--no-validate"),
    (Suggestion("stack_size"), "--stack-size"),
    (Suggestion("max_memory", 512 << 20), "--max-memory 512MiB"),
    (Suggestion("stack_size", 96 * 1024), "--stack-size 96KiB"),
])
def test_hints_are_rendered_as_flags(suggestion: Suggestion, text: str) -> None:
    assert option_flag(suggestion) == text


def test_usual_command_lines_import_only_what_they_need(tmp_path: Path) -> None:
    """The start-up budget: no command-line framework; the transform does not load the host,
    and ``run`` (parsed, then the host's program runner) neither loads the transform nor
    ``dataclasses`` (~6 ms)."""
    out = tmp_path / "o.wasm"
    loaded = imports_added_by("from threadify_cli.main import main\nmain(sys.argv[1:])",
                              [str(CLASS_B), "-o", str(out), "-q"],
                              watched=["typer", "click", "argparse"])
    assert "threadify.pipeline" in loaded and out.exists(), loaded
    assert not loaded & {"typer", "click", "argparse", "threadify.host.program"}
    loaded = imports_added_by("from threadify_cli import options, parsing\n"
                              "import threadify.host.program\n"
                              "parsing.parse(options.RUN, sys.argv[1:])",
                              ["x.wasm", "--dir", ".", "--", "-v"],
                              watched=["typer", "click", "argparse", "dataclasses"])
    assert "threadify_cli.parsing" in loaded, loaded
    assert not loaded & {"typer", "click", "argparse", "threadify.pipeline",
                         "threadify.classify", "dataclasses"}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(COMMANDS), st.lists(st.one_of(
    st.sampled_from(["-o", "-q", "-h", "--", "-", "-oX", "--json", "--no-verify", "--stack-size",
                     "--stack-size=1K", "--max-threads", "--dir", "--dir=", "--env", "--x",
                     "-", "--no-json", "--version", "--quiet=1", "7", "-1", "1MiB"]),
    st.text(max_size=6)), max_size=8))
def test_any_command_line_parses_or_is_a_usage_error(command: Command[Any],
                                                     argv: list[str]) -> None:
    """Whatever the command line, the parser gives typed arguments, help, or one usage error
    (which the command prints as one line and a hint) — never another exception."""
    try:
        args = parse(command, argv)
    except (UsageError, HelpRequested, VersionRequested):
        return
    assert isinstance(args, command.args)
