"""Contention on the injected runtime: many threads starting and ending at once.

The churn program starts waves of 8 threads that meet at a barrier and end together, 100 waves
in a row (800 threads): every start takes a block from the free list and every end puts one
back, under the lock, concurrently. Each wave checks that its threads have distinct stacks and
TLS blocks and that reused TLS blocks start from the template; the second line reports how many
distinct stacks and TLS blocks were used in all, and how many blocks the runtime created.

A join only sees a thread's body return; the injected ``wasi_thread_start`` releases the block
a moment later. So that the count does not depend on scheduling, the test hands churn the
control block's address (from the module's ``threadify`` custom section, docs/abi.md) and churn
waits after each wave until the runtime's live-block count is back to 0: then every wave finds
all blocks free, and 8 blocks serve all 800 threads, exactly — on any machine load.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import threadify
from tests.test_matrix import run_on
from tests.tooling import FIXTURES, slow_unless_cases
from threadify.wasm import Module

VARIANTS = ["churn.shared-import", "churn.nonshared-stripped", "churn.shared-import-datafirst"]


def control_block(module: bytes) -> int:
    """The control block address threadify recorded in its custom section."""
    payload = Module.decode(module).get_custom("threadify")
    assert payload is not None
    address = json.loads(bytes(payload))["control_block"]
    assert isinstance(address, int) and address > 0
    return address


# The fast loop keeps every host on one variant and every variant on the bundled host.
CELLS = slow_unless_cases(lambda case: "threadify" in case or VARIANTS[0] in case,
                          [(v, h) for v in VARIANTS
                           for h in ("threadify", "wasmtime-46.0.1", "wasmtime-36.0.9")],
                          ids="-".join)


@pytest.mark.parametrize(("variant", "host"), CELLS)
def test_800_threads_in_waves_of_8(variant: str, host: str, tmp_path: Path) -> None:
    out = tmp_path / f"{variant}.wasm"
    out.write_bytes(threadify.transform((FIXTURES / f"c/wasm/{variant}.wasm").read_bytes()))
    proc = run_on(host, out, ("0", "100", str(control_block(out.read_bytes()))))
    assert proc.returncode == 0, proc.stderr
    assert "churn threads=800 ok" in proc.stdout
    assert "distinct-stacks=8 distinct-tls=8 blocks-created=8" in proc.stdout, proc.stdout


def test_sequential_threads_reuse_one_block(tmp_path: Path) -> None:
    """Spawn, join, wait for the release, repeat: one block serves every thread."""
    out = tmp_path / "churn.wasm"
    out.write_bytes(threadify.transform(
        (FIXTURES / "c/wasm/churn.shared-import.wasm").read_bytes()))
    proc = run_on("threadify", out, ("20", "0", str(control_block(out.read_bytes()))))
    assert proc.returncode == 0, proc.stderr
    assert "churn threads=20 ok" in proc.stdout
    assert "distinct-stacks=1 distinct-tls=1 blocks-created=1" in proc.stdout, proc.stdout


def test_wrong_control_block_address_is_refused(tmp_path: Path) -> None:
    """The address check is real: churn refuses an address without the control block's magic."""
    out = tmp_path / "churn.wasm"
    out.write_bytes(threadify.transform(
        (FIXTURES / "c/wasm/churn.shared-import.wasm").read_bytes()))
    proc = run_on("threadify", out, ("1", "0", str(control_block(out.read_bytes()) + 4)))
    assert proc.returncode == 16, proc.stderr
