"""Bad inputs and awkward outputs as a user meets them (docs/errors.md), through the command
line and the library alike: one line naming the problem (and at most a hint line), exit 1, no
output file, the input untouched, never a traceback; the library raises ``ThreadifyError`` with
the same text. Outputs that are not plain files — a device, a FIFO, a symlink — are written
into, not replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import threadify
from tests.tooling import FIXTURES, THREADS_FEATURES, assert_valid, wasm_tools, wat2wasm

GOOD = FIXTURES / "c" / "wasm" / "tls.shared-import.wasm"
FEATURES = '(@custom "target_features" "\\02+\\07atomics+\\0bbulk-memory")'


def component() -> bytes:
    """A real component: ``wasm-tools component new`` around an empty core module."""
    proc = subprocess.run([wasm_tools(), "component", "new", "-"], input=wat2wasm("(module)"),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


#: name -> (bytes maker, words the one-line error must contain)
BAD: dict[str, tuple[Callable[[], bytes], list[str]]] = {
    "empty": (lambda: b"", ["magic"]),
    "text": (lambda: b"#!/bin/sh\necho not wasm\n", ["magic"]),
    "elf": (lambda: b"\x7fELF\x02\x01\x01" + bytes(57), ["magic"]),
    "magic-only": (lambda: GOOD.read_bytes()[:4], ["byte 4"]),
    "truncated-header": (lambda: GOOD.read_bytes()[:9], ["malformed"]),
    "truncated-half": (lambda: GOOD.read_bytes()[: len(GOOD.read_bytes()) // 2], ["malformed"]),
    "truncated-last-byte": (lambda: GOOD.read_bytes()[:-1], ["malformed"]),
    "component": (component, ["component"]),
    "memory64": (lambda: wat2wasm(f"(module (memory i64 1) {FEATURES})"), ["memory64"]),
    "two-memories": (lambda: wat2wasm(
        f"(module (memory 1) (memory 1) (global (mut i32) (i32.const 65536)) {FEATURES})"),
        ["2 memories"]),
    "no-memory": (lambda: wat2wasm(f"(module {FEATURES})"), ["no memory"]),
    "no-stack-pointer": (lambda: wat2wasm(f"(module (memory 1) {FEATURES})"),
                         ["no stack pointer"]),
    "stack-pointer-ambiguous": (lambda: wat2wasm(
        f"(module (memory 1 2 shared) (global (mut i32) (i32.const 0)) {FEATURES})"),
        ["no stack pointer"]),
    "bad-body": (lambda: wat2wasm(
        f"(module (memory 1) (global (mut i32) (i32.const 65536)) {FEATURES}"
        " (func (export \"f\") (result i32) (i32.const 1)))").replace(
            b"\x41\x01\x0b", b"\x42\x01\x0b"), ["valid"]),
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(text: str, prog: str = "threadify") -> None:
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    assert 1 <= len(lines) <= 2, text
    assert lines[0].startswith(f"{prog}: error: "), text
    if len(lines) == 2:
        assert lines[1].startswith(f"{prog}: hint: "), text


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "threadify", *args], input=stdin,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("name", BAD)
def test_library_rejects_with_threadify_error(name: str) -> None:
    make, words = BAD[name]
    data = make()
    with pytest.raises(threadify.ThreadifyError) as caught:
        threadify.transform(data)
    text = str(caught.value)
    assert 1 <= len(text.splitlines()) <= 2, text
    for word in words:
        assert word in text, text
    report = threadify.inspect(data)  # inspect reports, it does not raise
    assert report.verdict == "D" and report.reasons[0] in text
    if name == "bad-body":  # validated as the transform validates; unvalidated, it looks fine
        assert report.validated and "not valid WebAssembly" in report.reasons[0]
        assert threadify.inspect(data, validate=False).verdict == "B"


@pytest.mark.slow
@pytest.mark.parametrize("name", BAD)
def test_command_line_rejects_cleanly(name: str, tmp_path: Path) -> None:
    make, words = BAD[name]
    src = tmp_path / f"{name}.wasm"
    src.write_bytes(make())
    before = digest(src)
    out = tmp_path / "out.wasm"
    proc = cli(str(src), "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.decode()
    one_line_error(err)
    for word in words:
        assert word in err, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]  # no temporary file left
    # in place and to standard output: nothing written either, input unchanged
    proc = cli(str(src), "-o", str(src))
    assert proc.returncode == 1 and digest(src) == before
    proc = cli(str(src), "-o", "-")
    assert proc.returncode == 1 and proc.stdout == b""
    # inspect: a verdict, exit 1, no traceback
    proc = cli("inspect", str(src))
    assert b"Traceback" not in proc.stderr
    assert proc.returncode == 1 and b"class D" in proc.stdout, proc.stdout


def test_bad_inputs_fail_cleanly_on_the_bundled_host(tmp_path: Path) -> None:
    """``threadify run`` on what is not a runnable module: one line, exit 1."""
    for name in ("text", "truncated-half", "component"):
        src = tmp_path / f"{name}.wasm"
        src.write_bytes(BAD[name][0]())
        proc = cli("run", str(src))
        assert proc.returncode == 1, proc.stderr
        err = proc.stderr.decode()
        assert "Traceback" not in err and 1 <= len(err.strip().splitlines()) <= 2, err


def test_output_into_a_missing_directory(tmp_path: Path) -> None:
    proc = cli(str(GOOD), "-o", str(tmp_path / "missing" / "out.wasm"))
    assert proc.returncode == 1
    one_line_error(proc.stderr.decode())
    assert b"does not exist" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_same_input_and_output_path(tmp_path: Path) -> None:
    """In place: the output replaces the input only on success; a second run is class C and
    leaves the bytes as they are."""
    src = tmp_path / "m.wasm"
    src.write_bytes(GOOD.read_bytes())
    assert cli(str(src), "-o", str(src)).returncode == 0
    once = src.read_bytes()
    assert_valid(once, THREADS_FEATURES)
    assert once == threadify.transform(GOOD.read_bytes())
    proc = cli(str(src), "-o", str(src))
    assert proc.returncode == 0 and b"output = input" in proc.stderr
    assert src.read_bytes() == once


def test_output_to_stdout() -> None:
    proc = cli(str(GOOD), "-o", "-", "-q")
    assert proc.returncode == 0 and proc.stderr == b""
    assert proc.stdout == threadify.transform(GOOD.read_bytes())


def test_output_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real.wasm"
    target.write_bytes(b"old")
    link = tmp_path / "link.wasm"
    link.symlink_to(target.name)
    assert cli(str(GOOD), "-o", str(link), "-q").returncode == 0
    assert link.is_symlink()
    assert target.read_bytes() == threadify.transform(GOOD.read_bytes())


def test_output_into_a_fifo_writes_into_it(tmp_path: Path) -> None:
    """A FIFO (like a device, or the pipe behind ``/dev/stdout``) is written into; renaming a
    temporary file over it would replace the node itself (with enough rights, ``-o /dev/null``
    would destroy the device)."""
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    expected = threadify.transform(GOOD.read_bytes())
    assert len(expected) < 60_000  # fits the pipe's buffer: the writer never waits for us
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        proc = cli(str(GOOD), "-o", str(fifo), "-q")
        assert proc.returncode == 0, proc.stderr
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        got = b""
        while chunk := os.read(reader, 65536):
            got += chunk
    finally:
        os.close(reader)
    assert got == expected


@pytest.mark.parametrize(("options", "words"), [
    ({"validate": "no"}, "validate must be True, False or None"),
    ({"allow_non_atomic": 1}, "allow_non_atomic must be True or False"),
    ({"stack_check": "yes"}, "stack_check must be True or False"),
])
def test_library_option_of_the_wrong_type(options: dict[str, object], words: str) -> None:
    """A truthy string is not a yes: ``validate="no"`` used to switch validation on."""
    with pytest.raises(threadify.ThreadifyError) as caught:
        threadify.transform(GOOD.read_bytes(), **options)  # type: ignore[arg-type]
    assert words in str(caught.value)


def test_maximum_below_the_initial_memory() -> None:
    """A maximum smaller than the initial memory is named as such, with a value that works —
    not as 'no room for a thread stack'."""
    with pytest.raises(threadify.ThreadifyError) as caught:
        threadify.transform(GOOD.read_bytes(), max_memory=64 * 1024)
    assert "smaller than the module's initial memory" in str(caught.value)
    suggestion = caught.value.suggestions[0]
    assert suggestion.option == "max_memory" and isinstance(suggestion.value, int)
    output = threadify.transform(GOOD.read_bytes(), max_memory=suggestion.value)
    assert_valid(output, THREADS_FEATURES)


# -- outputs that cannot be written: nothing half-written, the input and any old output kept --

def _mount_and_run(tmp_path: Path, mount_options: str, script: str) -> str:
    """Run ``script`` (sh) with a tmpfs mounted on ``tmp_path / "fs"`` (``mount_options``: a
    4 KiB file system, or a read-only one), in a user and mount namespace of its own: a real
    full disk and a real read-only file system, which chmod cannot give a root user. Skips
    where the system allows no such namespace."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no user namespaces here: cannot mount a file system to fill")
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c",
         f"mount -t tmpfs -o {mount_options} tmpfs {mount_point} && {script}"],
        capture_output=True, timeout=120, env={**os.environ, "PY": sys.executable})
    assert "Traceback" not in proc.stderr.decode(), proc.stderr
    return proc.stdout.decode() + proc.stderr.decode()


