"""Differential tests on csmith programs (``fixtures/csmith/``): random C, built as ordinary WASI
commands against wasi-libc, prints the same checksum of its globals — and the same hash of its
whole static data — before and after threadify, on the bundled host and the wasmtime CLIs.

csmith's programs compute over globals of many sizes and alignments in ``.data``, ``.bss`` and
``.rodata``; a byte the rewrite moved, wrote twice or lost changes their output. The programs
built with atomics run ``fixtures/csmith/spawn_main.c`` as their entry: after csmith's own main
it has a new thread (a new instance) hash the static data again, which must equal the main
thread's hash — a later instance that re-wrote the data segments would change it.
``fixtures/csmith/differential.py`` generates more programs and runs the same comparison
(docs/matrix.md, "csmith").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.tooling import (
    FIXTURES,
    THREADS_FEATURES,
    WASMTIME_VERSIONS,
    assert_valid,
    run_wasmtime,
)

HERE = FIXTURES / "csmith"
MODULES: list[dict[str, Any]] = json.loads((HERE / "manifest.json").read_text())["modules"]
HOSTS = ["threadify", *(f"wasmtime-{v}" for v in WASMTIME_VERSIONS)]


def transform(entry: dict[str, Any], out_dir: Path) -> Path:
    """The command line's output, under the original's file name (argv[0] is in the data)."""
    out = out_dir / str(entry["file"])
    cmd = [sys.executable, "-m", "threadify", str(HERE / entry["file"]), "-o", str(out)]
    if not entry["atomics"]:
        cmd.append("--allow-non-atomic")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_valid(out.read_bytes(), THREADS_FEATURES)
    return out


def run(host: str, path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    if host == "threadify":
        cmd = [sys.executable, "-m", "threadify", "run", str(path), "--", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return run_wasmtime(host.removeprefix("wasmtime-"), path, args, timeout=300)


CELLS = [pytest.param(entry, host, id=f"{entry['file']}-{host}",
                      marks=() if (i, host) == (0, "threadify") else pytest.mark.slow)
         for i, entry in enumerate(MODULES) for host in HOSTS]


#: An argument as long as ``nothreads`` (the original's): wasi-libc keeps argv on its heap, so
#: equal lengths leave its allocator in the same state.
THREADS_ARG = "threads-1"


def checksum_and_hashes(text: str) -> tuple[str, str | None, str | None]:
    lines = dict(line.split(" = ", 1) for line in text.splitlines())
    return lines["checksum"], lines.get("data hash"), lines.get("thread data hash")


@pytest.mark.parametrize(("entry", "host"), CELLS)
def test_output_prints_what_the_original_printed(entry: dict[str, Any], host: str,
                                                 tmp_path: Path) -> None:
    """The csmith checksum is the original's; a new thread hashes the same static data as the
    main thread did."""
    out = transform(entry, tmp_path)
    proc = run(host, out, [THREADS_ARG] if entry["atomics"] else [])
    assert proc.returncode == 0, proc.stderr
    checksum, data_hash, thread_hash = checksum_and_hashes(proc.stdout)
    assert checksum == checksum_and_hashes(entry["stdout"])[0]
    if entry["atomics"]:
        assert thread_hash == f"{data_hash} same", proc.stdout


def test_wasi_libc_heap_stays_clear_of_the_control_block(tmp_path: Path) -> None:
    """``fixtures/wasilibc/heap.c`` allocates 256 KiB and reports whether any chunk overlaps
    threadify's control block (the address the output's ``threadify`` section records), then
    starts a thread. wasi-libc of 2022 (Debian's) hands malloc every page up to
    ``memory.size`` at its first call: a control block on a page grown past the initial memory
    was overwritten and the thread start then hung (docs/abi.md, "Memory layout")."""
    import threadify
    from threadify import abi
    from threadify.wasm import Module

    out = tmp_path / "heap.wasm"
    out.write_bytes(threadify.transform((FIXTURES / "wasilibc" / "heap.wasm").read_bytes()))
    section = Module.decode(out.read_bytes()).get_custom("threadify")
    assert section is not None
    control = int(json.loads(bytes(section))["control_block"])
    proc = run("threadify", out, [str(control), str(abi.CONTROL_BYTES)])
    assert "heap: 64 chunks, overlap=no" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0 and "thread joined" in proc.stdout, proc.stdout


def _transformed(name: str, tmp_path: Path) -> Path:
    import threadify

    out = tmp_path / name
    out.write_bytes(threadify.transform((FIXTURES / "wasilibc" / name).read_bytes()))
    return out


def test_thread_started_before_the_first_malloc_loses_its_block(tmp_path: Path) -> None:
    """Documented cell that cannot work (docs/matrix.md): wasi-libc of 2022 hands malloc, at its
    first call, every page up to ``memory.size`` — a thread block grown before that included.
    ``fixtures/wasilibc/early.c`` (``int main(void)``: nothing allocated before main) starts a
    thread, then allocates 512 KiB: the heap overwrites the thread block's header, and the
    canary check traps when the thread ends (the program waits for that end before it exits,
    so the trap is certain)."""
    proc = run("threadify", _transformed("early.wasm", tmp_path), [])
    assert proc.returncode != 0, proc.stdout
    assert "threadify_stack_overflow" in proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize("host", ["threadify", "wasmtime-46.0.1"])
def test_allocating_once_before_the_first_thread_avoids_it(host: str, tmp_path: Path) -> None:
    """The workaround docs/matrix.md gives: allocate once before starting the first thread."""
    proc = run(host, _transformed("early.warm.wasm", tmp_path), [])
    assert proc.returncode == 0, proc.stderr
    assert "thread frame intact" in proc.stdout
