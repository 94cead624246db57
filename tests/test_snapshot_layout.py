"""Modules whose start-up data reaches into the stack, as a pre-initialised snapshot leaves them
(docs/abi.md, "Memory layout").

Wizer-style snapshots (CRuby's ``ruby+stdlib.wasm`` is one) run a module's initialisation, then
write the memory it left as data segments: the stale bytes just below the stack pointer's
initial value become data too. threadify's control block tops the linker's stack and its words
(the free-list lock, the list head, the counters) must start as zero, so it must not lie under
such data: the stale bytes would be the lock's value, and the first thread would wait for it
forever. The module here is a real clang/lld fixture with the bytes below its stack's top kept
as an active segment, as the snapshot of CRuby has them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import threadify
from tests.tooling import FIXTURES, THREADS_FEATURES, assert_valid
from threadify import abi
from threadify.linker import const_i32
from threadify.passes.memory import CONTROL_SEARCH, place_control_block
from threadify.passes.metadata import read_section
from threadify.verify import verify
from threadify.wasm import DataSegment, Module
from threadify.wasm.writer import sleb

BASE = FIXTURES / "linkflags/wasm/tls.nonshared.wasm"  # class B, stack first, top at 64 KiB
#: Stale bytes below the stack's top: they cover the control block's usual place from its lock
#: word up (CRuby's snapshot covers the first 21 bytes).
STALE = abi.CONTROL_BYTES - abi.CTRL_LOCK


def _stack_top(module: Module) -> int:
    top = const_i32(module.globals[0].init)
    assert top is not None
    return top


def with_stale_stack(data: bytes, length: int, fill: int = 0xA5) -> tuple[bytes, int]:
    """``data`` plus an active segment of ``length`` bytes ending at the stack's top; returns
    the module and the segment's address."""
    module = Module.decode(data)
    top = _stack_top(module)
    start = top - length
    module.data.append(DataSegment(False, 0, b"\x41" + sleb(start) + b"\x0b",
                                   bytes([fill]) * length))
    if module.data_count is not None:
        module.data_count += 1
    return module.encode(), start


def in_pieces(data: bytes) -> tuple[bytes, int]:
    """``data`` with a stale stack in two pieces: :data:`STALE` bytes under the stack's top,
    and ``[top - 2048, top - 1024)``; returns the module and the top."""
    data, start = with_stale_stack(data, STALE)
    top = start + STALE
    data, _start = with_stale_stack(data, 1024)
    module = Module.decode(data)
    module.data[-1] = DataSegment(False, 0, b"\x41" + sleb(top - 2048) + b"\x0b",
                                  bytes([0xA5]) * 1024)
    return module.encode(), top


def layout(output: bytes) -> dict[str, object]:
    payload = Module.decode(output).get_custom(abi.CUSTOM_SECTION)
    assert payload is not None
    return read_section(payload)


def test_control_block_stays_clear_of_start_up_data() -> None:
    data, start = with_stale_stack(BASE.read_bytes(), STALE)
    top = start + STALE
    output = threadify.transform(data)
    record = layout(output)
    control = int(record["control_block"])  # type: ignore[call-overload]
    assert control + abi.CONTROL_BYTES <= start, (control, start)
    assert top - control <= CONTROL_SEARCH
    # the main thread's stack starts below the block, and the block stays in the initial memory
    assert _stack_top(Module.decode(output)) == control
    assert record["control_on_stack"] is True
    assert_valid(output, THREADS_FEATURES)
    verify(output)  # threads start (the lock is free) and the block is not overwritten


def test_data_beyond_the_search_window_moves_the_block_to_its_own_page() -> None:
    data, _start = with_stale_stack(BASE.read_bytes(), CONTROL_SEARCH + 64)
    output = threadify.transform(data)
    record = layout(output)
    initial_end = Module.decode(data).memories[0].min * abi.PAGE
    assert record["control_block"] == initial_end and record["control_on_stack"] is False
    assert _stack_top(Module.decode(output)) == _stack_top(Module.decode(data))
    verify(output)


def test_data_the_moved_block_meets_moves_it_again() -> None:
    """A range that ends below the block's usual place but above where the first move puts
    it moves the block once more (as many stale ranges below each other would)."""
    top = _stack_top(Module.decode(BASE.read_bytes()))
    for ranges in ([(top - 10, top), (top - 200, top - 70)],
                   [(top - 200, top - 70), (top - 10, top)]):
        module = Module.decode(BASE.read_bytes())
        control, _blocks = place_control_block(module, 0, 1 << 20, ranges)
        assert control == (top - 200 - abi.CONTROL_BYTES) & ~15
        assert _stack_top(module) == control


def test_clear_stack_top_keeps_the_usual_place() -> None:
    # the usual lld layout: nothing written under the stack's top, the block takes its top
    data = BASE.read_bytes()
    record = layout(threadify.transform(data))
    assert record["control_block"] == _stack_top(Module.decode(data)) - abi.CONTROL_BYTES


