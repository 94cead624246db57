"""Library mode: run the program in a child process, return its exit code.

A run ends by ending its process (see :mod:`threadify.host.termination`): that is the only way to
stop a thread parked in ``memory.atomic.wait32`` or in a blocking read at once. A library caller's
process must survive the run, so :func:`run` starts ``python -m threadify.host.isolation`` with
the program's stdio and waits for it. The caller's process keeps no thread, store, memory or fd of
the run; Ctrl-C in the caller stops the child too.

The child reports bad input (not wasm, unknown imports, ...) through a status pipe, so the
library raises the same one-line :class:`~threadify.errors.ThreadifyError` the CLI prints.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from threadify.errors import ThreadifyError

_STATUS_BAD_INPUT = 2  # child exit status that accompanies a report on the status pipe

Stream = int | IO[Any] | None


def _input_source(stdin: bytes | Stream) -> tuple[Any, Any]:
    """(what Popen gets, what a pump thread must copy in, if anything)."""
    if stdin is None or isinstance(stdin, int):
        return stdin, None
    if isinstance(stdin, (bytes, bytearray)):
        return subprocess.PIPE, bytes(stdin)
    try:
        return stdin.fileno(), None
    except (AttributeError, OSError, io.UnsupportedOperation):
        return subprocess.PIPE, stdin


def _output_sink(stream: Stream) -> tuple[Any, Any]:
    if stream is None or isinstance(stream, int):
        return stream, None
    try:
        stream.flush()
        return stream.fileno(), None
    except (AttributeError, OSError, io.UnsupportedOperation):
        return subprocess.PIPE, stream


def _feed(pipe: IO[bytes], source: Any) -> None:
    try:
        if isinstance(source, bytes):
            pipe.write(source)
        else:
            while True:
                chunk = source.read(65536)
                if not chunk:
                    break
                pipe.write(chunk.encode() if isinstance(chunk, str) else chunk)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _drain(pipe: IO[bytes], sink: Any) -> None:
    text = isinstance(sink, io.TextIOBase)
    with pipe:
        for chunk in iter(lambda: pipe.read1(65536), b""):  # type: ignore[attr-defined]
            sink.write(chunk.decode(errors="replace") if text else chunk)


def run_isolated(module: bytes | str | os.PathLike[str], *, args: Sequence[str] = (),
                 dirs: Iterable[str] = (), env: Iterable[tuple[str, str]] = (),
                 stdin: bytes | Stream = None, stdout: Stream = None, stderr: Stream = None,
                 max_threads: int = 128, timeout: float | None = None) -> int:
    tmpdir = tempfile.mkdtemp(prefix="threadify-run-")
    try:
        if isinstance(module, (bytes, bytearray)):
            path = os.path.join(tmpdir, "main.wasm")
            Path(path).write_bytes(bytes(module))
        else:
            path = os.fspath(module)
        config = {"module": path, "args": list(args), "dirs": list(dirs),
                  "env": [list(kv) for kv in env], "max_threads": max_threads}
        status_r, status_w = os.pipe()
        config["status_fd"] = status_w
        in_arg, in_src = _input_source(stdin)
        out_arg, out_sink = _output_sink(stdout)
        err_arg, err_sink = _output_sink(stderr)
        child_env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent.parent)
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, child_env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "threadify.host.isolation", json.dumps(config)],
                stdin=in_arg, stdout=out_arg, stderr=err_arg, pass_fds=(status_w,),
                env=child_env)
        finally:
            os.close(status_w)
        pumps = []
        if in_src is not None:
            pumps.append(threading.Thread(target=_feed, args=(proc.stdin, in_src), daemon=True))
        if out_sink is not None:
            pumps.append(threading.Thread(target=_drain, args=(proc.stdout, out_sink),
                                          daemon=True))
        if err_sink is not None:
            pumps.append(threading.Thread(target=_drain, args=(proc.stderr, err_sink),
                                          daemon=True))
        for pump in pumps:
            pump.start()
        try:
            code = proc.wait(timeout)
        except BaseException:  # timeout or Ctrl-C: the child must not outlive the call
            proc.kill()
            proc.wait()
            for pump in pumps:
                pump.join(1)
            os.close(status_r)
            raise
        for pump in pumps:
            pump.join()
        with os.fdopen(status_r, "rb") as status:
            report = status.read()
        if report:
            problem = json.loads(report)
            raise ThreadifyError(problem["problem"], problem.get("fix"))
        return code
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _child_main(argv: list[str]) -> None:
    config = json.loads(argv[0])
    status_fd = int(config["status_fd"])
    from threadify.host.program import execute

    try:
        os.set_inheritable(status_fd, False)
        execute(config["module"], config["args"], config["dirs"],
                [tuple(kv) for kv in config["env"]], int(config["max_threads"]))
    except ThreadifyError as exc:
        os.write(status_fd, json.dumps({"problem": exc.problem, "fix": exc.fix}).encode())
        os._exit(_STATUS_BAD_INPUT)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