def test_full_file_system_leaves_no_file_and_keeps_the_old_output(tmp_path: Path) -> None:
    """ENOSPC half-way through the write (a 4 KiB tmpfs, the output is 7 KiB): the temporary
    file is removed, an output already there keeps its bytes, and in place the input too."""
    fs = tmp_path / "fs"
    log = _mount_and_run(tmp_path, "size=4k", f"""
        printf old > {fs}/out.wasm
        "$PY" -m threadify {GOOD} -o {fs}/out.wasm; echo "rc=$?"
        echo "out=$(cat {fs}/out.wasm)"; ls -a {fs}
        """)
    lines = log.splitlines()
    assert "rc=1" in lines and "out=old" in lines, log
    error = [line for line in lines if line.startswith("threadify: error: cannot write")]
    assert error and "No space left on device" in error[0], log
    assert not [line for line in lines if line.endswith(".tmp")], log  # no temporary file left


def test_full_file_system_in_place_keeps_the_input(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    data = wat2wasm(f"(module (memory 1 2) (global (mut i32) (i32.const 65536)) {FEATURES}"
                    " (data (i32.const 1024) \"x\"))")
    src = tmp_path / "small.wasm"
    src.write_bytes(data)
    # the input fills most of the 4 KiB: its output (larger) cannot be written beside it
    log = _mount_and_run(tmp_path, "size=4k", f"""
        cp {src} {fs}/in.wasm && head -c 3000 /dev/zero > {fs}/filler
        "$PY" -m threadify {fs}/in.wasm -o {fs}/in.wasm; echo "rc=$?"
        sha256sum {fs}/in.wasm; ls -a {fs}
        """)
    assert "rc=1" in log.splitlines() and "No space left on device" in log, log
    assert hashlib.sha256(data).hexdigest() in log, log
    assert ".tmp" not in log, log


def test_read_only_file_system(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    log = _mount_and_run(tmp_path, "ro", f"""
        "$PY" -m threadify {GOOD} -o {fs}/out.wasm; echo "rc=$?"; ls -a {fs}
        """)
    assert "rc=1" in log.splitlines(), log
    assert f"threadify: error: cannot write {fs}/out.wasm: Read-only file system" in log, log
    assert "out.wasm\n" not in log


@pytest.mark.parametrize("target", ["dir", "dir/", "."])
def test_output_is_a_directory(tmp_path: Path, target: str) -> None:
    (tmp_path / "dir").mkdir()
    src = tmp_path / "in.wasm"
    src.write_bytes(GOOD.read_bytes())
    proc = subprocess.run([sys.executable, "-m", "threadify", "in.wasm", "-o", target],
                          capture_output=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    one_line_error(proc.stderr.decode())
    assert f"{target} is a directory" in proc.stderr.decode()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["dir", "in.wasm"]
    assert src.read_bytes() == GOOD.read_bytes()


def test_empty_file_names(tmp_path: Path) -> None:
    """``-o ''`` used to be reported as a missing directory '.'."""
    proc = subprocess.run([sys.executable, "-m", "threadify", str(GOOD), "-o", ""],
                          capture_output=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1 and b"output file name is empty" in proc.stderr
    one_line_error(proc.stderr.decode())
    proc = subprocess.run([sys.executable, "-m", "threadify", "", "-o", "out.wasm"],
                          capture_output=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1 and b"input file name is empty" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_rejected_input_keeps_an_existing_output(tmp_path: Path) -> None:
    """A rejection found last — the input's validation, checked just before the rename — leaves
    the previous output as it was, and nothing beside it."""
    src, out = tmp_path / "bad.wasm", tmp_path / "out.wasm"
    src.write_bytes(BAD["bad-body"][0]())
    out.write_bytes(b"previous output")
    proc = cli(str(src), "-o", str(out))
    assert proc.returncode == 1 and b"not valid WebAssembly" in proc.stderr
    one_line_error(proc.stderr.decode())
    assert out.read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.wasm", "out.wasm"]


def test_inspect_validates_as_the_transform_does(tmp_path: Path) -> None:
    """A module whose only fault is a function body is accepted by the analysis: inspect used
    to call it class B, and the transform then rejected it. Validated by default (same rule as
    the transform), it is class D with the validator's message; ``--no-validate`` skips that."""
    src = tmp_path / "bad-body.wasm"
    src.write_bytes(BAD["bad-body"][0]())
    proc = cli("inspect", str(src), "--json")
    assert proc.returncode == 1 and proc.stderr == b""
    report = json.loads(proc.stdout)
    assert report["class"] == "D" and report["validated"] is True
    assert "not valid WebAssembly" in report["reasons"][0] and report["memory"] is not None
    proc = cli("inspect", str(src), "--no-validate", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["class"] == "B"
    assert json.loads(proc.stdout)["validated"] is False
    proc = cli("inspect", str(src))
    assert proc.returncode == 1 and b"class D" in proc.stdout
    good = threadify.inspect(GOOD.read_bytes())
    assert good.verdict == "A" and good.validated
    with pytest.raises(threadify.ThreadifyError, match="validate must be True, False or None"):
        threadify.inspect(GOOD.read_bytes(), validate="no")  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [
    ["inspect", str(GOOD)], ["inspect", str(GOOD), "--json"], [str(GOOD), "-o", "-"],
    [str(GOOD), "-o", "{out}", "--json"],
], ids=["inspect", "inspect-json", "output", "json-report"])
def test_standard_output_closed_by_its_reader(args: list[str], tmp_path: Path) -> None:
    """``threadify inspect app.wasm --json | jq ...`` where the reader has gone: one error
    line and exit 1 (``inspect`` used to end in a BrokenPipeError traceback)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "threadify",
                               *(a.format(out=tmp_path / "out.wasm") for a in args)],
                              stdout=write_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 1
    one_line_error(proc.stderr.decode())
    assert b"cannot write to standard output: the reader closed the pipe" in proc.stderr


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_an_endless_input_is_not_read_to_the_end(tmp_path: Path) -> None:
    """``/dev/zero`` (or a mistyped ``/dev/urandom``) used to be read until memory ran out:
    input that does not start with the module magic is rejected from its first bytes."""
    for args in (["/dev/zero", "-o", str(tmp_path / "out.wasm")], ["inspect", "/dev/zero"]):
        proc = cli(*args)
        assert proc.returncode == 1
        assert b"expected WebAssembly module magic" in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_output_name_of_the_longest_legal_length(tmp_path: Path) -> None:
    """The temporary file beside the output is named after it: for an output name near the
    file system's 255-byte limit it was longer than that ('File name too long')."""
    out = tmp_path / ("a" * 245 + ".wasm")
    proc = cli(str(GOOD), "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == threadify.transform(GOOD.read_bytes())
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_rejected_in_place_keeps_the_input(tmp_path: Path) -> None:
    """``-o`` naming the input: a rejection found last (validation) leaves the input's bytes
    and nothing beside them; standard output gets nothing either."""
    src = tmp_path / "bad.wasm"
    src.write_bytes(BAD["bad-body"][0]())
    before = digest(src)
    proc = cli(str(src), "-o", str(src))
    assert proc.returncode == 1 and b"not valid WebAssembly" in proc.stderr
    one_line_error(proc.stderr.decode())
    assert digest(src) == before and [p.name for p in tmp_path.iterdir()] == ["bad.wasm"]
    proc = cli(str(src), "-o", "-")
    assert proc.returncode == 1 and proc.stdout == b""


def test_the_exception_message_keeps_the_problem_on_one_line() -> None:
    """A problem that quotes the module (here a producer name with a line break, as a fuzzed
    module had) is escaped in ``problem``, and in the exception's own message as well: that is
    what a library caller's traceback and ``str(error)`` show, problem line then fix line."""
    error = threadify.ThreadifyError("the module was built by Go 1\r\n2", "use Go's own")
    assert error.problem == "the module was built by Go 1\\r\\n2"
    assert str(error).splitlines() == [error.problem, "use Go's own"]
