"""``threadify run``'s command line at its edges, compared with the wasmtime 46.0.1 CLI:
``--env`` forms, arguments that are not UTF-8, closed standard streams, hints in CLI words,
proposals the CLI leaves off, a 64-bit shared memory (docs/host.md). ``--dir`` forms:
``test_wasi_preopens.py``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.host.runner import RUN, run_cli
from tests.tooling import run_wasmtime, slow_unless, wasmtime_cli, wat2wasm

#: Prints its environment, then its arguments, each string NUL-terminated, raw.
ECHO = """(module
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $es (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $eg (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $as (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $ag (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func $print (param $buf i32)
    (i32.store (i32.const 16) (local.get $buf)) (i32.store (i32.const 20) (i32.load (i32.const 4)))
    (drop (call $w (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))
  (func (export "_start")
    (drop (call $es (i32.const 0) (i32.const 4)))
    (drop (call $eg (i32.const 1024) (i32.const 8192)))
    (call $print (i32.const 8192))
    (drop (call $as (i32.const 0) (i32.const 4)))
    (drop (call $ag (i32.const 1024) (i32.const 16384)))
    (call $print (i32.const 16384))))"""

#: Copies stdin to stdout; exits 50 + errno when a read fails, 70 + errno when a write does.
CAT = """(module
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $e i32)
    (loop $l
      (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 1000))
      (local.set $e (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (local.get $e) (then (call $exit (i32.add (i32.const 50) (local.get $e)))))
      (if (i32.eqz (i32.load (i32.const 8))) (then (return)))
      (i32.store (i32.const 4) (i32.load (i32.const 8)))
      (local.set $e (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (local.get $e) (then (call $exit (i32.add (i32.const 70) (local.get $e)))))
      (br $l))))"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(wat2wasm(text))
    return path


ENV_FORMS = {
    "repeated": ["A=1", "A=2"],  # both, in order
    "split": ["A=1=2", "B="],  # the first '=' splits
    "empty-name": ["=V"],  # an empty name
    "inherit": ["INHERITED"],  # a bare name passes on the host's value
    "inherit-unset": ["NOT_SET_ANYWHERE", "C=3"],  # ... or nothing when the host has none
}


@pytest.mark.parametrize("envs", slow_unless(lambda e: e in (ENV_FORMS["inherit"],
                                                             ENV_FORMS["split"]),
                                             list(ENV_FORMS.values()),
                                             ids=lambda e: next(k for k, v in ENV_FORMS.items()
                                                                if v == e)))
def test_env_forms_as_wasmtime(tmp_path: Path, envs: list[str]) -> None:
    path = _write(tmp_path, "echo.wasm", ECHO)
    flags = [x for e in envs for x in ("--env", e)]
    env = {**os.environ, "INHERITED": "from the host"}
    env.pop("NOT_SET_ANYWHERE", None)
    ours = subprocess.run([*RUN, *flags, str(path)], capture_output=True, env=env, timeout=60)
    theirs = subprocess.run([str(wasmtime_cli("46.0.1")), "run", "-C", "cache=n", *flags,
                             str(path)], capture_output=True, env=env, timeout=60)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr
    assert ours.returncode == 0 and ours.stderr == b""


@pytest.mark.parametrize("where", slow_unless(lambda w: w == "argument", ["argument", "env"]))
def test_arguments_that_are_not_utf8_are_refused_in_one_line(tmp_path: Path,
                                                             where: str) -> None:
    """WASI strings are UTF-8: an undecodable argument or variable is refused before the run
    (wasmtime refuses both too, exit 1 and 2), not met with a traceback."""
    path = _write(tmp_path, "echo.wasm", ECHO)
    bad = b"caf\xe9"
    argv = ([*map(os.fsencode, RUN), str(path).encode(), b"--", bad] if where == "argument"
            else [*map(os.fsencode, RUN), b"--env", b"X=" + bad, str(path).encode()])
    proc = subprocess.run(argv, capture_output=True, timeout=60)
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 1 and proc.stdout == b""
    assert stderr.startswith("threadify run: error: ") and "UTF-8" in stderr, stderr
    assert "Traceback" not in stderr and len(stderr.splitlines()) <= 2
    wasmtime = [os.fsencode(wasmtime_cli("46.0.1")), b"run", b"-C", b"cache=n"]
    theirs = subprocess.run([*wasmtime, str(path).encode(), b"--", bad] if where == "argument"
                            else [*wasmtime, b"--env", b"X=" + bad, str(path).encode()],
                            capture_output=True, timeout=60)
    # (docs/host.md: wasmtime's argument parser refuses a variable with exit code 2)
    assert (theirs.returncode, theirs.stdout) == (1 if where == "argument" else 2, b"")


def test_a_preopen_name_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    """The guest sees a preopen under its name, which WASI passes as UTF-8: a directory whose
    name is not UTF-8 needs a guest name that is (the guest used to meet INVAL from
    fd_prestat_get). wasmtime refuses any argument that is not UTF-8, exit 2."""
    path = _write(tmp_path, "echo.wasm", ECHO)
    bad = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(bad)
    run = [*map(os.fsencode, RUN)]
    proc = subprocess.run([*run, b"--dir", bad, str(path).encode()], capture_output=True,
                          timeout=60)
    stderr = proc.stderr.decode(errors="replace")
    assert (proc.returncode, proc.stdout) == (1, b"")
    assert stderr.startswith("threadify run: error: ") and "UTF-8" in stderr, stderr
    assert len(stderr.splitlines()) == 2 and "::GUEST" in stderr.splitlines()[1], stderr
    renamed = subprocess.run([*run, b"--dir", bad + b"::/cafe", str(path).encode()],
                             capture_output=True, timeout=60)
    assert (renamed.returncode, renamed.stderr) == (0, b"")
    theirs = subprocess.run([os.fsencode(wasmtime_cli("46.0.1")), b"run", b"--dir",
                             bad + b"::/cafe", str(path).encode()], capture_output=True,
                            timeout=60)
    assert theirs.returncode == 2


@pytest.mark.parametrize("closed", slow_unless(lambda c: c == 0, [0, 1]))
def test_closed_standard_streams_are_not_taken_by_host_files(tmp_path: Path,
                                                             closed: int) -> None:
    """With fd 0 (or 1) closed, the first file the host opened (the cached compiled module)
    used to become the guest's stdin: the program read compiled code. Like wasmtime (a Rust
    program), the host now puts /dev/null there first: reading gives end-of-file, writing
    succeeds and goes nowhere."""
    path = _write(tmp_path, "cat.wasm", CAT)
    for _ in range(2):  # the second run finds the module in the compile cache
        proc = subprocess.run([*RUN, str(path)], capture_output=True, timeout=60,
                              input=b"x" if closed else None,
                              preexec_fn=lambda: os.close(closed))
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b""), proc.stderr
    if closed == 0:
        theirs = subprocess.run([str(wasmtime_cli("46.0.1")), "run", str(path)],
                                capture_output=True, timeout=60,
                                preexec_fn=lambda: os.close(0))
        assert (theirs.returncode, theirs.stdout) == (0, b"")


def test_cli_hints_name_cli_flags(capsys: pytest.CaptureFixture[str]) -> None:
    """A hint that suggests an option names it as the command line spells it."""
    from cli.options import RunArgs
    from cli.run_cmd import execute, run_flag
    from threadify.errors import Suggestion

    assert run_flag(Suggestion("max_threads")) == "--max-threads"
    assert run_flag(Suggestion("stack_size", 1 << 20)) == "--stack-size 1MiB"
    args = RunArgs(module="x.wasm", args=[], dirs=[], env=[], max_threads=-1)
    with pytest.raises(SystemExit) as ended:
        execute(args)
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert "--max-threads" in err and "max_threads" not in err, err


def test_library_hints_name_keywords() -> None:
    import threadify
    import threadify.host

    with pytest.raises(threadify.ThreadifyError) as raised:
        threadify.host.run(b"\0asm\1\0\0\0", max_threads=-1)
    assert raised.value.fix == "pass max_threads 0 or more"


def test_a_preopen_without_a_host_directory_is_a_library_error(
        capfd: pytest.CaptureFixture[str]) -> None:
    """The library reports it as it reports every bad input (it used to end the child process
    with a traceback on the caller's stderr and return 1)."""
    import threadify
    import threadify.host

    with pytest.raises(threadify.ThreadifyError) as raised:
        threadify.host.run(wat2wasm('(module (func (export "_start")))'), dirs=["::guest"])
    assert raised.value.problem == "--dir '::guest': empty host directory"
    assert raised.value.fix == "write each preopen as HOST[::GUEST]"
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(("text", "reason"), [
    ('(module (func (export "_start") (drop (i64.add128 (i64.const 1) (i64.const 1) '
     "(i64.const 1) (i64.const 1))) (drop)))", "wide arithmetic support is not enabled"),
    pytest.param('(module (type $t (func)) (func $g) (elem declare func $g) '
                 '(func (export "_start") (call_ref $t (ref.func $g))))',
                 "function references support is not enabled", marks=pytest.mark.slow),
], ids=["wide-arithmetic", "function-references"])
def test_off_proposals_are_refused_with_wasmtimes_reason(tmp_path: Path, text: str,
                                                         reason: str) -> None:
    """Wide arithmetic is off in the wasmtime 46 CLI too; the line names the cause, not the
    generic first line of wasmtime's error chain ("failed to compile: wasm[0]::function[1]")."""
    path = _write(tmp_path, "p.wasm", text)
    ours = run_cli([str(path)])
    assert ours.returncode == 1 == run_wasmtime("46.0.1", path).returncode
    assert ours.stderr.startswith("threadify run: error: p.wasm: invalid WebAssembly module: ")
    error, hint = ours.stderr.splitlines()
    assert reason in error, ours.stderr
    assert hint.startswith("threadify run: hint: ") and "wasmtime run -W " in hint, hint


def test_a_64_bit_shared_memory_is_a_threaded_programs_memory(tmp_path: Path) -> None:
    """wasmtime runs a module importing a 64-bit shared memory, WASI included (its pointers
    are 32-bit values in that memory); so does the host."""
    path = _write(tmp_path, "m64.wasm", """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "env" "memory" (memory i64 1 1 shared)) (export "memory" (memory 0))
  (data (i64.const 16) "m64\\n")
  (func (export "_start")
    (i32.store (i64.const 0) (i32.const 16)) (i32.store (i64.const 4) (i32.const 4))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))""")
    ours = run_cli([str(path)])
    theirs = run_wasmtime("46.0.1", path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "m64\n", "")
    assert (theirs.returncode, theirs.stdout) == (0, "m64\n")
