"""The committed C fixtures are what fixtures/manifest.json says they are.

These tests look at the fixtures with independent tools only (``wasm-tools``, the wasmtime CLI,
clang-22 when installed), never with threadify itself: the fixtures are the yardstick for the
transform, so their promises must hold on their own.  Checked:

- manifest and files agree (every committed C .wasm is listed with its size and sha256);
- every fixture validates;
- every fixture has the shape its link variant promises: shared or not, imported or defined
  memory, passive or active segments, start function, TLS exports, name section,
  ``target_features``, stack-first or data-first layout, ``__tls_base`` kind and value;
- the exit-code tables in the manifest match the ``rt_fail`` calls in the sources;
- the modules run single-threaded (argument 0) on wasmtime 46 and print their marker;
- with clang-22 installed, fixtures/build.sh reproduces the committed bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import programs
from tests.tooling import FIXTURES, assert_valid, run_wasmtime, slow_unless, wasm_tools, wat2wasm

MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
C_FIXTURES = [f for f in MANIFEST["fixtures"] if f["toolchain"] == "c"]
C_PROGRAMS = {k: v for k, v in MANIFEST["programs"].items() if v["toolchain"] == "c"}
TLS_EXPORTS = {"__tls_size", "__tls_align", "__tls_base", "__wasm_init_tls"}
PAGE = 65536


def fixture_id(entry: dict[str, Any]) -> str:
    return Path(entry["file"]).stem


@dataclass
class Shape:
    """What ``wasm-tools print``/``objdump`` show about a module's top level."""

    memory_imported: tuple[str, str] | None = None
    memory_shared: bool = False
    memory_min: int = 0
    memory_max: int | None = None
    exports: dict[str, str] = field(default_factory=dict)
    globals: list[tuple[str | None, bool, int]] = field(default_factory=list)  # name, mut, init
    data: list[tuple[str | None, int | None]] = field(default_factory=list)  # name, active offset
    start: str | None = None
    custom: list[str] = field(default_factory=list)
    # (segment index or name, destination) for each memory.init in the start function, and the
    # value the start function stores into global 1 (__tls_base) before them
    inits: list[tuple[str, int]] = field(default_factory=list)
    tls_base_set: int | None = None
    target_features: bytes = b""


def _parse_start(text: str, start: str) -> tuple[list[tuple[str, int]], int | None]:
    """Replays the constants of lld's memory initialiser to find where each segment goes."""
    label = f"\\(;{start};\\)" if start.isdigit() else re.escape(start)
    body = re.search(r"^  \(func " + label + r" .*?^  \)", text, re.M | re.S)
    assert body, f"start function {start} not found"
    stack: list[int] = []
    inits: list[tuple[str, int]] = []
    tls_base = None
    for raw in body.group(0).splitlines()[1:]:
        op = raw.split(";;")[0].split()
        if not op:
            continue
        if op[0] == "i32.const":
            stack.append(int(op[1]))
        elif op[0] == "global.set" and op[1] in ("1", "$__tls_base") and stack:
            tls_base = stack.pop()
        elif op[0] == "memory.init" and len(stack) >= 3:
            inits.append((op[1], stack[-3]))
            stack.clear()
        else:
            stack.clear()
    return inits, tls_base