@pytest.mark.slow
def test_program_runs_its_threads(tmp_path: Path) -> None:
    data, _start = with_stale_stack(BASE.read_bytes(), STALE)
    out = tmp_path / "out.wasm"
    out.write_bytes(threadify.transform(data))
    proc = subprocess.run([sys.executable, "-m", "threadify", "run", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tls threads=8 ok" in proc.stdout


def test_stack_check_takes_the_stale_bytes_for_stack() -> None:
    """``--stack-check`` finds the main thread's stack from lld's layout: the stale bytes under
    its top are the stack's own old contents, not data below a data-first stack. The layout is
    stack first (nothing below), and ``--verify``'s probes pass at the limits."""
    data, start = with_stale_stack(BASE.read_bytes(), STALE)
    output = threadify.transform(data, stack_check=True)
    checked = layout(output)["stack_check"]
    assert isinstance(checked, dict)
    assert checked["main_stack"] == [0, start + STALE]
    assert str(checked["main_stack_how"]).startswith("stack first")
    verify(output)


def test_stack_check_refuses_a_stack_it_cannot_find() -> None:
    """Beyond the control block's search window the stale bytes reach the stack's top, so
    the block takes its own page and the stack starts at the top, right above data: taken for
    a data-first layout's end, that left no stack at all. ``stack_check=True`` is refused,
    naming the ways out, instead of giving a module whose every frame traps."""
    data, _start = with_stale_stack(BASE.read_bytes(), CONTROL_SEARCH + 64)
    with pytest.raises(threadify.ThreadifyError) as caught:
        threadify.transform(data, stack_check=True)
    assert "cannot tell where the main stack ends" in caught.value.problem
    assert "__stack_low" in str(caught.value.fix) and "stack_check=False" in str(caught.value.fix)


def test_stack_check_refuses_a_stack_it_cannot_tell_from_data() -> None:
    """A snapshot's stale stack in pieces (frames hold zeros, which the snapshot leaves out):
    the control block steps below the piece at the stack's top, into the gap under it, and a
    deeper piece still lies below where the stack now starts. Stale stack or data of a
    data-first layout, the module cannot tell; taking it for data gave a main stack of a
    kilobyte whose first deeper frame trapped (this layout is stack first: ``[0, top)``).
    Without ``__data_end`` or ``__stack_low``/``__stack_high`` it is refused, naming the way out."""
    data, top = in_pieces(BASE.read_bytes())
    start = top - STALE
    record = layout(threadify.transform(data))  # without the checks: the block finds its gap
    assert top - 1024 < int(record["control_block"]) < start  # type: ignore[call-overload]
    with pytest.raises(threadify.ThreadifyError) as caught:
        threadify.transform(data, stack_check=True)
    assert "cannot tell where the main stack ends" in caught.value.problem
    assert "__stack_low" in str(caught.value.fix) and "stack_check=False" in str(caught.value.fix)


def test_stack_check_takes_the_stack_from_lld_symbols_in_a_snapshot() -> None:
    """The way out the refusal names: with ``__stack_low``/``__stack_high`` (here exported,
    a data-first layout) the pieces of stale stack do not matter, and the main stack is
    lld's own, verified at its limits."""
    base = FIXTURES / "stack/wasm/overflow.nonshared-datafirst-stackexports.wasm"
    data, top = in_pieces(base.read_bytes())
    output = threadify.transform(data, stack_check=True)
    checked = layout(output)["stack_check"]
    assert isinstance(checked, dict)
    assert checked["main_stack"][1] == top and "__stack_low" in str(checked["main_stack_how"])
    assert checked["main_stack"][0] < top - 2048
    verify(output)


def test_stack_check_refuses_stale_stack_clear_of_the_top() -> None:
    """A stale piece deeper down only, ``[top - 2048, top - 1024)``, the top itself clear: the
    control block keeps its usual place, and still data lies below the stack while data also
    lies above its top (here the program's own, stack first). lld puts data on one side of its
    stack only, so this is a snapshot, and the data below is refused as ambiguous rather than
    taken for the end of a data-first layout (a 1 KiB main stack)."""
    module = Module.decode(BASE.read_bytes())
    top = _stack_top(module)
    module.data.append(DataSegment(False, 0, b"\x41" + sleb(top - 2048) + b"\x0b",
                                   bytes([0xA5]) * 1024))
    if module.data_count is not None:
        module.data_count += 1
    data = module.encode()
    assert layout(threadify.transform(data))["control_block"] == top - abi.CONTROL_BYTES
    with pytest.raises(threadify.ThreadifyError) as caught:
        threadify.transform(data, stack_check=True)
    assert "cannot tell where the main stack ends" in caught.value.problem
