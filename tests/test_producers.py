"""Checks of the committed Rust and Zig producer fixtures (``fixtures/rust``, ``fixtures/zig``).

Why: threadify's other tests use these modules as real compiler output. Each folder's
``manifest.json`` promises what a module is (input class, memory, TLS layout, exports, expected
output); these tests hold the committed binaries to those promises with independent tools
(``wasm-tools``, the wasmtime CLIs), so a rebuilt or hand-edited fixture cannot silently drift.
Nothing here needs rustc or zig.

Modules of class A cannot run before threadify has added ``wasi_thread_start``. To show that
their expected output and exit code are real (and that they notice broken TLS isolation), the
run tests attach a deliberately minimal ABI-v1 ``wasi_thread_start`` written in WAT here: one
``memory.grow``-ed page per thread, TLS at its bottom, stack at its top. It is a test double for
the fixture, not a model of threadify.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.tooling import (
    FIXTURES,
    assert_valid,
    print_wat,
    run_wasmtime,
    slow_unless_cases,
    wasm_tools,
    wat2wasm,
)

PRODUCER_DIRS = ("rust", "zig")


def _load_manifests() -> list[tuple[Path, dict[str, Any]]]:
    entries = []
    for sub in PRODUCER_DIRS:
        folder = FIXTURES / sub
        manifest = json.loads((folder / "manifest.json").read_text())
        for module in manifest["modules"]:
            entries.append((folder, module))
    return entries


MODULES = _load_manifests()
IDS = [f"{folder.name}/{m['file']}" for folder, m in MODULES]
# The fast loop checks one module per producer; the full suite every module.
FAST_MODULES = {"rust/threads_no_core.wasm", "zig/abi_threads.wasm"}
MODULE_PARAMS = slow_unless_cases(lambda case: f"{case[0].name}/{case[1]['file']}" in FAST_MODULES,
                                  MODULES, ids=lambda case: f"{case[0].name}/{case[1]['file']}")


# --------------------------------------------------------------------------------------------
# A small reading of `wasm-tools print` / `objdump` output: enough to check the manifest.
# --------------------------------------------------------------------------------------------

_ESCAPES = {"n": 0x0A, "t": 0x09, "r": 0x0D, '"': 0x22, "'": 0x27, "\\": 0x5C}


def _wat_string(body: str) -> bytes:
    """Decodes the contents of a WAT string literal (without the quotes)."""
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u":
            end = body.index("}", i)
            out += chr(int(body[i + 3:end], 16)).encode()
            i = end + 1
        else:
            out.append(int(body[i + 1:i + 3], 16))
            i += 3
    return bytes(out)


@dataclass
class Global:
    mutable: bool
    value: int
    name: str | None


@dataclass
class Segment:
    name: str | None
    offset: int | None  # None: passive
    data: bytes


@dataclass
class Shape:
    """What the checks need to know about a module, read through wasm-tools."""

    wat: str
    memory_import: tuple[str, str] | None = None
    memory_shared: bool = False
    memory_limits: tuple[int, int | None] = (0, None)
    imports: set[tuple[str, str]] = field(default_factory=set)
    exports: dict[str, str] = field(default_factory=dict)  # name -> "func 3" / "global 2" / ...
    globals: list[Global] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    has_start: bool = False
    custom: dict[str, bytes] = field(default_factory=dict)


_MEM = re.compile(r"\(memory \(;0;\) (\d+)(?: (\d+))?( shared)?\)")
_IMPORT = re.compile(r'^\s*\(import "([^"]*)" "([^"]*)" \((\w+)')
_EXPORT = re.compile(r'^\s*\(export "([^"]*)" \((\w+) ([^)]*)\)\)')
_GLOBAL = re.compile(r"^\s*\(global (\$\S+ )?\(;\d+;\) (\(mut i32\)|i32) i32\.const (-?\d+)\)")
_DATA = re.compile(r'^\s*\(data (\$\S+ )?\(;\d+;\) (?:\(i32\.const (-?\d+)\) )?"(.*)"\)$')
_CUSTOM = re.compile(r'custom "([^"]+)"\s*\|\s*0x([0-9a-f]+) -\s*0x([0-9a-f]+)')


def shape_of(data: bytes) -> Shape:
    wat = print_wat(data)
    shape = Shape(wat=wat)
    for line in wat.splitlines():
        if m := _IMPORT.match(line):
            shape.imports.add((m[1], m[2]))
            if m[3] == "memory":
                shape.memory_import = (m[1], m[2])
        if line.lstrip().startswith(("(memory", '(import "')) and (mm := _MEM.search(line)):
            shape.memory_limits = (int(mm[1]), int(mm[2]) if mm[2] else None)
            shape.memory_shared = bool(mm[3])
        if m := _EXPORT.match(line):
            shape.exports[m[1]] = f"{m[2]} {m[3]}"
        if m := _GLOBAL.match(line):
            name = m[1].strip()[1:] if m[1] else None
            shape.globals.append(Global(m[2] == "(mut i32)", int(m[3]), name))
        if m := _DATA.match(line):
            name = m[1].strip()[1:] if m[1] else None
            offset = int(m[2]) if m[2] is not None else None
            shape.segments.append(Segment(name, offset, _wat_string(m[3])))
        if line.lstrip().startswith("(start "):
            shape.has_start = True
    dump = subprocess.run([wasm_tools(), "objdump", "-"], input=data, capture_output=True,
                          check=True, timeout=60).stdout.decode()
    for m in _CUSTOM.finditer(dump):
        shape.custom[m[1]] = data[int(m[2], 16):int(m[3], 16)]
    return shape


def _target_features(payload: bytes) -> set[str]:
    """Decodes a `target_features` section: count, then (prefix byte, name) pairs."""
    count, pos, found = payload[0], 1, set()
    for _ in range(count):  # fewer than 128 entries: every LEB128 here is one byte
        prefix, length = payload[pos], payload[pos + 1]
        name = payload[pos + 2:pos + 2 + length].decode()
        pos += 2 + length
        if prefix == ord("+"):
            found.add(name)
    return found


class _Shapes(dict[str, Shape]):
    """Shapes by ``folder/file``, each read on first use (the fast loop looks at a few)."""

    def __missing__(self, key: str) -> Shape:
        shape = self[key] = shape_of((FIXTURES / key).read_bytes())
        return shape


@pytest.fixture(scope="module")
def shapes() -> dict[str, Shape]:
    return _Shapes()


def _shape(shapes: dict[str, Shape], folder: Path, module: dict[str, Any]) -> Shape:
    return shapes[f"{folder.name}/{module['file']}"]


# --------------------------------------------------------------------------------------------
# Static promises
# --------------------------------------------------------------------------------------------


def test_every_committed_module_is_in_a_manifest() -> None:
    listed = {f"{folder.name}/{m['file']}" for folder, m in MODULES}
    on_disk = {f"{sub}/{p.name}" for sub in PRODUCER_DIRS for p in (FIXTURES / sub).glob("*.wasm")}
    assert listed == on_disk
    for folder, m in MODULES:
        assert (folder / m["source"]).is_file(), m["source"]


@pytest.mark.parametrize(("folder", "module"), MODULE_PARAMS)
def test_validates_with_threads(folder: Path, module: dict[str, Any]) -> None:
    data = (folder / module["file"]).read_bytes()
    assert_valid(data)
    assert_valid(data, "threads,bulk-memory,mutable-global,sign-extension,multi-value,"
                       "reference-types,saturating-float-to-int")


@pytest.mark.parametrize(("folder", "module"), MODULE_PARAMS)
def test_memory(shapes: dict[str, Shape], folder: Path, module: dict[str, Any]) -> None:
    shape, want = _shape(shapes, folder, module), module["memory"]
    assert shape.memory_shared is want["shared"]
    assert shape.memory_import == (tuple(want["import"]) if want["import"] else None)
    assert shape.memory_limits == (want["min_pages"], want["max_pages"])
    if "export" in want:
        assert shape.exports.get(want["export"]) == "memory 0"
    else:
        assert not any(kind.startswith("memory") for kind in shape.exports.values())


@pytest.mark.parametrize(("folder", "module"), MODULE_PARAMS)
def test_thread_imports_and_exports(shapes: dict[str, Shape], folder: Path,
                                    module: dict[str, Any]) -> None:
    shape = _shape(shapes, folder, module)
    assert ("wasi", "thread-spawn") in shape.imports
    assert ("wasi_snapshot_preview1", "proc_exit") in shape.imports
    assert shape.exports["_start"].startswith("func ")
    # Class C is recognised by its own wasi_thread_start; A and B must not have one.
    assert ("wasi_thread_start" in shape.exports) is (module["class"] == "C")


@pytest.mark.parametrize(("folder", "module"), MODULE_PARAMS)
def test_tls_layout(shapes: dict[str, Shape], folder: Path, module: dict[str, Any]) -> None:
    """The TLS template, stack pointer and `__tls_base` look as lld lays them out."""
    shape, tls = _shape(shapes, folder, module), module["tls"]
    tdata = shape.segments[tls["tdata_segment"]]
    assert tdata.data == bytes.fromhex(tls["tdata_hex"])
    assert len(tdata.data) == tls["size"]  # lld includes the .tbss zeros in .tdata
    sp = shape.globals[tls["stack_pointer_global"]]
    assert sp.mutable and sp.value > 0 and sp.value % 16 == 0
    tls_base = shape.globals[tls["tls_base_global"]]
    if module["class"] == "B":
        # Non-shared link: immutable __tls_base pointing at the active .tdata segment.
        assert not tls_base.mutable
        assert tls_base.value == tdata.offset == module["tls_base_value"]
        assert all(seg.offset is not None for seg in shape.segments)
        assert not shape.has_start
    else:
        assert tls_base.mutable and tls_base.value == 0
        assert all(seg.offset is None for seg in shape.segments)  # passive
        assert shape.has_start  # __wasm_init_memory
    if module["name_section"]:
        assert sp.name == "__stack_pointer" and tls_base.name == "__tls_base"
        assert tdata.name == ".tdata"


@pytest.mark.parametrize(("folder", "module"), MODULE_PARAMS)
def test_tls_symbol_exports(shapes: dict[str, Shape], folder: Path,
                            module: dict[str, Any]) -> None:
    shape, tls = _shape(shapes, folder, module), module["tls"]
    names = ("__wasm_init_tls", "__tls_size", "__tls_align", "__tls_base")
    if not module["tls_exports"]:
        assert not any(n in shape.exports for n in names)
        return
    assert shape.exports["__wasm_init_tls"].startswith("func ")
    for name, want in (("__tls_size", tls["size"]), ("__tls_align", tls["align"])):
        kind = shape.exports[name]
        glob = next(g for g in shape.globals if g.name == name) if module["name_section"] \
            else shape.globals[int(kind.split()[1])]
        assert not glob.mutable and glob.value == want


@pytest.mark.parametrize(("folder", "module"), MODULE_PARAMS)
def test_custom_sections(shapes: dict[str, Shape], folder: Path, module: dict[str, Any]) -> None:
    shape = _shape(shapes, folder, module)
    assert ("name" in shape.custom) is module["name_section"]
    wanted = module["target_features"]
    if wanted is None:
        assert "target_features" not in shape.custom
    else:
        assert set(wanted) <= _target_features(shape.custom["target_features"])
    has_dwarf = any(n.startswith(".debug_") for n in shape.custom)
    assert has_dwarf is module["debug_info"]
    # The toolchain the manifest names really built it (release stripping drops the section).
    if module["producers"] is None:
        assert "producers" not in shape.custom
    else:
        for word in module["producers"]:
            assert word.encode() in shape.custom["producers"], word


# --------------------------------------------------------------------------------------------
# Runs on a real WASI-threads host
# --------------------------------------------------------------------------------------------


RUNNABLE = [(f, m) for f, m in MODULES if m["runs_as_is"]]


@pytest.mark.parametrize("version", ["46.0.1", "36.0.9"])
@pytest.mark.parametrize(("folder", "module"), RUNNABLE,
                         ids=[f"{f.name}/{m['file']}" for f, m in RUNNABLE])
def test_class_c_runs_unchanged(folder: Path, module: dict[str, Any], version: str) -> None:
    proc = run_wasmtime(version, folder / module["file"])
    assert proc.returncode == module["exit_code"], proc.stderr[-2000:]
    assert proc.stdout.strip() == module["stdout"]


def _with_test_thread_start(data: bytes, module: dict[str, Any], share_tls: bool) -> bytes:
    """Adds a minimal ABI-v1 `wasi_thread_start` (and the `memory` export WASI needs).

    Each thread gets one fresh page from `memory.grow`: TLS (copied from `.tdata`) at its bottom,
    stack pointer at its top. With `share_tls` every thread instead re-initialises one common
    TLS block just below the initial memory's end -- the classic broken rewrite, in which a new
    thread clobbers the TLS of threads already running. The fixture must notice that.
    """
    tls = module["tls"]
    sp, tb, seg, size = (tls["stack_pointer_global"], tls["tls_base_global"],
                         tls["tdata_segment"], tls["size"])
    base = "(local.get $page)"
    if share_tls:
        base = f"(i32.const {module['memory']['min_pages'] * 65536 - 64})"
    extra = f"""
  (export "memory" (memory 0))
  (func $test_wasi_thread_start (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (local $page i32) (local $func i32) (local $farg i32)
    (local.set $func (i32.load (local.get $arg)))
    (local.set $farg (i32.load offset=4 (local.get $arg)))
    (local.set $page (i32.mul (memory.grow (i32.const 1)) (i32.const 65536)))
    (global.set {sp} (i32.add (local.get $page) (i32.const 65536)))
    (global.set {tb} {base})
    (memory.init {seg} {base} (i32.const 0) (i32.const {size}))
    (call_indirect (param i32) (local.get $farg) (local.get $func)))
"""
    wat = print_wat(data)
    end = wat.rindex(")")
    return wat2wasm(wat[:end] + extra + wat[end:])


ABI_V1 = [(f, m) for f, m in MODULES if m["class"] == "A" and m["start_abi"] == "threadify-v1"]
ABI_IDS = [f"{f.name}/{m['file']}" for f, m in ABI_V1]
ABI_PARAMS = slow_unless_cases(lambda case: f"{case[0].name}/{case[1]['file']}" in FAST_MODULES,
                               ABI_V1, ids=lambda case: f"{case[0].name}/{case[1]['file']}")


@pytest.mark.parametrize(("folder", "module"), ABI_PARAMS)
def test_abi_v1_fixture_runs_with_a_correct_thread_start(folder: Path, module: dict[str, Any],
                                                         tmp_path: Path) -> None:
    """The manifest's stdout and exit code are what the program really does once threads work."""
    data = _with_test_thread_start((folder / module["file"]).read_bytes(), module, False)
    path = tmp_path / module["file"]
    path.write_bytes(data)
    proc = run_wasmtime("46.0.1", path)
    assert proc.returncode == module["exit_code"], proc.stderr[-2000:]
    assert proc.stdout.strip() == module["stdout"]


@pytest.mark.parametrize(("folder", "module"), ABI_PARAMS)
def test_abi_v1_fixture_detects_shared_tls(folder: Path, module: dict[str, Any],
                                           tmp_path: Path) -> None:
    """A rewrite that hands every thread the same TLS block must make the program fail."""
    data = _with_test_thread_start((folder / module["file"]).read_bytes(), module, True)
    path = tmp_path / module["file"]
    path.write_bytes(data)
    proc = run_wasmtime("46.0.1", path)
    # 30 + 10*i + check: a worker saw another thread's TLS writes (checks 4..6).
    assert 34 <= proc.returncode <= 66 and proc.returncode % 10 in (4, 5, 6), proc.stderr[-2000:]
    assert module["stdout"] not in proc.stdout
