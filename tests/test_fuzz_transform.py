"""A short run of the transform fuzzer as part of the suite (the long runs are in docs/fuzzing.md).

Every generated input (wasm-tools smith modules, wasm-tools mutate edits and random byte edits
of the fixtures) must be transformed into an output that ``wasm-tools validate`` accepts, or be
rejected with a one-line ``ThreadifyError``: never another exception, a hang or an invalid output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import threadify
from tests.tooling import FIXTURES, THREADS_FEATURES, validate

FUZZER = Path(__file__).parent / "fuzz" / "fuzz_transform.py"


@pytest.mark.slow
def test_fuzzer_short_run(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(FUZZER), "--count", "150", "--seed", "7",
                           "--out", str(tmp_path / "findings")],
                          capture_output=True, text=True, timeout=900)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report["findings"]
    assert report["inputs"] == 150 and report["finding"] == 0
    assert report["transformed"] > 0 and report["rejected"] > 0


SEED_MODULE = (FIXTURES / "c/wasm/tls.shared-import-tlsexports.wasm").read_bytes()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, len(SEED_MODULE) - 1), st.integers(0, 255)),
                      min_size=1, max_size=4),
       cut=st.integers(8, len(SEED_MODULE)))
def test_edited_module_is_transformed_validly_or_rejected(edits: list[tuple[int, int]],
                                                          cut: int) -> None:
    data = bytearray(SEED_MODULE)
    for pos, value in edits:
        data[pos] = value
    data = data[:cut]
    report = threadify.inspect(bytes(data))  # never raises: bad input is class D
    assert report.verdict in ("A", "B", "C", "D")
    assert report.accepted or report.reasons  # a rejection always says why
    try:
        out = threadify.transform(bytes(data))
    except threadify.ThreadifyError as error:
        assert error.problem and "\n" not in error.problem
        return
    proc = validate(out, THREADS_FEATURES + ",exceptions,tail-call,gc,memory64,multi-memory")
    assert proc.returncode == 0, proc.stderr.decode()
