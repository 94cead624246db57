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
constructors and destructors, lld 19, and more: ``--max-memory`` of 4 GiB, 2 KiB and 8 MiB main
stacks, ``--export-dynamic``, ``--gc-sections``/``--no-gc-sections``, ``--emit-relocs``, an
imported memory also exported, ``--import-table`` and ``--import-undefined`` (transformed, but
no WASI host can provide their imports), ``-O1``/``-O3``/``-Oz``, reactors exporting
``_initialize``, ``-shared`` (rejected), 100 000 bytes of TLS and thread-locals aligned to 64 B,
4 KiB and 8 KiB (``bigtls.c``), modules with only zero-initialised data (``bss.c``) and C++
exceptions in every thread (``eh.cpp``, ``-fwasm-exceptions``). ``fixtures/linkflags/build.py``
builds them.
"""

from __future__ import annotations

import json
import shutil
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
from threadify import abi, pipeline
from threadify.passes.stack_check import RED_ZONE
from threadify.wasm import Module
from threadify.wasm import sections as S
from threadify.wasm.reader import Reader, uleb32_at

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
        cmd = [str(wasmtime_cli(version)), "run", *wasmtime_flags(version, entry)]
        if entry["entry"] != "_start":
            cmd += ["--invoke", entry["entry"]]
        cmd += [str(path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def wasmtime_flags(version: str, entry: dict[str, Any]) -> list[str]:
    """WASI-threads flags, plus the wasm features the module needs (e.g. exceptions)."""
    flags = wasmtime_thread_flags(version)
    if entry.get("wasmtime_features"):
        at = flags.index("-W") + 1
        flags[at] = f"{flags[at]},{entry['wasmtime_features']}"
    return flags


def runs_on(entry: dict[str, Any], host: str) -> bool:
    """Whether ``host`` can run the module at all: a module using a proposal some hosts lack
    lists the ones that have it (the manifest's ``hosts``)."""
    return entry.get("hosts") is None or host in entry["hosts"]


RUN_CELLS = [
    pytest.param(entry, host, id=f"{ident(entry)}-{host}",
                 marks=() if not entry["slow"] and host == "threadify" else pytest.mark.slow)
    for entry in MODULES if entry["run"]
    for host in HOSTS
    # the bundled host, Node and Wasmer run commands (_start); a reactor's function is invoked
    # on wasmtime
    if (host.startswith("wasmtime") or entry["entry"] == "_start") and runs_on(entry, host)
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
    for host in filter(lambda h: runs_on(entry, h), hosts):
        run = run_on(host, entry, out)
        detail = f"{host}: exit {run.returncode}\n{run.stdout}\n{run.stderr}"
        assert run.returncode == entry["exit_code"], detail
        assert entry["stdout"] in run.stdout, detail


def test_imported_table_cannot_be_verified(tmp_path: Path) -> None:
    """``--import-table``: the output is made, but ``--verify`` cannot run it (the embedder's
    table is not the bundled host's to give) and says so in one line plus the way out."""
    entry = next(e for e in MODULES if e["variant"] == "shared-import-table")
    out = tmp_path / "out.wasm"
    proc = cli_transform(entry, out)
    assert proc.returncode == 1 and not out.exists(), proc.stderr
    problem, hint = proc.stderr.strip().splitlines()
    assert "function table is imported (--import-table)" in problem
    assert "without verifying" in hint
    plain = subprocess.run([sys.executable, "-m", "threadify", str(HERE / entry["file"]), "-o",
                            str(out)], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert_valid(out.read_bytes(), THREADS_FEATURES)


#: ``bigtls``'s recursion: one 128-byte frame per level (``volatile uint32_t[32]``, nothing
#: else kept on the stack), so a stack of S bytes holds about S / 128 levels.
FRAME = 128
MAIN_STACK = 65536        # lld's default -z stack-size
THREAD_STACK = 16 * 1024  # --stack-size below


def _depth_cells() -> list[Any]:
    red = RED_ZONE  # the checks keep it free (docs/stack-check.md)
    cells = [
        # (name, threadify options, program args, the thread that overflows or None); the
        # main stack loses the control block at its top
        ("main-near-limit", [], ["0", str((MAIN_STACK - abi.CONTROL_BYTES - red) // FRAME - 4)],
         None),
        ("main-overflow", [], ["0", str(MAIN_STACK // FRAME + 1)], "main thread"),
        ("thread-near-limit", ["--stack-size", "16KiB"],
         ["2", str((THREAD_STACK - red) // FRAME - 1)], None),
        ("thread-overflow", ["--stack-size", "16KiB"], ["2", str(THREAD_STACK // FRAME + 1)],
         "thread"),
    ]
    return [pytest.param(*cell, host, id=f"{cell[0]}-{host}", marks=pytest.mark.slow)
            for cell in cells for host in ("threadify", "wasmtime-46.0.1")]


@pytest.mark.parametrize(("name", "options", "args", "overflows", "host"), _depth_cells())
def test_stack_check_near_limit_and_overflow(name: str, options: list[str], args: list[str],
                                             overflows: str | None, host: str,
                                             tmp_path: Path) -> None:
    """``--stack-check`` on 100 000 bytes of TLS (``bigtls.shared-100k``): recursion that
    nearly fills the main thread's or a spawned thread's stack runs to the end; one frame too
    many traps in ``threadify_stack_overflow``, named by the host, in the thread that
    overflowed (docs/stack-check.md)."""
    entry = next(e for e in MODULES if ident(e) == "bigtls.shared-100k")
    out = tmp_path / "checked.wasm"
    made = subprocess.run([sys.executable, "-m", "threadify", str(HERE / entry["file"]), "-o",
                           str(out), "--stack-check", *options],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    proc = run_on(host, {**entry, "args": args}, out)
    detail = f"{name} on {host}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    if overflows is None:
        assert proc.returncode == 0 and f"bigtls threads={args[0]} ok" in proc.stdout, detail
        return
    assert proc.returncode != 0 and "threadify_stack_overflow" in proc.stderr, detail
    assert "recurse" in proc.stderr, detail  # the frame that overflowed
    if host == "threadify":
        assert f"{overflows} " in proc.stderr.splitlines()[-1], detail


def _debug_sections(module: Module) -> list[str]:
    return [name for name in module.custom_names() if name.startswith(".debug_")]


DEBUG_CELLS = [pytest.param(entry, id=ident(entry)) for entry in MODULES
               if entry["class"] in ("A", "B")
               and b".debug_info" in (HERE / entry["file"]).read_bytes()]


@pytest.mark.parametrize("entry", DEBUG_CELLS)
def test_debug_info_is_kept_only_where_code_stays(entry: dict[str, Any]) -> None:
    """DWARF addresses code by its offset in the code section. Whatever the output keeps of it
    must still match: every body of the input at the same offset (docs/abi.md, "Preserved").
    ``manyfuncs`` has 124 bodies: threadify's functions push the count past 127, its LEB
    grows a byte and every body moves, so the DWARF is dropped, and a warning says so."""
    data = (HERE / entry["file"]).read_bytes()
    before = Module.decode(data)
    options = library_options(entry["options"])
    moves = entry["program"] == "manyfuncs"
    if moves:
        assert 119 <= before.function_count() <= 127 and before.code_count_width() == 1
        with pytest.warns(UserWarning, match="function count one byte longer.*dropped .debug_"):
            output = threadify.transform(data, **options)
    else:
        output = threadify.transform(data, **options)
    after = Module.decode(output)
    offsets = before.code_body_offsets()
    if moves:
        assert after.code_body_offsets()[:len(offsets)] != offsets
        assert not _debug_sections(after)
    else:
        assert after.code_body_offsets()[:len(offsets)] == offsets
        assert _debug_sections(after) == _debug_sections(before)


RELOC_CELLS = [pytest.param(entry, id=ident(entry)) for entry in MODULES
               if "--emit-relocs" in entry["link_flags"]]


@pytest.mark.parametrize("entry", RELOC_CELLS)
def test_relocations_follow_the_layout(entry: dict[str, Any]) -> None:
    """``--emit-relocs`` keeps lld's relocations: ``reloc.CODE`` (offsets into the code section,
    whose bodies threadify leaves where they are) stays; ``reloc.DATA`` (offsets into the data
    section) stays only when the data section does, and goes when active segments are made
    passive (class B); ``--stack-check`` moves code, so ``reloc.CODE`` goes then."""
    data = (HERE / entry["file"]).read_bytes()
    before = set(Module.decode(data).custom_names())
    after = set(Module.decode(threadify.transform(data)).custom_names())
    assert "reloc.CODE" in before and "reloc.CODE" in after
    if "reloc.DATA" in before:
        assert ("reloc.DATA" in after) == (entry["class"] == "A")
    with pytest.warns(UserWarning, match="dropped .*reloc.CODE"):
        checked = set(Module.decode(threadify.transform(data, stack_check=True)).custom_names())
    assert "reloc.CODE" not in checked


def _section_keys(module: Module) -> list[int | str]:
    """The module's sections in order: a known section by its id, a custom one by its name."""
    names = iter(module.custom_names())
    return [next(names) if sid == 0 else sid for sid in module.section_ids()]


def _reloc_targets(module: Module) -> dict[str, int | str]:
    """What each ``reloc.*`` section applies to: the id of its target section, or the name of
    a custom one. Its payload starts with the target's index among all the module's sections
    (the linking convention), so a section added or removed before the target moves it."""
    keys = _section_keys(module)
    targets: dict[str, int | str] = {}
    for name, payload in module.custom_sections():
        if name.startswith("reloc."):
            index, _end = uleb32_at(payload, 0, len(payload))
            targets[name] = keys[index]
    return targets


@pytest.mark.parametrize("entry", RELOC_CELLS)
def test_relocations_name_their_section(entry: dict[str, Any]) -> None:
    """The relocations threadify keeps still name the section they apply to, although class B
    takes out the memory section and adds the start and data count sections before the code:
    ``reloc.CODE`` applies to the code section, ``reloc.DATA`` to the data section."""
    data = (HERE / entry["file"]).read_bytes()
    before = _reloc_targets(Module.decode(data))
    after = _reloc_targets(Module.decode(threadify.transform(data)))
    assert before["reloc.CODE"] == after["reloc.CODE"] == S.CODE
    for name, target in after.items():
        assert before[name] == target, name


def test_source_map_is_dropped_as_the_code_moves_in_the_file() -> None:
    """A source map's columns are byte offsets in the whole ``.wasm`` file (the tool
    conventions' Debugging.md), not in the code section as DWARF's addresses are. threadify
    always lengthens sections before the code (types, functions, globals, exports), so every
    instruction's file offset moves and the map would point at the wrong bytes: the
    ``sourceMappingURL`` section goes, with a warning, while DWARF stays."""
    module = Module.decode((HERE / "wasm/tls.shared-debug.wasm").read_bytes())
    module.set_custom("sourceMappingURL", b"\x0ftls.wasm.map.js")
    data = module.encode()
    with pytest.warns(UserWarning, match="source map.*dropped sourceMappingURL"):
        output = threadify.transform(data)
    after = Module.decode(output)
    code_before, code_after = Module.decode(data).code_payload(), after.code_payload()
    assert code_before is not None and code_after is not None
    assert code_after[1] > code_before[1]  # the code starts later in the file
    assert "sourceMappingURL" not in after.custom_names()
    assert _debug_sections(after) == _debug_sections(Module.decode(data))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wasm-opt") is None, reason="binaryen's wasm-opt not installed")
@pytest.mark.parametrize("variant", ["nonshared", "shared-import"])
def test_wasm_opt_after_threadify_keeps_threads_working(variant: str, tmp_path: Path) -> None:
    """docs/inputs.md, "Optimised after linking": run wasm-opt after threadify, not before. Its
    output, optimised with threads enabled, still validates and runs the program's threads and
    TLS checks (on the bundled host and wasmtime 46)."""
    entry = next(e for e in MODULES if e["program"] == "tls" and e["variant"] == variant)
    made, optimised = tmp_path / "made.wasm", tmp_path / "optimised.wasm"
    made.write_bytes(threadify.transform((HERE / entry["file"]).read_bytes()))
    subprocess.run(["wasm-opt", "-O2", "--enable-threads", "--enable-bulk-memory",
                    "--enable-mutable-globals", "--enable-sign-ext",
                    "--enable-nontrapping-float-to-int", str(made), "-o", str(optimised)],
                   check=True, capture_output=True, timeout=300)
    assert optimised.read_bytes() != made.read_bytes()
    assert_valid(optimised.read_bytes(), THREADS_FEATURES)
    for host in ("threadify", "wasmtime-46.0.1"):
        run = run_on(host, entry, optimised)
        assert run.returncode == 0 and entry["stdout"] in run.stdout, (host, run.stderr)


def test_external_debug_info_follows_the_dwarf() -> None:
    """``external_debug_info`` names a separate file of DWARF for this module (``-gseparate-
    dwarf`` builds): it counts from the code section as the embedded DWARF does, so it is kept
    while the bodies stay where they were and dropped, with the DWARF, when ``--stack-check``
    moves them."""
    module = Module.decode((HERE / "wasm/tls.shared-debug.wasm").read_bytes())
    module.set_custom("external_debug_info", b"\x0dtls.debug.wasm")
    data = module.encode()
    kept = Module.decode(threadify.transform(data)).custom_names()
    assert "external_debug_info" in kept and _debug_sections(Module.decode(data))
    with pytest.warns(UserWarning, match="dropped .*external_debug_info"):
        checked = Module.decode(threadify.transform(data, stack_check=True)).custom_names()
    assert "external_debug_info" not in checked


def test_stripped_features_name_the_flag_that_keeps_them() -> None:
    """``--strip-all`` removes ``target_features``, and a non-shared module then cannot show
    that its code has atomics: the fix names wasm-ld's ``--keep-section=target_features``, and
    the same program linked so is accepted (class B)."""
    by_variant = {e["variant"]: e for e in MODULES if e["program"] == "tls"}
    with pytest.raises(threadify.ThreadifyError) as caught:
        threadify.transform((HERE / by_variant["nonshared-strip-all"]["file"]).read_bytes())
    assert "--keep-section=target_features" in str(caught.value.fix)
    kept = by_variant["nonshared-Os-stripped"]
    assert "--strip-all --keep-section=target_features" in kept["link_flags"]
    assert threadify.inspect((HERE / kept["file"]).read_bytes()).verdict == "B"


def test_malformed_relocations_are_left_as_they_are() -> None:
    """A ``reloc.*`` section whose target index cannot be read (cut short) names no section:
    it is copied as it came rather than rewritten into one that names some section."""
    module = Module.decode((HERE / "wasm/tls.nonshared.wasm").read_bytes())
    module.set_custom("reloc.X", b"\x80")
    after = Module.decode(threadify.transform(module.encode()))
    assert after.get_custom("reloc.X") == b"\x80"


def test_dropped_section_names_stay_on_one_line() -> None:
    """A warning names the sections it dropped, and a module may name a custom section
    anything: a line break in ``.debug_*``'s name is escaped, so the warning stays one line
    (it could otherwise forge a ``threadify: error:`` line of its own)."""
    module = Module.decode((HERE / "wasm/tls.shared-debug.wasm").read_bytes())
    module.set_custom(".debug_x\nthreadify: error: forged", b"")
    data = module.encode()
    texts = pipeline.run(data, pipeline.Options(stack_check=True))
    (warning,) = texts.warning_texts()
    assert "\n" not in warning and ".debug_x\\nthreadify: error: forged" in warning


def test_relocations_of_dropped_dwarf_go_with_it() -> None:
    """``-g --emit-relocs`` adds ``reloc..debug_info`` and its like, naming a ``.debug_*``
    section by index: kept and still naming it while the DWARF stays, dropped with it when
    ``--stack-check`` moves code (they would name some other section, or none)."""
    module = Module.decode((HERE / "wasm/tls.shared-debug.wasm").read_bytes())
    index = _section_keys(module).index(".debug_info")
    module.set_custom("reloc..debug_info", bytes([index]) + b"\x00")
    data = module.encode()
    kept = _reloc_targets(Module.decode(threadify.transform(data)))
    assert kept == {"reloc..debug_info": ".debug_info"}
    result = pipeline.run(data, pipeline.Options(stack_check=True))
    assert "dropped .debug_" in result.warning_texts()[0]
    assert "reloc..debug_info" not in Module.decode(result.output).custom_names()
    assert any("reloc..debug_info" in change and "dropped" in change for change in result.changes)


def _section_symbols(module: Module) -> list[int | str]:
    """The sections the ``linking`` section's SECTION symbols name (tool conventions'
    Linking.md: subsection 8 is the symbol table, kind 3 a section, its index among all the
    module's sections), as :func:`_reloc_targets` names them."""
    keys = _section_keys(module)
    payload = module.get_custom("linking")
    assert payload is not None
    r = Reader(payload)
    r.uleb()  # version
    out: list[int | str] = []
    while not r.at_end():
        kind, size = r.u8(), r.uleb()
        body = Reader(r.take(size))
        if kind != 8:
            continue
        for _ in range(body.uleb()):
            sym, flags = body.u8(), body.uleb()
            if sym == 3:
                out.append(keys[body.uleb()])
            elif sym == 1:
                body.name()
                if not flags & 0x10:
                    body.uleb(), body.uleb(), body.uleb()
            else:
                body.uleb()
                if not flags & 0x10 or flags & 0x40:
                    body.name()
    return out


def test_section_symbols_name_their_section() -> None:
    """``-g --emit-relocs``: the ``linking`` section's symbol table has a symbol for every
    ``.debug_*`` section, naming it by its index among all sections, as the ``reloc.*``
    sections do; class B's section changes would make ``.debug_line``'s the data section's.
    Each still names its own section, and so do the relocations of the DWARF."""
    data = (HERE / "wasm/tls.nonshared-debug-emit-relocs.wasm").read_bytes()
    before = Module.decode(data)
    after = Module.decode(threadify.transform(data))
    symbols = _section_symbols(before)
    assert symbols and all(str(s).startswith(".debug_") for s in symbols)
    assert _section_symbols(after) == symbols
    assert _reloc_targets(after) == _reloc_targets(before)
    assert any(name.startswith("reloc..debug_") for name in _reloc_targets(after))
    # --stack-check drops the DWARF: the symbols naming it, and so the whole symbol table and
    # every relocation into it, go too
    result = pipeline.run(data, pipeline.Options(stack_check=True))
    names = Module.decode(result.output).custom_names()
    assert "linking" not in names and not any(n.startswith("reloc.") for n in names)
    assert any(change.startswith("linking, reloc..debug_info") for change in result.changes)
