"""Run modules on Wasmer (PyPI ``wasmer-sdk``, a test dependency), the reference for WASIX.

Wasmer is a fourth engine for the host matrix and the reference for WASIX threads
(``wasix_32v1.thread_spawn_v2`` and friends): a WASIX test program runs here first, and
``threadify run`` must then give the same stdout and exit code.

Each run happens in a child Python process (``python -m tests.wasmer_host MODULE ARGS...``),
which loads the module as a package, runs it in a fresh sandbox and exits with the guest's exit
code after writing its stdout/stderr. A child because Wasmer 0.5.0 itself sometimes aborts the
whole process with ``FATAL: exception not rethrown`` (seen about once in 8 runs of a 364-thread
program, with and without threadify, and at interpreter shutdown after a run): the abort must
not take the test process with it, and the caller can tell such an abort (no result line) from
a guest's own exit. The child ends with ``os._exit`` right after reporting, so Wasmer's own
teardown never runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.tooling import ROOT

#: Wasmer's compile cache, kept between runs (it writes ``.wasmer/`` into the working
#: directory unless given a root).
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "threadify-tests" / \
    "wasmer"
#: Marks the child's final report on stderr: "<MARK> exit <code>" or "<MARK> error <message>".
MARK = "@@wasmer-host@@"
#: Wasmer 0.5.0's own abort (see the module docstring).
WASMER_ABORT = "FATAL: exception not rethrown"


@dataclass
class WasmerRun:
    returncode: int
    stdout: str
    stderr: str
    #: Wasmer itself aborted (no report from the child): not the guest's result.
    aborted: bool = False


def run_wasmer(module: Path | bytes, args: list[str] | tuple[str, ...] = (), timeout: float = 300,
               stdin: bytes | None = None, retry_abort: bool = True,
               retry_hang: bool = False) -> WasmerRun:
    """Run the WASI/WASIX command ``module`` on Wasmer with ``args``.

    ``returncode`` is the guest's exit code; a module Wasmer refuses gives returncode 125 and the
    reason on stderr. With ``retry_abort`` a run that Wasmer aborts (``FATAL: exception not
    rethrown``, a defect of Wasmer 0.5.0, not of the module) is repeated once. With
    ``retry_hang`` a run that does not end within ``timeout`` is repeated once too: Wasmer 0.5.0
    now and then never finishes a short threaded WASIX program that ends at once on a second run
    (seen twice in a few hundred runs here); a second timeout raises ``TimeoutExpired``.
    """
    if isinstance(module, bytes):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "main.wasm"
            path.write_bytes(module)
            return run_wasmer(path, args, timeout, stdin, retry_abort, retry_hang)
    try:
        result = _run_child(module, args, timeout, stdin)
    except subprocess.TimeoutExpired:
        if not retry_hang:
            raise
        return _run_child(module, args, timeout, stdin)
    if result.aborted and retry_abort:
        result = _run_child(module, args, timeout, stdin)
    return result


def _run_child(path: Path, args: list[str] | tuple[str, ...], timeout: float,
               stdin: bytes | None) -> WasmerRun:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "tests.wasmer_host", str(path), *args],
                          input=stdin if stdin is not None else b"", capture_output=True,
                          timeout=timeout, env=env)
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    head, sep, report = stderr.rpartition(MARK)
    if not sep:
        return WasmerRun(proc.returncode, stdout, stderr, aborted=True)
    kind, _, detail = report.strip().partition(" ")
    if kind == "exit":
        return WasmerRun(int(detail), stdout, head)
    return WasmerRun(125, stdout, head + detail + "\n")


async def _run(data: bytes, args: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
    from wasmer_sdk import Wasmer

    CACHE.mkdir(parents=True, exist_ok=True)
    async with Wasmer(cache_root=CACHE) as wasmer:
        package = await wasmer.packages.load(data)
        async with await wasmer.sandboxes.create(packages=[package]) as sandbox:
            output = await sandbox.command(package, args).run(stdin=stdin, check=False)
            return output.exit_code, output.stdout.bytes, output.stderr.bytes


def _child_main(argv: list[str]) -> None:
    import asyncio

    path, args = argv[0], argv[1:]
    stdin = sys.stdin.buffer.read()
    try:
        code, out, err = asyncio.run(_run(Path(path).read_bytes(), args, stdin))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        message = " ".join(str(exc).split())
        os.write(2, f"{MARK} error {type(exc).__name__}: {message}\n".encode())
        os._exit(0)
    for fd, data in ((1, out), (2, err)):
        while data:
            data = data[os.write(fd, data):]
    os.write(2, f"{MARK} exit {code}\n".encode())
    os._exit(0)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