@functools.cache
def shape(rel: str) -> Shape:
    data = (FIXTURES / rel).read_bytes()
    text = subprocess.run([wasm_tools(), "print", str(FIXTURES / rel)], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    s = Shape()
    for line in text.splitlines():
        if not line.startswith("  (") or line.startswith("  (func") or line.startswith("  (type"):
            continue
        if m := re.match(r'  \(import "([^"]+)" "([^"]+)" \(memory \(;0;\) (\d+)( \d+)?( shared)?',
                         line):
            s.memory_imported = (m[1], m[2])
            s.memory_min, s.memory_shared = int(m[3]), bool(m[5])
            s.memory_max = int(m[4]) if m[4] else None
        elif m := re.match(r"  \(memory \(;0;\) (\d+)( \d+)?( shared)?\)", line):
            s.memory_min, s.memory_shared = int(m[1]), bool(m[3])
            s.memory_max = int(m[2]) if m[2] else None
        elif m := re.match(r'  \(export "([^"]+)" \((\w+)', line):
            s.exports[m[1]] = m[2]
        elif m := re.match(r"  \(global (\$\S+ )?\(;\d+;\) (\(mut i32\)|i32) i32\.const (-?\d+)",
                           line):
            s.globals.append((m[1].strip() if m[1] else None, m[2] == "(mut i32)", int(m[3])))
        elif m := re.match(r"  \(data (\$\S+ )?\(;\d+;\)( \(i32\.const (\d+)\))?", line):
            s.data.append((m[1].strip() if m[1] else None, int(m[3]) if m[3] else None))
        elif m := re.match(r"  \(start (\S+?)\)", line):
            s.start = m[1]
    objdump = subprocess.run([wasm_tools(), "objdump", str(FIXTURES / rel)], capture_output=True,
                             text=True, check=True, timeout=60).stdout
    s.custom = re.findall(r'custom "([^"]+)"', objdump)
    if s.start:
        s.inits, s.tls_base_set = _parse_start(text, s.start)
    at = data.find(b"\x0ftarget_features")
    if at >= 0:
        s.target_features = data[at + 16: at + 600]
    return s


def has_feature(s: Shape, feature: str) -> bool:
    name = feature.encode()
    return b"+" + bytes([len(name)]) + name in s.target_features


# ---------------------------------------------------------------------------------------------
# manifest <-> files


def test_manifest_lists_every_committed_c_fixture() -> None:
    on_disk = {str(p.relative_to(FIXTURES)) for p in (FIXTURES / "c" / "wasm").glob("*.wasm")}
    listed = {f["file"] for f in C_FIXTURES}
    assert on_disk == listed
    assert len(listed) == len(C_FIXTURES), "a fixture is listed twice"


def test_every_producer_contributes_existing_programs() -> None:
    """The matrix list holds programs of C and of every other producer, all on disk."""
    by_toolchain: dict[str, int] = {}
    for program in programs.PROGRAMS:
        assert program.path.is_file(), program.id
        by_toolchain[program.toolchain] = by_toolchain.get(program.toolchain, 0) + 1
    assert set(by_toolchain) == {"c", *programs.PRODUCERS}


@pytest.mark.parametrize("producer", programs.PRODUCERS)
def test_missing_producer_manifest_is_an_error(producer: str, tmp_path: Path) -> None:
    """A lost manifest must stop the suite, not silently drop the producer from the matrix."""
    shutil.copy(FIXTURES / "manifest.json", tmp_path / "manifest.json")
    for sub in programs.PRODUCERS:
        if sub != producer:
            (tmp_path / sub).mkdir()
            shutil.copy(FIXTURES / sub / "manifest.json", tmp_path / sub / "manifest.json")
    with pytest.raises(FileNotFoundError, match=f"{producer}/manifest.json is missing"):
        programs.load(tmp_path)


@pytest.mark.parametrize("entry", C_FIXTURES, ids=fixture_id)
def test_committed_bytes_match_manifest(entry: dict[str, Any]) -> None:
    data = (FIXTURES / entry["file"]).read_bytes()
    assert len(data) == entry["size"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert len(data) < 16 * 1024, "fixtures are meant to stay a few KB"
    assert (FIXTURES / entry["source"]).is_file()
    assert entry["source"] in C_PROGRAMS


def test_every_program_has_every_variant() -> None:
    variants = {f["variant"] for f in C_FIXTURES if f["class"] in "AB"}
    for program in {f["program"] for f in C_FIXTURES if f["class"] in "AB"}:
        have = {f["variant"] for f in C_FIXTURES if f["program"] == program}
        assert have == variants, program
    assert {"A", "B", "D"} <= {f["class"] for f in C_FIXTURES}


@pytest.mark.parametrize("source", sorted(C_PROGRAMS))
def test_exit_code_table_matches_source(source: str) -> None:
    """Every rt_fail code in a program is documented, and every documented code exists."""
    text = (FIXTURES / source).read_text()
    used = set(re.findall(r"rt_fail\((\d+),", text))
    documented = {c for c in C_PROGRAMS[source]["exit_codes"] if int(c) >= 10}
    assert used == documented
    runtime = (FIXTURES / "c" / "rt.c").read_text()
    for name in ("RT_EXIT_USAGE", "RT_EXIT_SPAWN_FAILED", "RT_EXIT_TIMEOUT", "RT_EXIT_BAD_TID"):
        assert f"rt_fail({name}" in runtime


# ---------------------------------------------------------------------------------------------
# validity and shape


@pytest.mark.parametrize("entry", C_FIXTURES, ids=fixture_id)
def test_fixture_validates(entry: dict[str, Any]) -> None:
    assert_valid((FIXTURES / entry["file"]).read_bytes())


@pytest.mark.parametrize("entry", C_FIXTURES, ids=fixture_id)
def test_fixture_has_promised_shape(entry: dict[str, Any]) -> None:
    s = shape(entry["file"])
    assert s.memory_shared == entry["memory_shared"]
    assert (s.memory_imported == ("env", "memory")) == entry["memory_imported"]
    assert ("memory" in s.exports) == entry["memory_exported"]
    expected_max = entry["memory_max"] // PAGE if entry["memory_max"] is not None else None
    assert s.memory_max == expected_max

    modes = {"active" if offset is not None else "passive" for _, offset in s.data}
    assert modes == {entry["segments"]}

    present = TLS_EXPORTS & set(s.exports)
    assert present == (TLS_EXPORTS if entry["tls_exports"] else set())

    assert ("name" in s.custom) == entry["name_section"]
    if entry["name_section"]:
        assert s.globals[0][0] == "$__stack_pointer"
        if entry["memory_shared"]:
            assert s.start == "$__wasm_init_memory"
    else:
        assert "producers" not in s.custom
        assert all(name is None for name, _, _ in s.globals)
    assert ("target_features" in s.custom) == entry["target_features"]
    assert has_feature(s, "atomics") == (entry["class"] != "D")

    assert (s.start is not None) == (entry["start_function"] is not None)

    # the stack pointer: first global, mutable, non-zero, 16-aligned
    _, sp_mut, sp_init = s.globals[0]
    assert sp_mut and sp_init > 0 and sp_init % 16 == 0
    addresses = [dest for _, dest in s.inits] + [o for _, o in s.data if o is not None]
    assert addresses, "no data segment found"
    if entry["stack_first"]:
        assert sp_init <= min(addresses), "stack-first: data must lie above the stack"
    else:
        assert sp_init > max(addresses), "data-first: the stack must lie above the data"


def _tdata_address(s: Shape, entry: dict[str, Any]) -> int | None:
    """Address of the .tdata segment, or None when the program has no TLS variables."""
    if entry["memory_shared"]:
        # passive: .tdata is the segment the start function copies after setting __tls_base
        return s.tls_base_set
    names = [name for name, _ in s.data]
    if "$.tdata" in names:
        return s.data[names.index("$.tdata")][1]
    if names and names[0] is None:
        return s.data[0][1]  # no name section: lld emits .tdata as the first segment
    return None


@pytest.mark.parametrize("entry", [f for f in C_FIXTURES if f["class"] in "AB"], ids=fixture_id)
def test_tls_base_matches_class(entry: dict[str, Any]) -> None:
    """Class A: mutable __tls_base (init 0) set by the start function to the .tdata address.
    Class B: immutable __tls_base equal to the active .tdata offset (absent without TLS)."""
    s = shape(entry["file"])
    has_tls = entry["program"] in ("tls", "churn")
    if entry["class"] == "A":
        name, mutable, init = s.globals[1]
        assert mutable and init == 0
        if entry["name_section"]:
            assert name == "$__tls_base"
        if has_tls:
            assert s.tls_base_set is not None
            assert (("0" if not entry["name_section"] else "$.tdata"), s.tls_base_set) in s.inits
        else:
            assert s.tls_base_set is None
    else:
        immutable = [g for g in s.globals if not g[1]]
        if has_tls:
            assert len(immutable) == 1
            name, _, value = immutable[0]
            assert value == _tdata_address(s, entry)
            if entry["name_section"]:
                assert name == "$__tls_base"
        else:
            assert immutable == [], "lld emits no __tls_base for a non-shared module without TLS"
    if entry["tls_exports"]:
        size, align = s.globals[2][2], s.globals[3][2]
        if has_tls:
            assert size > 0 and align == 16
        else:
            assert size == 0 and align == 0  # lld reports align 0 when there is no TLS


# ---------------------------------------------------------------------------------------------
# running single-threaded on an independent runtime

RUNNABLE = [f for f in C_FIXTURES if f["memory_exported"]]


# The fast loop runs every program once (its non-shared variant); the full suite every module.
@pytest.mark.parametrize("entry", slow_unless(lambda f: f["variant"] in ("nonshared", "plain"),
                                              RUNNABLE, fixture_id))
def test_runs_single_threaded_on_wasmtime(entry: dict[str, Any]) -> None:
    """Argument 0 spawns no thread, so even the untransformed module runs on wasmtime 46."""
    program = C_PROGRAMS[entry["source"]]
    proc = run_wasmtime("46.0.1", FIXTURES / entry["file"], program["zero_thread_args"],
                        timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == program["zero_thread_stdout"]


@pytest.mark.parametrize("args", [["x"], ["9999"], [""]])
def test_bad_argument_exits_2(args: list[str]) -> None:
    proc = run_wasmtime("46.0.1", FIXTURES / "c/wasm/tls.nonshared.wasm", args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "tls: FAIL (exit 2)" in proc.stderr


def test_imported_memory_without_export_needs_threadify() -> None:
    """Why threadify exports the memory: WASI refuses a module that only imports it."""
    proc = run_wasmtime("46.0.1", FIXTURES / "c/wasm/tls.shared-import.wasm", ["0"], timeout=60)
    assert proc.returncode != 0
    assert "memory export" in proc.stderr


# ---------------------------------------------------------------------------------------------
# reproducibility


def _clang_version() -> str | None:
    if shutil.which("clang-22") is None or shutil.which("wasm-ld-22") is None:
        return None
    out = subprocess.run(["clang-22", "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.splitlines()[0] if out.returncode == 0 else None


@pytest.mark.slow
def test_rebuild_is_deterministic_and_matches_committed(tmp_path: Path) -> None:
    version = _clang_version()
    if version is None:
        pytest.skip("clang-22 / wasm-ld-22 not installed")
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        proc = subprocess.run(["bash", str(FIXTURES / "build.sh"), "--out", str(out)],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        outs.append({p.name: p.read_bytes() for p in out.glob("*.wasm")})
    assert outs[0] == outs[1], "two builds from the same sources differ"
    recorded = {f["compiler"] for f in C_FIXTURES}
    if recorded != {version}:
        pytest.skip(f"committed fixtures were built with {recorded}, this machine has {version}")
    committed = {Path(f["file"]).name: (FIXTURES / f["file"]).read_bytes() for f in C_FIXTURES}
    assert outs[0].keys() == committed.keys()
    differing = sorted(n for n in committed if committed[n] != outs[0][n])
    assert not differing, f"rebuilt fixtures differ from the committed ones: {differing}"


# ---------------------------------------------------------------------------------------------
# the checks can fail: a test-double thread start, correct and deliberately broken
#
# Class-A modules cannot run threads before threadify adds wasi_thread_start.  To show that the
# programs' success lines are earned and that their checks catch what they claim to catch, this
# attaches a minimal ABI-v1 wasi_thread_start written in WAT (two memory.grow-ed pages per
# thread: TLS at the bottom, stack top at the end; never reused).  It is a test double for the
# fixtures, not a model of threadify.

DOUBLE_VARIANT = "shared-import-tlsexports"  # names present, __wasm_init_tls exported


def _with_thread_start(entry: dict[str, Any], mode: str) -> bytes:
    s = shape(entry["file"])
    if mode == "share-tls":  # point the thread at the main thread's (static) TLS block
        tls = f"i32.const {s.tls_base_set or 0} global.set $__tls_base"
    else:
        tls = "local.get $base call $__wasm_init_tls"
    stack = "" if mode == "share-stack" else \
        "local.get $base i32.const 131072 i32.add global.set $__stack_pointer"
    extra = f"""
  (func $test_double_thread_start (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (local $func i32) (local $a i32) (local $base i32)
    local.get $arg i32.load local.set $func
    local.get $arg i32.load offset=4 local.set $a
    i32.const 2 memory.grow local.tee $base
    i32.const -1 i32.eq if unreachable end
    local.get $base i32.const 16 i32.shl local.set $base
    {tls}
    {stack}
    local.get $a local.get $func call_indirect (param i32))
"""
    text = subprocess.run([wasm_tools(), "print", str(FIXTURES / entry["file"])],
                          capture_output=True, text=True, check=True, timeout=60).stdout
    end = text.rindex(")")
    return wat2wasm(text[:end] + extra + text[end:])


DOUBLES = [f for f in C_FIXTURES if f["variant"] == DOUBLE_VARIANT]


@pytest.mark.parametrize("entry", slow_unless(lambda f: f["program"] == "tls", DOUBLES, fixture_id))
def test_program_passes_with_a_correct_thread_start(entry: dict[str, Any],
                                                    tmp_path: Path) -> None:
    path = tmp_path / "ok.wasm"
    path.write_bytes(_with_thread_start(entry, "correct"))
    proc = run_wasmtime("46.0.1", path, [], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert entry["stdout"] in proc.stdout


@pytest.mark.parametrize("program", ["tls", pytest.param("churn", marks=pytest.mark.slow)])
def test_shared_tls_is_detected(program: str, tmp_path: Path) -> None:
    """A thread running on the main thread's TLS block sees main's values, not the template."""
    entry = next(f for f in DOUBLES if f["program"] == program)
    path = tmp_path / "shared-tls.wasm"
    path.write_bytes(_with_thread_start(entry, "share-tls"))
    proc = run_wasmtime("46.0.1", path, [], timeout=120)
    if program == "tls":
        assert proc.returncode == 10, proc.stderr  # main personalised its copy before spawning
    else:
        assert proc.returncode in (10, 11, 15), proc.stderr
    assert "FAIL" in proc.stderr


def test_shared_stack_is_detected(tmp_path: Path) -> None:
    """Threads that keep the linker's stack pointer trample each other's (and main's) frames."""
    entry = next(f for f in DOUBLES if f["program"] == "stack")
    path = tmp_path / "shared-stack.wasm"
    path.write_bytes(_with_thread_start(entry, "share-stack"))
    proc = run_wasmtime("46.0.1", path, [], timeout=120)
    assert proc.returncode != 0
    assert entry["stdout"] not in proc.stdout
