"""The native scanner (``threadify/wasm/codescan.c`` run under wasmtime) gives exactly the bytes
the Python decoder gives, on real compiler output and on random modules that use every proposal
wasm-tools smith knows; and its committed ``.wasm`` is what its source builds to."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tooling import FIXTURES, ROOT, wasm_tools
from threadify.errors import WasmDecodeError
from threadify.passes import stack_check
from threadify.wasm import ExternKind, FunctionBody, Module, codescan

SEQUENCE = stack_check.check_sequence(0, stack_check.LimitGlobals(300, 301), 70000)


def _python(data: bytes, index: int, sequence: bytes) -> tuple[bytes | None, int]:
    module = Module.decode(data)
    count = module.function_count()
    checks, _functions = stack_check._insert_in_python(module, index, sequence, count)
    if not checks:
        return None, 0
    return module.encode(), checks


def _native(data: bytes, index: int, sequence: bytes) -> tuple[bytes | None, int] | None:
    module = Module.decode(data)
    span = module.code_payload()
    assert span is not None
    done = codescan.insert_after_global_sets(*span, index, sequence, module.function_count())
    if done is None:
        return None
    if not done.inserted:
        return None, 0
    module.replace_code(done.payload, module.function_count())
    return module.encode(), done.inserted


def _compare(data: bytes, index: int) -> bool:
    """Both paths agree; ``False`` when the native scanner declined the module."""
    native = _native(data, index, SEQUENCE)
    if native is None:
        return False
    assert native == _python(data, index, SEQUENCE)
    return True


FIXTURE_FILES = sorted(FIXTURES.rglob("*.wasm"))
#: The Python decoder needs seconds for the larger ones (Go's runtime, 1.5 MB).
SMALL = [p for p in FIXTURE_FILES if p.stat().st_size < 256 << 10]
LARGE = [p for p in FIXTURE_FILES if p.stat().st_size >= 256 << 10]


@pytest.mark.parametrize("path", SMALL, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_native_equals_python_on_fixtures(path: Path) -> None:
    _compare_file(path)


@pytest.mark.slow
@pytest.mark.parametrize("path", LARGE, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_native_equals_python_on_large_fixtures(path: Path) -> None:
    _compare_file(path)


def _compare_file(path: Path) -> None:
    data = path.read_bytes()
    if Module.decode(data).code_payload() is None:
        pytest.skip("no code section")
    assert _compare(data, 0)


@pytest.mark.slow
def test_native_equals_python_on_random_modules() -> None:
    tool = wasm_tools()
    rng = random.Random(20261201)
    flags = ["--threads-enabled", "--simd-enabled", "--exceptions-enabled", "--gc-enabled",
             "--tail-call-enabled", "--relaxed-simd-enabled", "--reference-types-enabled",
             "--bulk-memory-enabled", "--multi-value-enabled", "--wide-arithmetic-enabled",
             "--memory64-enabled", "--extended-const-enabled"]
    compared = with_writes = 0
    for _ in range(60):
        args = [tool, "smith", "--min-globals", "1", "--max-globals", "4",
                "--min-funcs", "1", "--min-uleb-size", str(rng.choice([1, 5]))]
        for flag in flags:
            args += [flag, rng.choice(["true", "false"])]
        proc = subprocess.run(args, input=rng.randbytes(4096), capture_output=True, timeout=60)
        if proc.returncode != 0:
            continue
        data = proc.stdout
        if Module.decode(data).code_payload() is None:
            continue
        for index in range(2):
            if _compare(data, index):
                compared += 1
                native = _native(data, index, SEQUENCE)
                with_writes += native is not None and native[1] > 0
    assert compared >= 50, compared
    assert with_writes >= 5, with_writes


def test_malformed_body_falls_back_to_python() -> None:
    # A body whose last instruction runs past its end: the native scanner declines, the
    # Python decoder reports it with its offset.
    data = (FIXTURES / "stack/wasm/overflow.shared-stackfirst.wasm").read_bytes()
    module = Module.decode(data)
    names = module.names()
    assert names is not None
    index = names.find(1, "recurse")
    assert index is not None
    local = index - module.num_imported(ExternKind.FUNC)
    raw = module.code[local].raw
    module.code[local] = FunctionBody(raw[:-1] + b"\x41")  # `end` -> an i32.const opcode
    broken = module.encode()
    assert _native(broken, 0, SEQUENCE) is None
    with pytest.raises(WasmDecodeError):
        _python(broken, 0, SEQUENCE)


def test_kind_tables_cover_every_opcode_of_the_python_decoder() -> None:
    tables = codescan.kind_tables()
    from threadify.wasm.opcodes import PREFIXES, SINGLE

    assert all(tables[code] for code in SINGLE)
    for prefix, table in PREFIXES.items():
        assert tables[prefix] == codescan.K_PREFIX
        assert all(tables[(prefix - 0xFA) * codescan.TABLE + sub] for sub in table)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("clang-22") is None, reason="clang-22 is not installed")
def test_committed_scanner_is_what_its_source_builds(tmp_path: Path) -> None:
    out = tmp_path / "codescan.wasm"
    subprocess.run([str(ROOT / "scripts/build_codescan.sh"), str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == codescan.WASM.read_bytes()


def test_count_followed_finds_every_check_and_a_missing_one() -> None:
    import threadify

    data = (FIXTURES / "stack/wasm/overflow.shared-datafirst.wasm").read_bytes()
    output = threadify.transform(data, stack_check=True)
    module = Module.decode(output)
    record = json.loads(module.get_custom("threadify") or b"{}")
    sp = record["stack_pointer"]
    sequence = stack_check.check_sequence(
        sp, stack_check.LimitGlobals(record["globals"][stack_check.STACK_LOW],
                                     record["globals"][stack_check.STACK_HIGH]),
        record["functions"][stack_check.OVERFLOW])
    program = min(record["functions"].values()) - module.num_imported(ExternKind.FUNC)
    span = module.code_payload()
    assert span is not None
    counted = codescan.count_followed(*span, sp, sequence, program)
    assert counted == codescan.Counted(record["stack_check"]["checks"], None)
    # one check removed: found, with the body's offset
    local = _recurse(module)
    module.code[local] = FunctionBody(module.code[local].raw.replace(sequence, b"", 1))
    sabotaged = Module.decode(module.encode())
    span = sabotaged.code_payload()
    assert span is not None
    counted = codescan.count_followed(*span, sp, sequence, program)
    assert counted is not None and counted.unfollowed_at is not None


def _recurse(module: Module) -> int:
    names = module.names()
    assert names is not None
    index = names.find(1, "recurse")
    assert index is not None
    return index - module.num_imported(ExternKind.FUNC)


def test_native_reads_a_mapped_input() -> None:
    # The command line maps large inputs: the scanner copies the code straight from the map.
    import mmap

    path = FIXTURES / "stack/wasm/overflow.shared-datafirst.wasm"
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        module = Module.decode(mapped)
        span = module.code_payload()
        assert span is not None and span[0] is mapped
        done = codescan.insert_after_global_sets(*span, 0, SEQUENCE, module.function_count())
        assert done is not None
        del module, span
    again = Module.decode(path.read_bytes())
    span = again.code_payload()
    assert span is not None
    assert done == codescan.insert_after_global_sets(*span, 0, SEQUENCE,
                                                     again.function_count())


def test_split_scan_equals_whole_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    # Large payloads are scanned in two halves by two instances; the result is the same.
    data = (FIXTURES / "stack/wasm/overflow.shared-datafirst.wasm").read_bytes()
    module = Module.decode(data)
    span = module.code_payload()
    assert span is not None
    everything = module.function_count()
    for limit in (everything, everything // 2, 0):
        monkeypatch.setattr(codescan, "SPLIT_FROM", 1 << 40)
        whole = codescan.Insertion(*span, 0, limit)
        monkeypatch.setattr(codescan, "SPLIT_FROM", 0)
        split = codescan.Insertion(*span, 0, limit)
        assert (len(whole._jobs), len(split._jobs)) == (1, 2)
        expected = whole.finish(SEQUENCE)
        assert expected is not None and (expected.inserted > 0) == (limit > 0)
        assert split.finish(SEQUENCE) == expected


def test_rewritten_chunks_written_out_with_appended_bodies(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The pipeline hands the scanners' memories to the module as chunks (never joined) and
    # appends threadify's own functions after them: the output is what the joined payload
    # gives, split or whole.
    data = (FIXTURES / "stack/wasm/overflow.shared-datafirst.wasm").read_bytes()
    extra = FunctionBody(b"\x00\x0b")
    for split_from in (1 << 40, 0):
        monkeypatch.setattr(codescan, "SPLIT_FROM", split_from)
        outputs = []
        for as_chunks in (True, False):
            module = Module.decode(data)
            span = module.code_payload()
            assert span is not None
            count = module.function_count()
            done = codescan.insert_after_global_sets(*span, 0, SEQUENCE, count)
            assert done is not None and done.inserted > 0
            assert len(done.chunks) == (1 if split_from else 3)
            module.add_function(0, extra)  # before the payload is replaced, and after
            module.replace_code(list(done.chunks) if as_chunks else done.payload, count)
            module.add_function(0, extra)
            assert module.function_count() == count + 2
            outputs.append(module.encode())
        assert outputs[0] == outputs[1]
        assert Module.decode(outputs[0]).code[-2:] == [extra, extra]
