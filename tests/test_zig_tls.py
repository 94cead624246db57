"""Zig ``threadlocal`` variables on threadify's spawner ABI (``fixtures/zigtls/``): Zig programs
for wasm32-freestanding and wasm32-wasi that start threads themselves (not through std.Thread)
are class A; their output runs four threads that each start from the TLS template, recurse on
their own stacks and keep their own values, on the bundled host and both wasmtime CLIs, with
and without ``--stack-check`` (the wasi build's DWARF is then dropped, and said so)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import threadify
from tests.tooling import FIXTURES, THREADS_FEATURES, WASMTIME_VERSIONS, assert_valid, run_wasmtime

HERE = FIXTURES / "zigtls"
BUILDS = ["tl.freestanding.wasm", "tl.wasi.wasm"]
HOSTS = ["threadify", *WASMTIME_VERSIONS]


def _transform(name: str, stack_check: bool) -> bytes:
    data = (HERE / name).read_bytes()
    assert threadify.inspect(data).verdict == "A"
    if stack_check and name == "tl.wasi.wasm":
        with pytest.warns(UserWarning, match="stack_check=True moved code"):
            return threadify.transform(data, stack_check=True)
    return threadify.transform(data, stack_check=stack_check)


CELLS = [pytest.param(name, checked, host, id=f"{name}-{'checked' if checked else 'plain'}-{host}",
                      marks=() if (name, checked, host) == (BUILDS[0], False, "threadify")
                      else pytest.mark.slow)
         for name in BUILDS for checked in (False, True) for host in HOSTS]


@pytest.mark.parametrize(("name", "checked", "host"), CELLS)
def test_zig_threadlocals_run(name: str, checked: bool, host: str, tmp_path: Path) -> None:
    out = tmp_path / "out.wasm"
    out.write_bytes(_transform(name, checked))
    assert_valid(out.read_bytes(), THREADS_FEATURES)
    if host == "threadify":
        proc = subprocess.run([sys.executable, "-m", "threadify", "run", str(out)],
                              capture_output=True, text=True, timeout=120)
    else:
        proc = run_wasmtime(host, out)
    assert proc.returncode == 0, proc.stderr
    assert "zig-tl: 4 threads ok" in proc.stdout
