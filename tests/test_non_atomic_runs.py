"""A module compiled without atomics, accepted with ``--allow-non-atomic``, then runs like any
other output (docs/inputs.md, step 6): ``fixtures/c/nonatomic.c`` keeps its threads apart by
itself (each writes only its own slot; main polls a flag through volatile loads) and must run
to the end on the bundled host and wasmtime 46, with several threads one after another."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import threadify
from tests.tooling import FIXTURES, THREADS_FEATURES, assert_valid, run_wasmtime
from threadify.wasm import Module, TargetFeatures

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


def test_target_features_name_what_the_output_uses(output: Path) -> None:
    """The input's ``target_features`` lacks ``atomics``; the output's code uses atomics (and
    bulk memory), so its section says so: tools read it to know which features they may meet
    (binaryen's wasm-opt refuses "atomic operations" a module does not declare)."""
    before = Module.decode(NON_ATOMIC.read_bytes()).decode_custom("target_features",
                                                                  TargetFeatures.decode)
    after = Module.decode(output.read_bytes()).decode_custom("target_features",
                                                             TargetFeatures.decode)
    assert before is not None and after is not None
    assert not before.has("atomics") and after.has("atomics") and after.has("bulk-memory")
    assert set(before.features) <= set(after.features)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wasm-opt") is None, reason="binaryen's wasm-opt not installed")
def test_wasm_opt_takes_the_output(output: Path, tmp_path: Path) -> None:
    """docs/inputs.md advises wasm-opt after threadify: with its default feature detection
    (from ``target_features``) it accepts the output, which then still runs."""
    optimised = tmp_path / "optimised.wasm"
    proc = subprocess.run(["wasm-opt", "-O2", str(output), "-o", str(optimised)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and optimised.exists(), proc.stderr
    assert_valid(optimised.read_bytes(), THREADS_FEATURES)
    run = subprocess.run([sys.executable, "-m", "threadify", "run", str(optimised), "--", "4"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "nonatomic threads=4 ok" in run.stdout, run.stderr
