"""Deciding what kind of input a module is (docs/inputs.md): classes A, B, C and D.

* **A** — lld ``--shared-memory`` output: one shared memory, passive segments, lld's
  ``__wasm_init_memory`` start function.
* **B** — atomics objects linked without ``--shared-memory``: a non-shared memory with active
  segments and an immutable ``__tls_base``.
* **C** — already thread-ready: exports ``wasi_thread_start`` (wasi-libc, Zig) or carries
  threadify's own custom section. The output is the input.
* **D** — rejected, with a :class:`~threadify.errors.ThreadifyError` naming the problem and
  the fix.

:func:`analyse` never raises for a decodable module: a rejection is returned as ``error`` so that
``threadify inspect`` can explain it; :func:`threadify.pipeline.transform` raises it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from threadify import abi
from threadify.errors import Hint, Suggestion, ThreadifyError, UnsupportedModuleError
from threadify.linker import LinkerSymbols, find_symbols
from threadify.toolchains import ADVICE, foreign_producer, wasm_bindgen_evidence
from threadify.wasm import FUNCREF, I32, Export, ExternKind, MemoryType, Module, TargetFeatures


class Verdict(str, Enum):
    """The input class (see the module docstring). A ``str`` enum: ``Verdict.A == "A"``."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"

    def __str__(self) -> str:
        return self.value

    @property
    def accepted(self) -> bool:
        """Whether threadify gives an output (rewritten for A and B, copied for C)."""
        return self is not Verdict.D

    @property
    def meaning(self) -> str:
        """One line for people: what threadify does with such a module."""
        return _MEANINGS[self]


_MEANINGS = {
    Verdict.A: "shared-memory lld output: will be made thread-ready",
    Verdict.B: "non-shared lld output: memory will be made shared, data written once",
    Verdict.C: "already thread-ready: output = input",
    Verdict.D: "rejected",
}


@dataclass
class MemoryInfo:
    """The module's single memory, as threadify sees it."""

    imported: bool
    import_module: str | None
    import_name: str | None
    type: MemoryType

    def as_dict(self) -> dict[str, object]:
        return {
            "imported": self.imported,
            "import": None if not self.imported else f"{self.import_module}.{self.import_name}",
            "min_pages": self.type.min,
            "max_pages": self.type.max,
            "shared": self.type.shared,
            "memory64": self.type.memory64,
        }


@dataclass
class Analysis:
    """Everything the transform needs to know about a module, and the verdict."""

    module: Module
    verdict: Verdict = Verdict.D
    reasons: list[str] = field(default_factory=list)
    error: ThreadifyError | None = None
    memory: MemoryInfo | None = None
    symbols: LinkerSymbols | None = None
    atomics: bool | None = None
    #: Size of a thread's TLS block in bytes (0: the module has no thread-locals).
    tls_size: int = 0
    tls_align: int = 16
    tls_align_how: str = "default"
    #: Length of the ``.tdata`` template segment (its bytes initialise every TLS block).
    tdata_len: int = 0
    #: The module's own start function: part of the one-time start-up (first instance only).
    start_once: int | None = None
    #: lld's ``--shared-memory`` memory initialiser, which every instance runs (docs/abi.md).
    start_every_instance: int | None = None
    #: Atomics without bulk memory in a non-shared module: thread-locals lowered to globals.
    tls_lowered: bool = False

    def reject(self, problem: str, fix: str | Hint | None = None) -> Analysis:
        self.verdict = Verdict.D
        self.error = UnsupportedModuleError(problem, fix)
        self.reasons.append(problem)
        return self


#: The option that accepts code compiled without atomics, as hints suggest it.
ALLOW_NON_ATOMIC = Suggestion("allow_non_atomic", True)
#: The least alignment a TLS block gets (16 bytes, as the stack is aligned).
MIN_TLS_ALIGN = abi.STACK_ALIGN
#: The most alignment taken from the ``.tdata`` address when ``__tls_align`` is absent.
GUESSED_TLS_ALIGN_MAX = 4096


