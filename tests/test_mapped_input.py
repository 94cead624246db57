"""Large inputs are mapped, not read (docs/performance.md): the command line must give exactly
the library's bytes for them, rewrite a file in place, copy class C unchanged, and still reject
an invalid one — the mapped path is the one every large real module takes."""

from __future__ import annotations

import hashlib
import mmap
import subprocess
import sys
from pathlib import Path

import pytest

import threadify
from cli.files import MAP_AT_LEAST, map_input
from tests.tooling import FIXTURES, assert_valid
from threadify.wasm import Module

CLASS_B = FIXTURES / "c/wasm/tls.nonshared.wasm"
CLASS_C = FIXTURES / "zig/std_thread.wasm"


def padded(path: Path) -> bytes:
    """The module at ``path`` with a custom section that makes it larger than the mapping
    threshold (custom sections are carried through unchanged)."""
    module = Module.decode(path.read_bytes())
    module.set_custom("padding", bytes(range(256)) * (MAP_AT_LEAST // 256 + 1))
    data = module.encode()
    assert len(data) > MAP_AT_LEAST
    return data


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "threadify", *args], capture_output=True,
                          timeout=120)


def test_large_regular_file_is_mapped_small_one_read(tmp_path: Path) -> None:
    big = tmp_path / "big.wasm"
    big.write_bytes(padded(CLASS_B))
    mapped = map_input(str(big))
    assert isinstance(mapped, mmap.mmap) and mapped[:] == big.read_bytes()
    assert isinstance(map_input(str(CLASS_B)), bytes)


def test_mapped_transform_equals_library(tmp_path: Path) -> None:
    data = padded(CLASS_B)
    src, out = tmp_path / "in.wasm", tmp_path / "out.wasm"
    src.write_bytes(data)
    proc = cli(str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.read_bytes() == threadify.transform(data)
    assert_valid(out.read_bytes())


def test_mapped_in_place_and_class_c(tmp_path: Path) -> None:
    data = padded(CLASS_B)
    src = tmp_path / "app.wasm"
    src.write_bytes(data)
    proc = cli(str(src), "-o", str(src))
    assert proc.returncode == 0, proc.stderr.decode()
    assert src.read_bytes() == threadify.transform(data)

    ready = padded(CLASS_C)
    src_c, out_c = tmp_path / "ready.wasm", tmp_path / "ready.out.wasm"
    src_c.write_bytes(ready)
    proc = cli(str(src_c), "-o", str(out_c))
    assert proc.returncode == 0, proc.stderr.decode()
    assert hashlib.sha256(out_c.read_bytes()).digest() == hashlib.sha256(ready).digest()


@pytest.mark.parametrize("fixture", [CLASS_B, CLASS_C])
def test_mapped_invalid_input_is_rejected(tmp_path: Path, fixture: Path) -> None:
    module = Module.decode(padded(fixture))
    body = module.code[-1]
    raw = bytes(body.raw)
    module.code[-1] = type(body)(raw[:-1] + b"\xff" + raw[-1:])
    src, out = tmp_path / "bad.wasm", tmp_path / "out.wasm"
    src.write_bytes(module.encode())
    proc = cli(str(src), "-o", str(out))
    assert proc.returncode == 1 and b"not valid WebAssembly" in proc.stderr
    assert b"Traceback" not in proc.stderr and not out.exists()
