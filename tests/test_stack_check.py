"""``--stack-check``: every write of the stack pointer is checked against its thread's limits
(docs/stack-check.md).

The programs are ``fixtures/stack/overflow.c`` (clang-22, four lld layouts): they use a chosen
amount of stack on the main thread or a spawned one, densely (recursion) or sparsely (one large
frame written every 64 bytes). Past the stack they must trap in ``threadify_stack_overflow``,
called from the frame that overflowed, on the bundled host and on wasmtime 46; just inside it
they must still pass.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import threadify
from tests.host import wat
from tests.host.runner import run_cli
from tests.tooling import FIXTURES, assert_valid, print_wat, run_wasmtime
from threadify.linker import find_symbols
from threadify.passes import stack_check
from threadify.pipeline import Options, run
from threadify.wasm import ExternKind, FunctionBody, Module, NameSection

STACK = FIXTURES / "stack"
LAYOUTS = ("shared-stackfirst", "shared-datafirst", "nonshared-stackfirst", "nonshared-datafirst",
           "nonshared-datafirst-stackexports")
GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("THREADIFY_REGEN_GOLDEN") == "1"
#: lld's default main stack (every fixture variant keeps it)
MAIN_STACK = 65536
#: The thread stack size the outputs are made with (small: overflowing it is quick).
THREAD_STACK = 65536
#: Bytes a "near" run leaves unused: the frames above the starting one, one recursion frame
#: and the red zone must fit in it.
MARGIN = 2048
OVERFLOW = "threadify_stack_overflow"


def _fixture(layout: str) -> bytes:
    return (STACK / "wasm" / f"overflow.{layout}.wasm").read_bytes()


_outputs: dict[str, bytes] = {}


def checked(layout: str) -> bytes:
    """The fixture transformed with ``--stack-check`` (made once per test session)."""
    if layout not in _outputs:
        result = run(_fixture(layout), Options(stack_check=True, stack_size=THREAD_STACK))
        _outputs[layout] = result.output
    return _outputs[layout]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _names(module: Module) -> NameSection:
    names = module.names()
    assert names is not None
    return names


def _function_index(module: Module, name: str) -> int:
    index = _names(module).find(1, name)
    assert index is not None, name
    return index


def _limits(module: Module) -> stack_check.LimitGlobals:
    names = _names(module)
    low, high = names.find(7, stack_check.STACK_LOW), names.find(7, stack_check.STACK_HIGH)
    assert low is not None and high is not None
    return stack_check.LimitGlobals(low, high)


# -- the host names the trapping function ----------------------------------------------------


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


# -- the main thread's stack, from lld's layout ------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_main_stack_matches_lld_layout(layout: str) -> None:
    module = Module.decode(_fixture(layout))
    syms = find_symbols(module)
    stack = stack_check.main_stack(module, syms)
    top = syms.stack_pointer_init
    assert stack is not None and top is not None and stack.high == top
    if layout.endswith("stackexports"):  # lld's own symbols, exported: exact
        assert stack.low == top - MAIN_STACK and "__stack_low" in stack.how
    elif layout.endswith("stackfirst"):
        assert stack.low == 0 and top == MAIN_STACK  # lld puts the stack at address 0
    elif layout.startswith("shared"):
        # lld's memory initialiser shows all data (.bss fill and flag word too): exact
        assert stack.low == top - MAIN_STACK
    else:
        # non-shared, data first: lld leaves .bss out of the module, so the data below the
        # stack is seen only up to the last initialised byte -- never above the real bottom
        assert 0 < stack.low <= top - MAIN_STACK
        assert "data first" in stack.how


# -- main thread: overflow traps, near the limit passes -------------------------------------


def _run_host(path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return run_cli([str(path), "--", *args])


def _assert_overflow_trap(result: subprocess.CompletedProcess[str], who: str,
                          frame: str) -> None:
    assert result.returncode == 134, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"threadify run: {who} trapped: "), lines
    assert lines[0].endswith(f"in {OVERFLOW}, called from {frame}"), lines
    assert "ok" not in result.stdout


CASES = [  # (where, mode, frame that overflows)
    ("0", "0", "recurse"),
    ("0", "1", "sparse"),
    ("1", "0", "recurse"),
    ("1", "1", "sparse"),
]


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("where", "mode", "frame"), CASES)
def test_overflow_traps_on_bundled_host(tmp_path: Path, layout: str, where: str, mode: str,
                                        frame: str) -> None:
    path = _write(tmp_path, "out.wasm", checked(layout))
    # 4 MiB: far past the stack; a sparse frame that size skips any guard region
    result = _run_host(path, [where, mode, str(4 << 20)])
    _assert_overflow_trap(result, "main thread" if where == "0" else "thread 1", frame)


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("where", "mode", "frame"), CASES)
def test_near_the_limit_passes_on_bundled_host(tmp_path: Path, layout: str, where: str,
                                               mode: str, frame: str) -> None:
    path = _write(tmp_path, "out.wasm", checked(layout))
    size = MAIN_STACK if where == "0" else THREAD_STACK
    module = Module.decode(_fixture(layout))
    if where == "0":
        stack = stack_check.main_stack(module, find_symbols(module))
        assert stack is not None
        size = stack.high - stack.low
    args = [where, mode, str(size - MARGIN)]
    result = _run_host(path, args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"overflow where={where} mode={mode} bytes={size - MARGIN} ok\n"


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["shared-stackfirst", "nonshared-datafirst"])
@pytest.mark.parametrize(("where", "mode", "frame"), CASES)
def test_overflow_traps_on_wasmtime_46(tmp_path: Path, layout: str, where: str, mode: str,
                                       frame: str) -> None:
    path = _write(tmp_path, "out.wasm", checked(layout))
    proc = run_wasmtime("46.0.1", path, [where, mode, str(4 << 20)])
    assert proc.returncode == 134, proc.stderr
    assert "ok" not in proc.stdout
    # the backtrace's innermost frame is the named trap, called from the overflowing frame
    frames = [line.split("!", 1)[1] for line in proc.stderr.splitlines()
              if " - " in line and "!" in line]
    assert frames[:2] == [OVERFLOW, frame], proc.stderr


@pytest.mark.slow
def test_near_the_limit_passes_on_wasmtime_46(tmp_path: Path) -> None:
    path = _write(tmp_path, "out.wasm", checked("shared-datafirst"))
    for where, mode, _frame in CASES:
        size = MAIN_STACK if where == "0" else THREAD_STACK
        proc = run_wasmtime("46.0.1", path, [where, mode, str(size - MARGIN)])
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.endswith(" ok\n")


# -- what the pass does to the code ------------------------------------------------------------


def _sp_writes(module: Module, sp: int) -> dict[int, list[int]]:
    """Function index -> offsets after each ``global.set $sp``, for every defined function."""
    first = module.num_imported(ExternKind.FUNC)
    out = {}
    for i, body in enumerate(module.code):
        ends = stack_check.sp_write_ends(body, sp)
        if ends:
            out[first + i] = ends
    return out


@pytest.mark.parametrize("layout", [*LAYOUTS, "shared-stackfirst-debug"])
def test_every_stack_pointer_write_of_the_program_is_checked(layout: str) -> None:
    output = checked(layout)
    assert_valid(output)
    module = Module.decode(output)
    syms = find_symbols(Module.decode(_fixture(layout)))
    assert syms.stack_pointer is not None
    sp = syms.stack_pointer.index
    sequence = stack_check.check_sequence(sp, _limits(module), _function_index(module, OVERFLOW))
    original = _sp_writes(Module.decode(_fixture(layout)), sp)
    assert original, "the fixture writes its stack pointer"
    first = module.num_imported(ExternKind.FUNC)
    for index, ends in _sp_writes(module, sp).items():
        raw = module.code[index - first].raw
        if index in original:
            assert len(ends) == len(original[index])
            for end in ends:
                assert raw[end:end + len(sequence)] == sequence, (index, end)
        else:  # threadify's own functions set the stack pointer unchecked
            assert index == _function_index(module, "wasi_thread_start")


def test_without_the_flag_nothing_is_added() -> None:
    data = _fixture("shared-stackfirst")
    plain = threadify.transform(data)
    assert threadify.transform(data, stack_check=False) == plain
    module = Module.decode(plain)
    assert _names(module).find(7, stack_check.STACK_LOW) is None
    assert b"stack_check\":{" not in (module.get_custom("threadify") or b"")


def test_sabotage_one_missing_check_lets_the_overflow_through(tmp_path: Path) -> None:
    # Remove the check from the recursive function only: the dense overflow must no longer
    # trap in threadify_stack_overflow (here it runs off the bottom of memory instead).
    output = checked("shared-stackfirst")
    module = Module.decode(output)
    sp = find_symbols(Module.decode(_fixture("shared-stackfirst"))).stack_pointer
    assert sp is not None
    sequence = stack_check.check_sequence(sp.index, _limits(module),
                                          _function_index(module, OVERFLOW))
    target = _function_index(module, "recurse") - module.num_imported(ExternKind.FUNC)
    raw = module.code[target].raw
    assert sequence in raw
    module.code[target] = FunctionBody(raw.replace(sequence, b"", 1))
    sabotaged = module.encode()
    assert_valid(sabotaged)
    intact = _run_host(_write(tmp_path, "intact.wasm", output), ["0", "0", str(4 << 20)])
    _assert_overflow_trap(intact, "main thread", "recurse")
    broken = _run_host(_write(tmp_path, "broken.wasm", sabotaged), ["0", "0", str(4 << 20)])
    assert OVERFLOW not in broken.stderr, broken.stderr


# -- DWARF -------------------------------------------------------------------------------------


def test_dwarf_is_dropped_and_said_so(tmp_path: Path) -> None:
    data = _fixture("shared-stackfirst-debug")
    assert any(n.startswith(".debug_") for n, _ in Module.decode(data).custom_sections())
    kept = Module.decode(threadify.transform(data))
    assert any(n.startswith(".debug_") for n, _ in kept.custom_sections())  # offsets kept
    # a library caller reads the keyword it passed, not the command line's flag
    with pytest.warns(UserWarning, match=r"^stack_check=True moved code.*dropped .debug_abbrev"):
        threadify.transform(data, stack_check=True)
    result = run(data, Options(stack_check=True))
    assert not any(n.startswith(".debug_") for n, _ in
                   Module.decode(result.output).custom_sections())
    assert len(result.warnings) == 1 and ".debug_line" in result.warning_texts()[0]
    # the command line says so on stderr
    src = _write(tmp_path, "in.wasm", data)
    proc = subprocess.run([sys.executable, "-m", "threadify", str(src), "-o",
                           str(tmp_path / "out.wasm"), "--stack-check", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "warning: --stack-check moved code" in proc.stderr
    assert ".debug_info" in proc.stderr
    # and so does its --json report
    (reported,) = json.loads(proc.stdout)["warnings"]
    assert reported.startswith("--stack-check moved code") and ".debug_info" in reported


# -- golden WAT ------------------------------------------------------------------------------


def test_checked_function_matches_golden() -> None:
    """The rewritten ``recurse`` (its two stack-pointer writes, each with the check) and the
    trap function, as ``wasm-tools print`` shows them; reviewed by a person, regenerated only
    with THREADIFY_REGEN_GOLDEN=1."""
    text = print_wat(checked("shared-stackfirst"))
    blocks = [b for b in text.split("\n  (") if b.startswith(("func $recurse ",
                                                               f"func ${OVERFLOW} "))]
    actual = "\n".join(re.sub(r" \(;\d+;\)", "", "  (" + b.rstrip()) for b in blocks) + "\n"
    path = GOLDEN / "stack-check.wat"
    if REGEN:
        path.write_text(actual)
    assert path.read_text() == actual


# -- inspect and --verify ----------------------------------------------------------------------


def test_inspect_reports_stack_checks() -> None:
    data = _fixture("shared-datafirst")
    assert threadify.inspect(checked("shared-datafirst")).stack_checks
    plain = threadify.inspect(threadify.transform(data))
    assert not plain.stack_checks and plain.as_dict()["stack_checks"] is False
    assert not threadify.inspect(data).stack_checks
    assert "stack checks: yes" in threadify.inspect(checked("shared-datafirst")).text()


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["shared-stackfirst", "nonshared-datafirst"])
def test_verify_proves_an_overflow_traps(layout: str) -> None:
    from threadify.verify import verify

    report = verify(checked(layout))
    assert report.runtime_checked
    text = "\n".join(report.checks)
    assert "every stack-pointer write of the program is checked" in text
    assert "stack overflow traps in threadify_stack_overflow" in text


def _sabotaged(layout: str, function: str, old: bytes, new: bytes) -> bytes:
    module = Module.decode(checked(layout))
    local = _function_index(module, function) - module.num_imported(ExternKind.FUNC)
    raw = module.code[local].raw
    assert old in raw
    module.code[local] = FunctionBody(raw.replace(old, new, 1))
    return module.encode()


def test_verify_fails_when_a_check_is_missing() -> None:
    from threadify.verify import VerificationError, verify

    module = Module.decode(checked("shared-stackfirst"))
    sp = find_symbols(module).stack_pointer
    assert sp is not None
    sequence = stack_check.check_sequence(sp.index, _limits(module),
                                          _function_index(module, OVERFLOW))
    with pytest.raises(VerificationError, match="without the stack-limit check"):
        verify(_sabotaged("shared-stackfirst", "sparse", sequence, b""))


@pytest.mark.slow
def test_verify_fails_when_threads_keep_the_main_limits() -> None:
    # wasi_thread_start no longer sets the low limit (its global.set becomes drop + nop): the
    # threads keep the main thread's, which verify must notice.
    from threadify.verify import VerificationError, verify

    module = Module.decode(checked("shared-stackfirst"))
    low = _limits(module).low
    assert low < 128  # a one-byte LEB, so the replacement keeps the length
    with pytest.raises(VerificationError, match="thread 1: stack limits are"):
        verify(_sabotaged("shared-stackfirst", "wasi_thread_start", bytes((0x24, low)),
                          b"\x1a\x01"))


# -- programs that do not overflow are unaffected -------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fixture", [
    "c/wasm/stack.shared-import.wasm", "c/wasm/stack.nonshared-datafirst.wasm",
    "c/wasm/churn.shared-import-datafirst.wasm", "c/wasm/tls.nonshared-stripped.wasm",
    "cxx/threads.shared-import.wasm", "rust/threads_no_core.wasm",
])
def test_fixture_programs_still_pass_with_checks(tmp_path: Path, fixture: str) -> None:
    output = threadify.transform((FIXTURES / fixture).read_bytes(), stack_check=True)
    result = run_cli([str(_write(tmp_path, "out.wasm", output))])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith("ok"), result.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("clang-22") is None or shutil.which("wasm-ld-22") is None,
                    reason="clang-22 / wasm-ld-22 are not installed")
def test_fixtures_rebuild_to_the_committed_bytes(tmp_path: Path) -> None:
    subprocess.run([str(STACK / "build.sh"), "--out", str(tmp_path)], check=True,
                   capture_output=True, cwd=tmp_path)
    committed = sorted(p.name for p in (STACK / "wasm").glob("*.wasm"))
    assert committed == sorted(p.name for p in tmp_path.glob("*.wasm"))
    for name in committed:
        assert (tmp_path / name).read_bytes() == (STACK / "wasm" / name).read_bytes(), name


def test_already_thread_ready_input_is_copied_and_said_so() -> None:
    # A module that starts its threads itself is copied as it is: the user asked for checks
    # and gets none, so the result says so.
    data = checked("shared-stackfirst")
    result = run(data, Options(stack_check=True))
    assert result.unchanged and result.output == data
    assert result.warning_texts() == ["the module is already thread-ready and was copied "
                                      "unchanged: no stack checks were added"]
    assert run(data, Options()).warnings == []
