"""A module compiled without atomics, accepted with ``--allow-non-atomic``, then runs like any
other output (docs/inputs.md, step 6): ``fixtures/c/nonatomic.c`` keeps its threads apart by
itself (each writes only its own slot; main polls a flag through volatile loads) and must run
to the end on the bundled host and wasmtime 46, with several threads one after another."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import threadify
from tests.tooling import FIXTURES, THREADS_FEATURES, assert_valid, run_wasmtime

NON_ATOMIC = FIXTURES / "c/wasm/nonatomic.plain.wasm"


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nonatomic") / "out.wasm"
    out.write_bytes(threadify.transform(NON_ATOMIC.read_bytes(), allow_non_atomic=True))
    assert_valid(out.read_bytes(), THREADS_FEATURES)
    return out


def test_runs_on_the_bundled_host(output: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "threadify", "run", str(output), "--", "4"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "nonatomic threads=4 ok" in proc.stdout


@pytest.mark.slow
def test_runs_on_wasmtime(output: Path) -> None:
    proc = run_wasmtime("46.0.1", output, ["4"])
    assert proc.returncode == 0, proc.stderr
    assert "nonatomic threads=4 ok" in proc.stdout
