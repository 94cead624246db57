"""The command line as a user meets it: files, pipes, reports, and failures that leave no trace.

Every failure must be one line (plus an optional hint), exit code 1, no output file, the input
untouched, and never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tooling import FIXTURES, THREADS_FEATURES, assert_valid

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


def test_version_and_help() -> None:
    proc = threadify("--version")
    assert proc.returncode == 0 and proc.stdout.decode().startswith("threadify ")
    text = threadify("--help").stdout.decode()
    for word in ("--output", "--stack-size", "--max-memory", "--verify", "inspect", "run",
                 "Examples"):
        assert word in text
    assert "--json" in threadify("inspect", "--help").stdout.decode()


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


def test_full_disk_on_stdout() -> None:
    """``-o -`` into a full device (/dev/full answers every write with ENOSPC)."""
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "threadify", str(CLASS_B), "-o", "-"],
                              stdout=full, stderr=subprocess.PIPE, timeout=120)
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr and b"space" in proc.stderr.lower()


@pytest.mark.parametrize("args,words", [
    (["--stack-size", "12"], ["multiple of 16"]),
    (["--stack-size", "lots"], ["not a size"]),
    (["--max-memory", "100"], ["64 KiB", "pass e.g. --max-memory 256MiB"]),
    (["--stack-size", "1000"], ["pass e.g. --stack-size 1MiB"]),
    (["--max-memory", "64KiB"], ["leaves no room", "to threadify", "--max-memory "]),
])
def test_bad_option_values(tmp_path: Path, args: list[str], words: list[str]) -> None:
    out = tmp_path / "o.wasm"
    assert_clean_failure(threadify(str(CLASS_B), "-o", str(out), *args), *words)
    assert not out.exists()


def test_full_disk_on_file_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A write that fails half-way (ENOSPC) removes the temporary file and reports one line."""
    import errno

    from threadify_cli import transform_cmd as cli_main  # type: ignore[import-not-found]

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

    monkeypatch.setattr(cli_main.os, "fdopen", lambda fd, mode: FullFile(fd))
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


@pytest.mark.parametrize("args", [
    ["IN", "-o", "OUT"],
    ["-o", "OUT", "IN", "--json", "-q"],
    ["IN", "--output=OUT", "--stack-size=64KiB", "--max-memory", "16MiB", "--no-validate"],
    ["IN", "-oOUT", "--allow-non-atomic", "--verify"],
    ["-o", "OUT", "--", "IN"],
    ["IN", "-o", "A", "-o", "OUT", "--no-verify", "--validate"],
    ["IN", "-o", "OUT", "--stack-check"],
])
def test_fast_parser_agrees_with_typer(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The typer-free parser used for speed reads every command line as typer does."""
    from threadify_cli import commands, transform_cmd

    seen: list[dict[str, object]] = []

    def record(*values: object, **kw: object) -> None:
        names = ["input", "output", "stack_size", "max_memory", "allow_non_atomic",
                 "validate", "verify", "quiet", "json_report", "stack_check"]
        seen.append(dict(zip(names, values, strict=False)) | kw)

    monkeypatch.setattr(commands, "transform", record)
    commands.transform_app(args=args, prog_name="threadify", standalone_mode=False)
    fast = transform_cmd.fast_parse(args)
    assert fast is not None
    defaults = {"stack_size": "1MiB", "max_memory": None, "allow_non_atomic": False,
                "validate": None, "verify": False, "quiet": False, "json_report": False,
                "stack_check": False}
    assert defaults | fast == seen[0]


@pytest.mark.parametrize("args", [["--help"], ["IN"], ["IN", "-o"], ["IN", "--colour"],
                                  ["A", "B", "-o", "X"], ["--version"]])
def test_fast_parser_leaves_the_rest_to_typer(args: list[str]) -> None:
    from threadify_cli import transform_cmd

    assert transform_cmd.fast_parse(args) is None


def test_typo_in_option_is_a_clean_error(tmp_path: Path) -> None:
    proc = threadify(str(CLASS_B), "-o", str(tmp_path / "o.wasm"), "--stak-size", "1MiB")
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr
    assert b"No such option" in proc.stderr
    assert not (tmp_path / "o.wasm").exists()
