"""The transform's promises on real compiler output: what changes and what does not
(docs/inputs.md, docs/abi.md).

Runtime behaviour (the programs' own checks on real hosts) is in ``test_matrix.py``; here every
output is validated with ``wasm-tools`` and its structure compared with the input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import threadify
from tests.programs import READY, REJECTED, TRANSFORMABLE, Program
from tests.tooling import FIXTURES, THREADS_FEATURES, assert_valid, run_wasmtime, wat2wasm
from threadify import abi, host
from threadify.linker import const_i32
from threadify.wasm import Export, ExternKind, MemoryType, Module, Producers

IDS = [p.id for p in TRANSFORMABLE]


@pytest.fixture(scope="module")
def outputs() -> dict[str, bytes]:
    return {p.id: threadify.transform(p.path.read_bytes()) for p in TRANSFORMABLE}


@pytest.mark.parametrize("program", TRANSFORMABLE, ids=IDS)
def test_output_validates_with_threads(program: Program, outputs: dict[str, bytes]) -> None:
    assert_valid(outputs[program.id], THREADS_FEATURES)


@pytest.mark.parametrize("program", TRANSFORMABLE, ids=IDS)
def test_output_abi(program: Program, outputs: dict[str, bytes]) -> None:
    before = Module.decode(program.path.read_bytes())
    after = Module.decode(outputs[program.id])
    # Memory: exactly one, shared, imported, exported as "memory", with a maximum.
    assert after.memories == []
    mems = [imp for imp in after.imports if imp.kind == ExternKind.MEMORY]
    assert len(mems) == 1
    mem = mems[0].desc
    assert isinstance(mem, MemoryType) and mem.shared and mem.max is not None
    old_imported = [imp for imp in before.imports if imp.kind == ExternKind.MEMORY]
    if old_imported:
        assert (mems[0].module, mems[0].name) == (old_imported[0].module, old_imported[0].name)
        old = old_imported[0].desc
    else:
        assert (mems[0].module, mems[0].name) == ("env", "memory")
        old = before.memories[0]
    assert isinstance(old, MemoryType)
    assert mem.min == old.min
    assert mem.max == (old.max if old.max is not None else (1 << 30) // 65536)
    exports = {e.name: e for e in after.exports}
    assert exports["memory"].kind == ExternKind.MEMORY
    assert exports["wasi_thread_start"].kind == ExternKind.FUNC
    assert after.func_type(exports["wasi_thread_start"].index).params == (0x7F, 0x7F)
    assert exports["threadify_thread_destroy"].kind == ExternKind.FUNC
    # No active segments are left: data is written once, by the first instance.
    assert all(seg.passive for seg in after.data)
    assert after.data_count == len(after.data)


@pytest.mark.parametrize("program", TRANSFORMABLE, ids=IDS)
def test_existing_items_and_bodies_preserved(program: Program,
                                             outputs: dict[str, bytes]) -> None:
    before = Module.decode(program.path.read_bytes())
    after = Module.decode(outputs[program.id])
    # Indices keep their meaning: every existing function, global, table and segment is there.
    assert after.functions[:len(before.functions)] == before.functions
    assert [bytes(b.raw) for b in after.code[:len(before.code)]] == [
        bytes(b.raw) for b in before.code]
    assert len(after.globals) >= len(before.globals)
    record = json.loads(bytes(after.get_custom("threadify") or b"{}"))
    stack_pointer = int(record["stack_pointer"]) - before.num_imported(ExternKind.GLOBAL)
    for index, (old, new) in enumerate(zip(before.globals, after.globals, strict=False)):
        assert old.type.valtype == new.type.valtype
        if index == stack_pointer and record.get("control_on_stack"):
            # the control block tops the linker's stack: the stack starts that much lower
            # (docs/abi.md, "Memory layout")
            old_top, new_top = const_i32(old.init), const_i32(new.init)
            assert old_top is not None and new_top == old_top - abi.CONTROL_BYTES
            assert new_top == record["control_block"]
        else:
            assert old.init == new.init
    assert [bytes(s.init) for s in after.data] == [bytes(s.init) for s in before.data]
    assert after.types[:len(before.types)] == before.types
    # Exports of the input are unchanged (threadify only adds).
    assert after.exports[:len(before.exports)] == before.exports
    # Custom sections of the input survive (name/producers are extended, others identical).
    old_custom = dict(before.custom_sections())
    new_custom = dict(after.custom_sections())
    for name, payload in old_custom.items():
        assert name in new_custom
        if name not in ("name", "producers"):
            assert new_custom[name] == payload


def _leb(raw: bytes, pos: int) -> tuple[int, int]:
    """(value, position after) of the unsigned LEB128 at ``raw[pos]``."""
    value = shift = 0
    while True:
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _code_section_bodies(raw: bytes) -> list[tuple[int, bytes]]:
    """(offset inside the code section, bytes) of every function body, read independently of
    the binary layer (so that it checks it)."""
    pos = 8
    while pos < len(raw):
        section_id = raw[pos]
        size, pos = _leb(raw, pos + 1)
        if section_id == 10:
            start = pos
            count, p = _leb(raw, pos)
            bodies = []
            for _ in range(count):
                body_size, p = _leb(raw, p)
                bodies.append((p - start, raw[p:p + body_size]))
                p += body_size
            return bodies
        pos += size
    return []


@pytest.mark.parametrize("program", TRANSFORMABLE, ids=IDS)
def test_function_bodies_keep_their_offsets(program: Program,
                                            outputs: dict[str, bytes]) -> None:
    """DWARF addresses code by offset inside the code section: existing bodies must not move."""
    before = _code_section_bodies(program.path.read_bytes())
    after = _code_section_bodies(outputs[program.id])
    assert after[:len(before)] == before


@pytest.mark.parametrize("program", TRANSFORMABLE[:3] + TRANSFORMABLE[-4:],
                         ids=IDS[:3] + IDS[-4:])
def test_deterministic_and_idempotent(program: Program, outputs: dict[str, bytes]) -> None:
    data = program.path.read_bytes()
    out = outputs[program.id]
    assert threadify.transform(data) == out
    assert threadify.transform(out) == out  # class C: its own output is already thread-ready
    assert threadify.inspect(out).verdict == "C"


@pytest.mark.parametrize("program", TRANSFORMABLE[:2], ids=IDS[:2])
def test_metadata(program: Program, outputs: dict[str, bytes]) -> None:
    after = Module.decode(outputs[program.id])
    producers = Producers.decode(after.get_custom("producers") or b"\x00")
    assert ("threadify", threadify.__version__) in producers.fields["processed-by"]
    record = json.loads(after.get_custom("threadify") or b"{}")
    assert record["abi"] == 1 and record["version"] == threadify.__version__
    names = after.names()
    assert names is not None
    for name, index in record["functions"].items():
        assert names.functions[index] == name
    for name, index in record["globals"].items():
        assert names.globals[index] == name


def test_options_change_the_layout() -> None:
    program = next(p for p in TRANSFORMABLE if p.klass == "A" and "tls" in p.id)
    data = program.path.read_bytes()
    small = Module.decode(threadify.transform(data, stack_size=64 * 1024, max_memory=32 << 20))
    record = json.loads(small.get_custom("threadify") or b"{}")
    assert record["stack_size"] == 64 * 1024
    assert record["block_size"] == 2 * 65536  # 64 KiB stack + header + TLS -> two pages
    mem = next(i.desc for i in small.imports if i.kind == ExternKind.MEMORY)
    assert isinstance(mem, MemoryType) and mem.max == 512


@pytest.mark.parametrize("kwargs,message", [
    ({"stack_size": 1000}, "multiple of 16"),
    ({"stack_size": 0}, "multiple of 16"),
    ({"max_memory": 1000}, "multiple of 64 KiB"),
    ({"max_memory": 1 << 33}, "4 GiB"),
    ({"max_memory": 65536}, "smaller than the module.s initial memory"),
    ({"max_memory": 3 * 65536}, "no room"),
])
def test_bad_options(kwargs: dict[str, Any], message: str) -> None:
    data = TRANSFORMABLE[0].path.read_bytes()
    with pytest.raises(threadify.ThreadifyError, match=message):
        threadify.transform(data, **kwargs)


@pytest.mark.parametrize("program", READY, ids=[p.id for p in READY])
def test_already_thread_ready_passes_through(program: Program) -> None:
    data = program.path.read_bytes()
    assert threadify.transform(data) == data
    assert threadify.inspect(data).verdict == "C"


@pytest.mark.parametrize("program", REJECTED, ids=[p.id for p in REJECTED])
def test_non_atomic_code_is_rejected_unless_allowed(program: Program) -> None:
    data = program.path.read_bytes()
    with pytest.raises(threadify.ThreadifyError) as info:
        threadify.transform(data)
    assert "atomics" in info.value.problem and "allow_non_atomic=True" in (info.value.fix or "")
    out = threadify.transform(data, allow_non_atomic=True)
    assert_valid(out, THREADS_FEATURES)


REJECT_WAT = {
    "no memory": ("(module (global (mut i32) (i32.const 65536)))", "no memory"),
    "two memories": ("(module (memory 1) (memory 1) (global (mut i32) (i32.const 1)))",
                     "2 memories"),
    "memory64": ("(module (memory i64 1) (global (mut i32) (i32.const 1)))", "memory64"),
    "no stack pointer": ("(module (memory 1 1 shared))", "no stack pointer"),
    "imported stack pointer": (
        '(module (import "env" "__stack_pointer" (global (mut i32))) (memory 1 2 shared))',
        "no stack pointer"),
    "not funcref table 0": (
        "(module (table 1 externref) (memory 1 4 shared) (global (mut i32) (i32.const 16)))",
        "funcref"),
}


@pytest.mark.parametrize("case", sorted(REJECT_WAT))
def test_rejections(case: str) -> None:
    text, message = REJECT_WAT[case]
    with pytest.raises(threadify.ThreadifyError, match=message):
        threadify.transform(wat2wasm(text))


@pytest.mark.parametrize("data,message", [
    (b"", "magic"),
    (b"\x7fELF\x02\x01\x01\x00", "magic"),
    (b"\x00asm\x0d\x00\x01\x00", "component"),
    (b"\x00asm\x01\x00\x00\x00\x01\x05", "byte"),
])
def test_malformed_input(data: bytes, message: str) -> None:
    with pytest.raises(threadify.ThreadifyError, match=message):
        threadify.transform(data)


def test_minimal_module_without_tls_or_table() -> None:
    """A module with a stack pointer but no TLS, no table and no data still works."""
    text = """(module (memory 2 64) (global $sp (mut i32) (i32.const 65536))
      (func (export "_start")))"""
    out = threadify.transform(wat2wasm(text), allow_non_atomic=True)
    assert_valid(out, THREADS_FEATURES)
    module = Module.decode(out)
    assert len(module.tables) == 1


def test_invalid_function_body_is_rejected() -> None:
    """Bodies pass through as bytes; the background validation still rejects a corrupt one."""
    program = next(p for p in TRANSFORMABLE if p.id == "c/wasm/tls.nonshared.wasm")
    module = Module.decode(program.path.read_bytes())
    body = module.code[-1]
    raw = bytes(body.raw)
    corrupt = raw[:-1] + b"\xff" + raw[-1:]  # an illegal opcode before the final end
    module.code[-1] = type(body)(corrupt)
    data = module.encode()
    with pytest.raises(threadify.ThreadifyError, match="not valid WebAssembly"):
        threadify.transform(data)
    # --no-validate trades this check for speed: the module is then transformed as it is.
    threadify.transform(data, validate=False)


def test_legacy_exceptions_are_not_reported_invalid() -> None:
    """wasmtime cannot validate legacy exceptions (``try``/``catch``): that is no reason to
    call the module invalid."""
    text = """(module (memory 2 64) (global $sp (mut i32) (i32.const 65536))
      (tag $e) (func (export "_start") try nop catch $e end))"""
    out = threadify.transform(wat2wasm(text), allow_non_atomic=True)
    assert_valid(out, "all")


def test_memory_hint_is_a_usable_size() -> None:
    text = "(module (memory 20 20) (global $sp (mut i32) (i32.const 65536)))"
    with pytest.raises(threadify.ThreadifyError) as info:
        threadify.transform(wat2wasm(text), allow_non_atomic=True)
    (suggestion,) = info.value.suggestions
    assert suggestion.option == "max_memory" and isinstance(suggestion.value, int)
    assert f"max_memory={suggestion.value >> 20} * 1024 * 1024" in (info.value.fix or "")
    out = threadify.transform(wat2wasm(text), allow_non_atomic=True, max_memory=suggestion.value)
    assert_valid(out, THREADS_FEATURES)


def test_table64_is_rejected() -> None:
    text = """(module (table i64 1 funcref) (memory 1 4 shared)
      (global (mut i32) (i32.const 16)))"""
    with pytest.raises(threadify.ThreadifyError, match="64-bit table"):
        threadify.transform(wat2wasm(text))


def test_invalid_already_ready_module_is_rejected() -> None:
    """Class C is copied unchanged, but only when it is valid WebAssembly."""
    data = bytearray(READY[0].path.read_bytes())
    module = Module.decode(bytes(data))
    body = module.code[0]
    raw = bytes(body.raw)
    module.code[0] = type(body)(raw[:-1] + b"\xff" + raw[-1:])
    with pytest.raises(threadify.ThreadifyError, match="not valid WebAssembly"):
        threadify.transform(module.encode())


def test_invalid_module_using_legacy_exceptions_is_rejected() -> None:
    """wasmtime stops at legacy exceptions without checking the rest; wasm-tools then decides."""
    text = """(module (memory 2 64) (global $sp (mut i32) (i32.const 65536))
      (tag $e) (func (export "_start") try nop catch $e end) (func i32.const 1 drop))"""
    module = Module.decode(wat2wasm(text))
    body = module.code[1]
    raw = bytes(body.raw)
    module.code[1] = type(body)(raw[:1] + b"\x41\x01\x6a" + raw[1:])  # i32.add on one i32
    with pytest.raises(threadify.ThreadifyError, match="not valid WebAssembly"):
        threadify.transform(module.encode(), allow_non_atomic=True)


# -- the module's own start function runs once (docs/abi.md, "Initialised once") ---------------

START_THREADS = 4
RAN_ONCE = 41


def _counting_start_program(memory: str, data: str) -> str:
    """A program whose start function counts its runs at address 1024.

    ``_start`` spawns four threads (each a new instance, so each runs the module's start-up),
    waits until all four have run, and exits with ``RAN_ONCE`` (40 + the count) when the start
    function ran once, in the first instance only (an exit code no host failure gives).
    """
    return f"""(module
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  {memory}
  (global $__stack_pointer (mut i32) (i32.const 65536))
  (table 1 funcref) (elem (i32.const 0) $thread)
  {data}
  (start $count_start)
  (func $count_start (drop (i32.atomic.rmw.add (i32.const 1024) (i32.const 1))))
  (func $thread (param i32)
    (drop (i32.atomic.rmw.add (i32.const 1028) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const 1028) (i32.const -1))))
  (func (export "_start") (local $i i32) (local $done i32)
    (loop $spawning  ;; the start argument at 1100 is {{func 0, arg 0}} for every thread
      (if (i32.le_s (call $spawn (i32.const 1100)) (i32.const 0))
        (then (call $exit (i32.const 100))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spawning (i32.lt_u (local.get $i) (i32.const {START_THREADS}))))
    (block $all (loop $waiting
      (local.set $done (i32.atomic.load (i32.const 1028)))
      (br_if $all (i32.ge_u (local.get $done) (i32.const {START_THREADS})))
      (drop (memory.atomic.wait32 (i32.const 1028) (local.get $done) (i64.const -1)))
      (br $waiting)))
    (call $exit (i32.add (i32.const 40) (i32.load (i32.const 1024)))))
  (@custom "target_features" "\\02+\\07atomics+\\0bbulk-memory"))"""


START_CASES = {
    # Room for all four 1 MiB thread blocks at once (17 pages each): with a 64-page maximum a
    # fourth concurrent thread finds memory full and traps in threadify_out_of_memory.
    "class-A": ('(import "env" "memory" (memory 2 1024 shared))', "", "A"),
    "class-B-with-data": ("(memory 2)", '(data (i32.const 2048) "data")', "B"),
    "class-B-without-data": ("(memory 2)", "", "B"),
}


@pytest.fixture(scope="module")
def counting_start_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out_dir = tmp_path_factory.mktemp("start")
    paths = {}
    for case, (memory, data, klass) in START_CASES.items():
        wasm = wat2wasm(_counting_start_program(memory, data))
        assert threadify.inspect(wasm).verdict == klass
        out = threadify.transform(wasm)
        assert_valid(out, THREADS_FEATURES)
        paths[case] = out_dir / f"{case}.wasm"
        paths[case].write_bytes(out)
    return paths


@pytest.mark.parametrize("case", sorted(START_CASES))
def test_own_start_function_runs_once_on_bundled_host(
        case: str, counting_start_outputs: dict[str, Path]) -> None:
    assert host.run(counting_start_outputs[case], timeout=60) == RAN_ONCE


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(START_CASES))
def test_own_start_function_runs_once_on_wasmtime(
        case: str, counting_start_outputs: dict[str, Path]) -> None:
    proc = run_wasmtime("46.0.1", counting_start_outputs[case], timeout=60)
    assert proc.returncode == RAN_ONCE, proc.stderr


@pytest.mark.parametrize("variant", ["shared-import", "shared-import-tlsexports-stripped"])
def test_lld_memory_initialiser_stays_in_every_instance(variant: str) -> None:
    """lld's ``__wasm_init_memory`` (found by name, or by shape when stripped) keeps running in
    every instance: each must ``data.drop`` its own segments."""
    from threadify.classify import analyse

    module = Module.decode((FIXTURES / f"c/wasm/tls.{variant}.wasm").read_bytes())
    analysis = analyse(module)
    assert module.start is not None
    assert analysis.start_every_instance == module.start and analysis.start_once is None


# -- other threads transforms and other toolchains are named (docs/inputs.md, class D) ----------

FOREIGN = {  # fixtures/foreign/: real builds, see its README.md
    "go/hello.wasm": "Go 1.27.3",
    "assemblyscript/hello.wasm": "AssemblyScript",
    "assemblyscript/hello.shared.wasm": "AssemblyScript",
    "emscripten/hello.standalone.wasm": "Emscripten",
    "emscripten/hello.pthread.wasm": "Emscripten",
}


@pytest.mark.parametrize("path", sorted(FOREIGN))
def test_other_toolchains_are_named_and_no_option_is_suggested(path: str) -> None:
    """The message names the toolchain, and suggests no threadify option: none would help
    (``allow_non_atomic`` only leads to a second rejection, or to a broken output)."""
    data = (FIXTURES / "foreign" / path).read_bytes()
    for allow_non_atomic in (False, True):
        with pytest.raises(threadify.ThreadifyError) as info:
            threadify.transform(data, allow_non_atomic=allow_non_atomic)
        assert f"built by {FOREIGN[path]}, not wasm-ld" in info.value.problem
        assert info.value.suggestions == ()
        assert "--" not in (info.value.fix or "")
    assert threadify.inspect(data).verdict == "D"


def _bindgen_like(edit: str) -> bytes:
    """A real wasm-ld class-A module given one trait of wasm-bindgen's threads output (its CLI
    cannot be built here): an export it adds, or the section its macros leave."""
    module = Module.decode((FIXTURES / "c/wasm/tls.shared-import.wasm").read_bytes())
    if edit == "section":
        module.set_custom("__wasm_bindgen_unstable", b"\x00")
    else:
        module.add_export(Export(edit, ExternKind.FUNC, module.num_imported(ExternKind.FUNC)))
    return module.encode()


@pytest.mark.parametrize("edit", ["__wbindgen_thread_destroy", "__stack_alloc", "section"])
def test_wasm_bindgen_output_is_rejected_naming_it(edit: str) -> None:
    data = _bindgen_like(edit)
    with pytest.raises(threadify.ThreadifyError) as info:
        threadify.transform(data)
    assert "wasm-bindgen" in info.value.problem and info.value.suggestions == ()
    assert threadify.inspect(data).verdict == "D"
