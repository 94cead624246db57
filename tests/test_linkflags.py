"""The same threaded programs linked with the wasm-ld flags users pass (docs/matrix.md, "Link
flags"): every module in ``fixtures/linkflags/`` is classified as its manifest says, rejected
with the one-line reason when it must be (and accepted with the option that hint names), and its
output — made by the command line with ``--verify`` — validates and runs the program's own
checks on the bundled host, the wasmtime 36.0.9 / 46.0.1 CLIs, Node.js and Wasmer.

The variants cover exports (``--export-all``, single ``__tls_*`` exports, a renamed memory
export), layouts (``--global-base``, ``--stack-first``/``--no-stack-first``, ``-z stack-size``),
data segments (``--no-merge-data-segments``), tables (``--growable-table``), memory sizes (small,
maximum = initial, no maximum, ``--initial-heap``, a named memory import), stripping
(``--strip-all``, ``--strip-debug``, DWARF kept), code generation (``-O0``, ``-Os``, LTO,
SIMD + tail calls, no bulk-memory), reactors (``--no-entry``), C++ ``thread_local`` objects with
constructors and destructors, and lld 19. ``fixtures/linkflags/build.py`` builds them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import threadify
from tests.node_host import run_node_host
from tests.tooling import (
    FIXTURES,
    THREADS_FEATURES,
    WASMTIME_VERSIONS,
    assert_valid,
    wasmtime_cli,
    wasmtime_thread_flags,
)
from tests.wasmer_host import run_wasmer

HERE = FIXTURES / "linkflags"
MANIFEST: dict[str, Any] = json.loads((HERE / "manifest.json").read_text())
MODULES: list[dict[str, Any]] = MANIFEST["modules"]
HOSTS = ["threadify", *(f"wasmtime-{v}" for v in WASMTIME_VERSIONS), "node", "wasmer"]
#: Variants Wasmer 0.5.0 cannot run, for reasons of its own (docs/matrix.md, "Link flags"):
#: the substring of its refusal.
WASMER_CANNOT = {
    "shared-import-memory-named": 'importing "host"."mem": unknown import',
    "shared-simd-tailcall": "tail calls support is not enabled",
    "shared-bleeding-edge": "tail calls support is not enabled",
}


def ident(entry: dict[str, Any]) -> str:
    return f"{entry['program']}.{entry['variant']}"


def library_options(options: list[str]) -> dict[str, Any]:
    """The manifest's command-line options as ``threadify.transform`` keywords."""
    sizes = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    out: dict[str, Any] = {}
    words = iter(options)
    for word in words:
        if word == "--allow-non-atomic":
            out["allow_non_atomic"] = True
            continue
        value = next(words)
        number = int(value[:-3]) * sizes[value[-3:]] if value[-3:] in sizes else int(value)
        out[{"--stack-size": "stack_size", "--max-memory": "max_memory"}[word]] = number
    return out


def test_manifest_describes_the_committed_files() -> None:
    import hashlib

    listed = {entry["file"] for entry in MODULES}
    on_disk = {f"wasm/{p.name}" for p in (HERE / "wasm").glob("*.wasm")}
    assert listed == on_disk
    for entry in MODULES:
        data = (HERE / entry["file"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])


@pytest.mark.parametrize("entry", MODULES, ids=ident)
def test_class_and_rejection(entry: dict[str, Any]) -> None:
    """The library sees the class the manifest names; a class-D module is refused with its
    one-line reason, and the option the hint names makes it transformable."""
    data = (HERE / entry["file"]).read_bytes()
    report = threadify.inspect(data)
    if entry["class"] == "D":
        with pytest.raises(threadify.ThreadifyError) as caught:
            threadify.transform(data)
        assert entry["rejected"] in str(caught.value)
        assert "\n" not in caught.value.problem
        # a build tool applying the error's own suggestions gets an output
        suggested: dict[str, Any] = {s.option: True if s.value is None else s.value
                                     for s in caught.value.suggestions}
        if suggested:
            assert threadify.inspect(threadify.transform(data, **suggested)).verdict == "C"
        if not entry["options"]:
            return
        options = library_options(entry["options"])
        for keyword in options:
            # the hint names the keyword that fixes it, as a library caller writes it
            assert keyword in str(caught.value) or keyword == "stack_size", str(caught.value)
    else:
        assert report.verdict == entry["class"], report
        options = library_options(entry["options"])
    output = threadify.transform(data, **options)
    assert threadify.inspect(output).verdict == "C"
    assert output == threadify.transform(data, **options)  # deterministic


