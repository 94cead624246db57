"""Running one WASI program on wasmtime 46 and on ``threadify run``, each in a fresh tree.

Both hosts get the same layout: ``<tmp>/<host>/root`` preopened as ``/sandbox`` and a sibling
``<tmp>/<host>/outside/secret.txt`` that no guest path may reach; the program's working directory
is ``<tmp>/<host>``. Stdin is empty (``/dev/null``) unless given. The comparison is on stdout
and the exit code; stderr differs by design (each host words its own trap messages).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.host.runner import RUN
from tests.tooling import FIXTURES, wasmtime_cli

WASI_FIXTURES = FIXTURES / "wasi" / "wasm"
REFERENCE = "46.0.1"


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def make_tree(base: Path) -> Path:
    """The directory tree a program starts from; returns the preopened root (made once)."""
    root = base / "root"
    if not root.exists():
        root.mkdir(parents=True)
        (base / "outside").mkdir()
        (base / "outside" / "secret.txt").write_text("secret\n")
    return root


def _run(cmd: list[str], cwd: Path, stdin: bytes | None, timeout: float) -> Outcome:
    proc = subprocess.run(cmd, cwd=cwd, input=stdin if stdin is not None else b"",
                          capture_output=True, timeout=timeout)
    # (undecodable bytes kept as surrogates: ``stdout.encode(errors="surrogateescape")`` gives
    # back what a program wrote in binary)
    return Outcome(proc.returncode, proc.stdout.decode(errors="surrogateescape"),
                   proc.stderr.decode(errors="replace"))


def run_wasmtime(module: Path, base: Path, args: Sequence[str] = (), stdin: bytes | None = None,
                 env: dict[str, str] | None = None, timeout: float = 60) -> Outcome:
    root = make_tree(base)
    cmd = [str(wasmtime_cli(REFERENCE)), "run", "-C", "cache=n", "--dir", f"{root}::/sandbox"]
    for key, value in (env or {}).items():
        cmd += ["--env", f"{key}={value}"]
    return _run([*cmd, str(module), *args], base, stdin, timeout)


def run_threadify(module: Path, base: Path, args: Sequence[str] = (), stdin: bytes | None = None,
                  env: dict[str, str] | None = None, timeout: float = 60) -> Outcome:
    root = make_tree(base)
    cmd = [*RUN, "--dir", f"{root}::/sandbox"]
    for key, value in (env or {}).items():
        cmd += ["--env", f"{key}={value}"]
    return _run([*cmd, str(module), "--", *args], base, stdin, timeout)


def both(module: Path, tmp: Path, args: Sequence[str] = (), stdin: bytes | None = None,
         env: dict[str, str] | None = None) -> tuple[Outcome, Outcome]:
    """(wasmtime 46, threadify) outcomes for the same program, arguments and input."""
    reference = run_wasmtime(module, tmp / "wasmtime", list(args), stdin, env)
    ours = run_threadify(module, tmp / "threadify", list(args), stdin, env)
    return reference, ours