def find_memory(module: Module) -> tuple[MemoryInfo | None, str | None]:
    imported = [imp for imp in module.imports if imp.kind == ExternKind.MEMORY]
    total = len(imported) + len(module.memories)
    if total == 0:
        return None, "the module has no memory"
    if total > 1:
        return None, f"the module has {total} memories; threadify supports exactly one"
    if imported:
        imp = imported[0]
        assert isinstance(imp.desc, MemoryType)
        return MemoryInfo(True, imp.module, imp.name, imp.desc), None
    return MemoryInfo(False, None, None, module.memories[0]), None


def _lowest_set_bit(value: int) -> int:
    return value & -value if value else 0


def _sort_start(module: Module, syms: LinkerSymbols, result: Analysis) -> None:
    """Decide where the module's start function runs.

    lld's ``--shared-memory`` initialiser (``__wasm_init_memory``, by name or by shape) runs in
    every instance: it has its own once-flag and each instance must ``data.drop`` its segments.
    Any other start function — a module's own, or lld's flagless initialiser of a non-shared
    memory — belongs to the one-time start-up and runs in the first instance only.
    """
    start = module.start
    if start is None:
        return
    init = syms.init_memory
    if init is not None and init.index == start and syms.init_memory_has_flag:
        result.start_every_instance = start
    else:
        result.start_once = start
        result.reasons.append("its start function runs once, in the first instance")


def analyse(module: Module, *, allow_non_atomic: bool = False) -> Analysis:
    """Classify ``module`` and gather the facts the passes need. The checks run in this order,
    and the first that fails gives the one reason (and fix) the module is rejected for."""
    result = Analysis(module)
    exports = {e.name: e for e in module.exports}
    if _thread_ready(module, exports, result):
        return result
    rejected = (_other_producer(module, result) or _position_independent(module, result)
                or _memory(module, result) or _atomics(module, result, allow_non_atomic)
                or _stack_pointer(module, result) or _tls(module, result)
                or _table(module, result) or _export_clashes(exports, result))
    if rejected is not None:
        return rejected
    memory, syms = result.memory, result.symbols
    assert memory is not None and syms is not None
    if memory.type.shared:
        result.verdict = Verdict.A
        result.reasons.append("shared memory (lld --shared-memory output)")
    else:
        result.verdict = Verdict.B
        result.reasons.append("non-shared memory (linked without --shared-memory): memory will "
                              "be made shared and data written once")
    _sort_start(module, syms, result)
    if result.atomics is False:
        result.reasons.append("code not compiled with atomics, accepted as asked")
    if result.tls_lowered:
        result.reasons.append("code compiled without bulk-memory (thread-locals lowered to "
                              "globals), accepted as asked")
    return result


def _thread_ready(module: Module, exports: dict[str, Export], result: Analysis) -> bool:
    """Class C: threadify's own output, or a module with its own thread start-up."""
    if module.get_custom(abi.CUSTOM_SECTION) is not None:
        result.verdict = Verdict.C
        result.reasons.append("already processed by threadify (it carries the 'threadify' "
                              "custom section)")
        return True
    start = exports.get(abi.EXPORT_THREAD_START)
    if start is not None and start.kind == ExternKind.FUNC:
        result.verdict = Verdict.C
        result.reasons.append("already thread-ready: it exports wasi_thread_start "
                              "(wasi-libc or Zig thread support)")
        return True
    return False


def _other_producer(module: Module, result: Analysis) -> Analysis | None:
    """A module another threads transform or another toolchain made (docs/inputs.md)."""
    bindgen = wasm_bindgen_evidence(module)
    if bindgen is not None:
        return result.reject(
            f"the module is wasm-bindgen's ({bindgen}): it is made thread-ready by "
            "wasm-bindgen's own threads transform, for its JavaScript glue",
            "use wasm-bindgen's thread support for it; threadify rewrites modules wasm-ld "
            "wrote for WASI-threads hosts")
    producer = foreign_producer(module)
    if producer is not None:
        return result.reject(
            f"the module was built by {producer.describe()}, not wasm-ld ({producer.evidence})",
            ADVICE[producer.name])
    return None