def cli_transform(entry: dict[str, Any], out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "threadify", str(HERE / entry["file"]), "-o", str(out),
           "--verify", *entry["options"]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def run_on(host: str, entry: dict[str, Any], path: Path) -> subprocess.CompletedProcess[str]:
    args = list(entry["args"])
    if host == "wasmer":
        run = run_wasmer(path, args, timeout=300, retry_abort=True)
        return subprocess.CompletedProcess([str(path)], run.returncode, run.stdout, run.stderr)
    if host == "node":
        return run_node_host(path, tuple(args), timeout=300)
    if host == "threadify":
        cmd = [sys.executable, "-m", "threadify", "run", str(path)]
        if args:
            cmd += ["--", *args]
    else:
        version = host.removeprefix("wasmtime-")
        cmd = [str(wasmtime_cli(version)), "run", *wasmtime_thread_flags(version)]
        if entry["entry"] != "_start":
            cmd += ["--invoke", entry["entry"]]
        cmd += [str(path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


RUN_CELLS = [
    pytest.param(entry, host, id=f"{ident(entry)}-{host}",
                 marks=() if not entry["slow"] and host == "threadify" else pytest.mark.slow)
    for entry in MODULES if entry["run"]
    for host in HOSTS
    # the bundled host, Node and Wasmer run commands (_start); a reactor's function is invoked
    # on wasmtime
    if host.startswith("wasmtime") or entry["entry"] == "_start"
]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Outputs made by the command line with ``--verify``, built once per module on demand."""
    return {"dir": tmp_path_factory.mktemp("linkflags")}


@pytest.mark.parametrize(("entry", "host"), RUN_CELLS)
def test_output_runs(entry: dict[str, Any], host: str, outputs: dict[str, Path]) -> None:
    out = outputs["dir"] / f"{ident(entry)}.wasm"
    if ident(entry) not in outputs:
        proc = cli_transform(entry, out)
        assert proc.returncode == 0, proc.stderr
        assert "verified" in proc.stderr, proc.stderr
        assert_valid(out.read_bytes(), THREADS_FEATURES)
        outputs[ident(entry)] = out
    proc = run_on(host, entry, out)
    detail = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    if host == "wasmer" and entry["variant"] in WASMER_CANNOT:
        # a documented limit of that host: it refuses the module, saying why
        assert proc.returncode != 0 and WASMER_CANNOT[entry["variant"]] in proc.stderr, detail
        return
    assert proc.returncode == entry["exit_code"], detail
    if entry["exit_code"] == 0:
        assert entry["stdout"] in proc.stdout, detail
    else:
        assert f"FAIL (exit {entry['exit_code']})" in proc.stderr, detail


STACK_CHECK_CELLS = [
    pytest.param(entry, id=ident(entry), marks=pytest.mark.slow)
    for entry in MODULES if entry["run"]
]


@pytest.mark.parametrize("entry", STACK_CHECK_CELLS)
def test_stack_check_output_runs(entry: dict[str, Any], tmp_path: Path) -> None:
    """``--stack-check`` on every link variant: the checked output verifies and runs the
    program's checks unchanged on the bundled host and wasmtime 46 (docs/stack-check.md)."""
    out = tmp_path / "checked.wasm"
    proc = subprocess.run(
        [sys.executable, "-m", "threadify", str(HERE / entry["file"]), "-o", str(out),
         "--stack-check", "--verify", *entry["options"]],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    hosts = ["wasmtime-46.0.1"] + (["threadify"] if entry["entry"] == "_start" else [])
    for host in hosts:
        run = run_on(host, entry, out)
        detail = f"{host}: exit {run.returncode}\n{run.stdout}\n{run.stderr}"
        assert run.returncode == entry["exit_code"], detail
        assert entry["stdout"] in run.stdout, detail
