"""Contention on the injected runtime (issue 3): many threads starting and ending at once.

The churn program starts waves of 8 threads that meet at a barrier and end together, 100 waves
in a row (800 threads): every start takes a block from the free list and every end puts one
back, under the lock, concurrently. Each wave checks that its threads have distinct stacks and
TLS blocks and that reused TLS blocks start from the template; the second line reports how many
distinct stacks and TLS blocks were used in all (recycling keeps it at the wave size).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import threadify
from tests.test_matrix import run_on
from tests.tooling import FIXTURES

VARIANTS = ["churn.shared-import", "churn.nonshared-stripped", "churn.shared-import-datafirst"]


@pytest.mark.parametrize("host", ["threadify", "wasmtime-46.0.1", "wasmtime-36.0.9"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_800_threads_in_waves_of_8(variant: str, host: str, tmp_path: Path) -> None:
    out = tmp_path / f"{variant}.wasm"
    out.write_bytes(threadify.transform((FIXTURES / f"c/wasm/{variant}.wasm").read_bytes()))
    for _ in range(2):
        proc = run_on(host, out, ("0", "100"))
        assert proc.returncode == 0, proc.stderr
        assert "churn threads=800 ok" in proc.stdout
        assert "distinct-stacks=8 distinct-tls=8" in proc.stdout, proc.stdout