def _position_independent(module: Module, result: Analysis) -> Analysis | None:
    """``-shared`` / ``-pie`` output, refused before the memory and atomics checks: its
    stack belongs to a dynamic loader, whatever else the module lacks."""
    # wasm-ld writes a dylink.0 section (older: dylink) into -shared and -pie output only; such
    # a module imports its stack pointer and memory base from a dynamic loader, or (a library
    # nothing references) has no stack pointer at all (docs/inputs.md).
    if any(module.get_custom(name) is not None for name in ("dylink.0", "dylink")):
        return result.reject(
            "the module is position-independent (it has a dylink.0 section: linked with -shared "
            "or -pie), so a dynamic loader places it and owns its stack",
            "link a static executable (no -shared / -pie / --experimental-pic)")
    return None


def _memory(module: Module, result: Analysis) -> Analysis | None:
    """Exactly one 32-bit memory with 64 KiB pages (``result.memory``)."""
    memory, problem = find_memory(module)
    if memory is None:
        assert problem is not None
        return result.reject(problem, "link with wasm-ld, which always gives the module one "
                                      "linear memory")
    result.memory = memory
    if memory.type.memory64:
        return result.reject("the memory is a 64-bit memory (memory64)",
                             "threadify supports wasm32 only: build for wasm32")
    if memory.type.page_size_log2 not in (None, abi.PAGE_SHIFT):
        return result.reject("the memory uses a custom page size",
                             "link without custom page sizes (64 KiB pages)")
    return None


def _atomics(module: Module, result: Analysis, allow_non_atomic: bool) -> Analysis | None:
    """Code compiled with atomics (and bulk memory, without which LLVM lowers thread-locals),
    as ``target_features`` or a shared memory shows; ``allow_non_atomic`` accepts the rest."""
    memory = result.memory
    assert memory is not None
    features = module.decode_custom("target_features", TargetFeatures.decode)
    if features is not None:
        result.atomics = features.has("atomics")
    if result.atomics is False and not allow_non_atomic:
        return result.reject(
            "the code was not compiled with atomics (target_features lacks +atomics)",
            Hint("compile with -matomics -mbulk-memory (Rust: -C target-feature=+atomics,"
                 "+bulk-memory), or pass {} to accept it anyway", ALLOW_NON_ATOMIC))
    # LLVM lowers thread-locals to ordinary globals when bulk-memory is off (its TLS needs
    # memory.init) and marks such objects -shared-mem, so lld refuses them --shared-memory; a
    # non-shared link drops the marker, and the missing +bulk-memory is the only trace left
    # (docs/inputs.md).
    result.tls_lowered = (features is not None and result.atomics is True
                          and not memory.type.shared and not features.has("bulk-memory"))
    if result.tls_lowered and not allow_non_atomic:
        return result.reject(
            "the code was compiled with atomics but without bulk-memory (target_features lacks "
            "+bulk-memory): LLVM then turns thread-locals into ordinary globals that every "
            "thread shares",
            Hint("compile with -matomics -mbulk-memory (Rust: -C target-feature=+atomics,"
                 "+bulk-memory), or pass {} to accept it anyway", ALLOW_NON_ATOMIC))
    if result.atomics is None and not memory.type.shared and not allow_non_atomic:
        return result.reject(
            "cannot tell whether the code was compiled with atomics (no target_features section "
            "and the memory is not shared)",
            Hint("compile with -matomics -mbulk-memory and keep the target_features section "
                 "(with --strip-all: wasm-ld --keep-section=target_features), or pass {}",
                 ALLOW_NON_ATOMIC))
    return None


def _stack_pointer(module: Module, result: Analysis) -> Analysis | None:
    """lld's stack pointer: found, defined by the module, an i32 (``result.symbols``)."""
    syms = find_symbols(module)
    result.symbols = syms
    if syms.stack_pointer is None:
        return result.reject(
            "no stack pointer found (no __stack_pointer global by name or export, and no single "
            "mutable i32 global with a non-zero initialiser)",
            "link with wasm-ld and keep the name section (drop --strip-all), or add "
            "--export=__stack_pointer")
    if syms.stack_pointer.index < module.num_imported(ExternKind.GLOBAL):
        return result.reject(
            "the stack pointer is imported (a position-independent or shared-library module)",
            "link a static executable (no -shared / -pie)")
    if module.global_type(syms.stack_pointer.index).valtype != I32:
        return result.reject("__stack_pointer is not an i32 global",
                             "build for wasm32 (not wasm64)")
    return None


