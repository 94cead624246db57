"""Standard input, output and error as the program sees them, whatever they are: a terminal, a
file, a pipe, /dev/null, on ``threadify run`` and on the wasmtime 46.0.1 CLI
(``fixtures/wasi/src/stdio_kinds.c``: fdstat, filestat, isatty(), the calls a stream refuses,
poll). On a terminal the three are character devices, so wasi-libc's isatty() is true; on
anything else their type is unknown. Both hosts must print the same."""

from __future__ import annotations

import os
import select
import subprocess
import termios
from pathlib import Path

import pytest

from tests.host.runner import RUN
from tests.host.wasi_diff import REFERENCE, WASI_FIXTURES
from tests.tooling import wasmtime_cli

pytestmark = pytest.mark.slow

PROGRAM = WASI_FIXTURES / "stdio_kinds.wasm"


def _commands() -> list[list[str]]:
    return [[str(wasmtime_cli(REFERENCE)), "run", "-C", "cache=n", str(PROGRAM)],
            [*RUN, str(PROGRAM)]]


def _on_a_terminal(cmd: list[str]) -> tuple[int, bytes]:
    """Run with stdin, stdout and stderr on one new pseudo-terminal (echo off); the output is
    read from its other end until the program has gone."""
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    with subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave) as proc:
        os.close(slave)
        out = b""
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                proc.kill()
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the last holder of the terminal's other end has gone
                break
            if not chunk:
                break
            out += chunk
        code = proc.wait(60)
    os.close(master)
    return code, out


def test_on_a_terminal_stdio_are_character_devices_as_on_wasmtime() -> None:
    reference, ours = (_on_a_terminal(cmd) for cmd in _commands())
    assert reference[0] == 0
    assert b"fd 1: fdstat SUCCESS type=2 " in reference[1]
    assert b"isatty=1" in reference[1]
    assert ours == reference


def test_redirected_stdio_are_streams_of_unknown_type_as_on_wasmtime(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("data\n")
    for stdin in (source, Path(os.devnull)):
        outputs = []
        for cmd in _commands():
            with open(stdin, "rb") as handle:
                done = subprocess.run(cmd, stdin=handle, capture_output=True, timeout=120)
            outputs.append((done.returncode, done.stdout))
        assert outputs[0][0] == 0
        assert b"fd 0: fdstat SUCCESS type=0 " in outputs[0][1]
        assert outputs[1] == outputs[0]
