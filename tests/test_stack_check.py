"""``--stack-check``: every write of the stack pointer is checked against its thread's limits
(docs/stack-check.md)."""

from __future__ import annotations

from pathlib import Path

from tests.host import wat
from tests.host.runner import run_cli


def test_host_trap_message_names_the_trapping_function(tmp_path: Path) -> None:
    # The bundled host's one-line trap message carries the innermost named frames, so a trap
    # raised on purpose by a named function says what happened and where.
    path = tmp_path / "named.wasm"
    path.write_bytes(wat.assemble(wat.module("""
  (func $threadify_stack_overflow unreachable)
  (func $descend (call $threadify_stack_overflow))
  (func (export "_start") (call $descend))""")))
    result = run_cli([str(path)])
    assert result.returncode == 134, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith("in threadify_stack_overflow, called from descend"), lines