def _tls(module: Module, result: Analysis) -> Analysis | None:
    """The TLS template, size and alignment every thread block gets."""
    syms = result.symbols
    assert syms is not None
    if syms.tls_base is not None:
        if syms.tls_base.index < module.num_imported(ExternKind.GLOBAL):
            return result.reject("__tls_base is imported (a position-independent module)",
                                 "link a static executable (no -shared / -pie)")
        if syms.tdata is not None:
            result.tdata_len = module.data_summary()[syms.tdata.index][2]
        if syms.tls_size_value is not None:
            result.tls_size = syms.tls_size_value
        else:
            result.tls_size = result.tdata_len
        if result.tls_size > 0 and syms.tdata is None and syms.init_tls is None:
            return result.reject(
                "the TLS template (the .tdata data segment) was not found",
                "keep the name section (drop --strip-all) or link with --export=__wasm_init_tls")
        if syms.tls_align_value is not None:
            if syms.tls_align_value > abi.PAGE:
                # thread blocks are grown page by page: their TLS areas can be aligned to a
                # page at most (docs/inputs.md)
                return result.reject(
                    f"the TLS alignment (__tls_align = {syms.tls_align_value}) is larger than "
                    f"a {abi.PAGE // 1024} KiB page, the most threadify can align a thread's "
                    "TLS block to",
                    f"align thread-local variables to at most {abi.PAGE} bytes")
            result.tls_align = max(syms.tls_align_value, MIN_TLS_ALIGN)
            result.tls_align_how = "__tls_align"
        elif syms.tls_base_init:
            # lld places .tdata at a multiple of its alignment, so the address's lowest set bit
            # bounds the alignment from above. It is taken up to 4 KiB only: lld's usual layout
            # puts .tdata right after a 64 KiB stack, where the bound says nothing, and a 64 KiB
            # alignment would cost every thread block a page. A thread-local aligned to more
            # needs __tls_align (--export=__tls_align), see docs/inputs.md.
            result.tls_align = min(max(_lowest_set_bit(syms.tls_base_init),
                                       MIN_TLS_ALIGN), GUESSED_TLS_ALIGN_MAX)
            result.tls_align_how = "from the .tdata address"
    elif syms.tdata is not None:
        return result.reject(
            "the module has a .tdata segment but no __tls_base global was found",
            "keep the name section (drop --strip-all) or link with --export=__tls_base")
    return None


def _table(module: Module, result: Analysis) -> Analysis | None:
    """Table 0, through which ``wasi_thread_start`` calls the thread's function."""
    tables = [imp.desc for imp in module.imports if imp.kind == ExternKind.TABLE]
    tables += list(module.tables)
    if tables:
        first = tables[0]
        elem = getattr(first, "elem", None)
        if elem != FUNCREF:
            return result.reject("table 0 is not a funcref table",
                                 "link with wasm-ld (table 0 is __indirect_function_table)")
        if getattr(first, "table64", False):
            return result.reject("table 0 is a 64-bit table (table64)",
                                 "build for wasm32: function pointers are 32-bit there")
    elif any(imp.module == "wasi" and imp.name == "thread-spawn" and imp.kind == ExternKind.FUNC
             for imp in module.imports):
        # the functions a program passes to thread-spawn are indices into table 0: without
        # one, every thread's start would trap. lld always writes it when a function's address
        # is taken; wasm-opt removes it when nothing in the module calls through it
        return result.reject(
            "the module spawns threads (it imports wasi.thread-spawn) but has no function "
            "table, so no thread function can be called: was it optimised after linking "
            "(wasm-opt removes a table only the host would call through)?",
            "run wasm-opt after threadify, not before, or link with --export-table")
    return None


def _export_clashes(exports: dict[str, Export], result: Analysis) -> Analysis | None:
    """The export names threadify adds are free."""
    for name, kind in ((abi.EXPORT_DESTROY, ExternKind.FUNC),
                       (abi.EXPORT_MEMORY, ExternKind.MEMORY)):
        clash = exports.get(name)
        if clash is not None and clash.kind != kind:
            return result.reject(f"the module already exports '{name}' as something else",
                                 f"rename that export: threadify needs '{name}'")
    if abi.EXPORT_DESTROY in exports:
        return result.reject(f"the module already exports '{abi.EXPORT_DESTROY}'",
                             "rename that export: threadify adds its own")
    return None
