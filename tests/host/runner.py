"""Running test programs on ``threadify run`` (the CLI engine, in a subprocess of its own)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RUN = [sys.executable, "-m", "threadify_cli.run_cmd"]


@dataclass
class Timed:
    code: int
    stdout: str
    stderr: str
    after_mark: float | None  # seconds from "E" on stdout to process exit


def run_cli(args: list[str], stdin: bytes | None = None, timeout: float = 60,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUN, *args], input=stdin.decode() if stdin is not None else None,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def run_timed(args: list[str], timeout: float = 60) -> Timed:
    """Run with a stdin pipe that stays open and never gets data; time the end after "E"."""
    proc = subprocess.Popen([*RUN, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout
    out = b""
    mark: float | None = None
    try:
        while mark is None:
            left = deadline - time.monotonic()
            assert left > 0, f"no mark within {timeout}s: {out!r}"
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
            if b"E\n" in out:
                mark = time.monotonic()
        code = proc.wait(max(1.0, deadline - time.monotonic()))
        ended = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()
    out += proc.stdout.read()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return Timed(code, out.decode(), err.decode(), None if mark is None else ended - mark)
