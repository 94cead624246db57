"""The transform: decode, classify, run the passes, encode (docs/inputs.md, docs/abi.md).

:func:`run` gives the output (behind :func:`threadify.transform`, the library entry point)
plus a report of what changed (for ``--json`` and ``--verify``). Class C inputs come back
unchanged; class D inputs raise :class:`~threadify.errors.ThreadifyError`. Only what a pass needs
is decoded: function bodies of the input are never decoded except lld's start function (to
recognise its shape when the name section is missing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from threadify import __version__, abi
from threadify.classify import Analysis, analyse
from threadify.errors import (
    Hint,
    Renderer,
    Suggestion,
    ThreadifyError,
    UnsupportedModuleError,
    one_line,
)
from threadify.passes.memory import initialised_ranges, place_control_block, share_memory
from threadify.passes.metadata import (
    name_items,
    record_features,
    record_producer,
    record_section,
)
from threadify.passes.offsets import (
    RELOC_DATA,
    drop_data_relocations,
    drop_offset_sections,
    drop_source_map,
    relocation_targets,
    retarget_relocations,
)
from threadify.passes.segments import passivate
from threadify.passes.threads import Injected, RuntimePlan, ensure_table, inject_runtime
from threadify.validation import BackgroundValidation, validated_by_default
from threadify.wasm import ExternKind, GlobalType, MemoryType, Module
from threadify.wasm.module import is_mapped
from threadify.wasm.writer import uleb_width

if TYPE_CHECKING:
    import mmap

    from threadify.passes import stack_check
    from threadify.wasm import codescan

MAX_WASM32_BYTES = 1 << 32
MAX_WASM32_PAGES = MAX_WASM32_BYTES // abi.PAGE
#: Room a suggested ``--max-memory`` leaves for threads beyond what is needed (64 MiB), and
#: the unit it is rounded to (1 MiB), both in pages.
SUGGESTED_HEADROOM = 1024
SUGGESTED_ALIGN = 16


@dataclass(frozen=True)
class Options:
    """Transform options (the keyword arguments of :func:`threadify.transform`)."""

    #: Bytes of stack for every thread but the first (a multiple of 16).
    stack_size: int = abi.DEFAULT_STACK_SIZE
    #: Maximum memory in bytes; overrides the input's maximum when given. When ``None``, the
    #: input's maximum is kept, or 1 GiB is used if it has none.
    max_memory: int | None = None
    #: Accept code not compiled with atomics (its memory accesses are then not thread-safe).
    allow_non_atomic: bool = False
    #: Validate the input (in a background thread, with wasmtime's validator) so that invalid
    #: input is rejected instead of giving an invalid output. ``None`` (the default): validate
    #: inputs whose code section is at most
    #: :data:`~threadify.validation.VALIDATE_AUTO_LIMIT` bytes; above that, checking every
    #: function body costs more CPU than the whole rewrite, and the build step is left fast
    #: (``True`` forces it).
    validate: bool | None = None
    #: Add stack-limit checks; see docs/stack-check.md.
    stack_check: bool = False

    def validates(self, data: bytes | mmap.mmap) -> bool:
        """Whether the input ``data`` is validated under these options (by default, decided
        by its code section's size: validation's cost follows the code, not the file)."""
        return self.validate if self.validate is not None else validated_by_default(data)

    def check(self) -> None:
        if isinstance(self.stack_size, bool) or not isinstance(self.stack_size, int):
            raise ThreadifyError("stack size must be an integer number of bytes")
        if self.stack_size <= 0 or self.stack_size % abi.STACK_ALIGN:
            raise ThreadifyError(f"stack size {self.stack_size} is not a positive multiple of 16",
                                 Hint("pass e.g. {}", Suggestion("stack_size", 1 << 20)))
        if self.stack_size >= 1 << 31:
            raise ThreadifyError(f"stack size {self.stack_size} is too large for wasm32")
        if self.max_memory is not None:
            if isinstance(self.max_memory, bool) or not isinstance(self.max_memory, int):
                raise ThreadifyError("maximum memory must be an integer number of bytes")
            if self.max_memory <= 0 or self.max_memory % abi.PAGE:
                raise ThreadifyError(
                    f"maximum memory {self.max_memory} is not a positive multiple of 64 KiB",
                    Hint("pass e.g. {}", Suggestion("max_memory", 256 << 20)))
            if self.max_memory > MAX_WASM32_BYTES:
                raise ThreadifyError(f"maximum memory {self.max_memory} exceeds 4 GiB (wasm32)")
        for name in ("allow_non_atomic", "stack_check"):
            if not isinstance(getattr(self, name), bool):
                raise ThreadifyError(f"{name} must be True or False")
        if self.validate is not None and not isinstance(self.validate, bool):
            # a string such as "no" would otherwise count as true
            raise ThreadifyError("validate must be True, False or None")


@dataclass
class Result:
    """What :func:`run` did. The output is encoded on demand: :meth:`chunks` lets a caller
    write it without ever holding a joined copy (peak memory on large modules)."""

    module: Module | None
    #: The input: ``bytes``, or a read-only ``mmap`` of the input file (the command line maps
    #: large inputs instead of reading them).
    input: bytes | mmap.mmap
    verdict: str
    reasons: list[str]
    changes: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    validation: BackgroundValidation | None = None
    #: Things the user should know although the output is fine (e.g. DWARF dropped). Each is
    #: a :class:`Hint`, so that an option it names reads as the caller writes it: the library
    #: renders ``stack_check=True``, the command line ``--stack-check`` (docs/errors.md).
    warnings: list[Hint] = field(default_factory=list)
    _output: bytes | None = None

    @property
    def unchanged(self) -> bool:
        return self.verdict == "C"

    def chunks(self) -> list[bytes | memoryview]:
        """The output as byte chunks (views into the input where sections are unchanged)."""
        if self._output is not None:
            return [self._output]
        if self.module is None:
            return [self.input if isinstance(self.input, bytes) else memoryview(self.input)]
        return list(self.module.chunks())

    @property
    def output(self) -> bytes:
        if self._output is None:
            if self.module is not None:
                self._output = self.module.encode()
            else:
                self._output = self.input if isinstance(self.input, bytes) else bytes(self.input)
        return self._output

    def check(self) -> None:
        """Wait for the input's validation; raises ``ThreadifyError`` if it is invalid."""
        if self.validation is not None:
            self.validation.result()

    def warning_texts(self, name: Renderer = Suggestion.as_keyword) -> list[str]:
        """The warnings with the options they name written by ``name`` (by default as a
        library caller writes them; the command line passes its flag spelling)."""
        return [hint.render(name) for hint in self.warnings]

    def as_dict(self, name: Renderer = Suggestion.as_keyword) -> dict[str, Any]:
        return {"class": self.verdict, "reasons": self.reasons, "changes": self.changes,
                "unchanged": self.unchanged, "layout": self.record or None,
                "warnings": self.warning_texts(name)}


def run(data: bytes | mmap.mmap, options: Options | None = None,
        validation: BackgroundValidation | None = None) -> Result:
    """Transform ``data``; returns the result and a report. Raises ``ThreadifyError``.

    The input's validation (``options.validates(data)``) runs in a background thread from the
    start; call :meth:`Result.check` before using the output (:func:`transform` does). The CLI
    writes the output to its temporary file meanwhile, and renames it only after the check.
    A caller that already started validating ``data`` passes that ``validation``. ``data``
    may be a read-only ``mmap`` of the input file: it is used without a copy.
    """
    options = options or Options()
    options.check()
    if not isinstance(data, bytes) and not is_mapped(data):
        data = bytes(data)
    module = Module.decode(data)
    if not options.validates(data):
        validation = None
    elif validation is None:
        validation = BackgroundValidation(data)
    try:
        analysis = analyse(module, allow_non_atomic=options.allow_non_atomic)
        if analysis.verdict == "C":  # copied as it is, but an invalid module is still rejected
            unchecked = [Hint("the module is already thread-ready and was copied unchanged: "
                              "no stack checks were added")] if options.stack_check else []
            return Result(None, data, "C", analysis.reasons, validation=validation,
                          warnings=unchecked)
        if analysis.error is not None:
            raise analysis.error
        return _rewrite(module, analysis, options, data, validation)
    except BaseException:
        if validation is not None:  # rejected anyway: stop the validator now
            validation.cancel()
        raise


def _rewrite(module: Module, analysis: Analysis, options: Options, data: bytes | mmap.mmap,
             validation: BackgroundValidation | None) -> Result:
    memory, syms = analysis.memory, analysis.symbols
    assert memory is not None and syms is not None and syms.stack_pointer is not None
    changes: list[str] = []
    relocations = relocation_targets(module)  # --emit-relocs: read before sections move

    layout = abi.BlockLayout(options.stack_size, analysis.tls_size, analysis.tls_align)
    control = memory.type.min * abi.PAGE
    initialised = initialised_ranges(module, syms)
    control, blocks_from = place_control_block(module, syms.stack_pointer.index, control,
                                              initialised)
    max_pages = _maximum_pages(memory.type, options, layout)
    if control + abi.CONTROL_PAGES * abi.PAGE > MAX_WASM32_BYTES:
        raise UnsupportedModuleError("the initial memory leaves no room below 4 GiB")

    stack: stack_check.StackRange | None = None
    scan: codescan.Insertion | None = None
    program_functions = 0
    if options.stack_check:  # read the layout before segments are made passive
        # imported only when asked for: every other transform would pay for its import
        from threadify.passes import stack_check

        stack = stack_check.main_stack(module, syms, initialised)  # or refused
        # the program's own functions; the scan of their code overlaps the passes below
        program_functions = stack_check.defined_function_count(module)
        scan = stack_check.start_scan(module, syms.stack_pointer.index, program_functions)

    changes += share_memory(module, max_pages, abi.DEFAULT_MAX_MEMORY // abi.PAGE)

    tdata = syms.tdata.index if syms.tdata is not None else None
    writes = passivate(module, tdata)
    if writes:
        changes.append(f"{len(writes)} active data segment(s) made passive, written once by "
                       "the first instance")
        if drop_data_relocations(module):
            changes.append(f"{RELOC_DATA} dropped (the data section's layout changed)")

    tls_base = syms.tls_base.index if syms.tls_base is not None else None
    if tls_base is not None:
        first = module.num_imported(ExternKind.GLOBAL)
        glob = module.globals[tls_base - first]
        if not glob.type.mutable:
            module.globals[tls_base - first] = type(glob)(GlobalType(glob.type.valtype, True),
                                                          glob.init)
            changes.append("__tls_base made mutable (per-thread)")
    if ensure_table(module):
        changes.append("empty function table added")

    limits: stack_check.LimitGlobals | None = None
    if stack is not None:
        limits = stack_check.add_limit_globals(module, stack)

    plan = RuntimePlan(
        control=control,
        layout=layout,
        stack_pointer=syms.stack_pointer.index,
        tls_base=tls_base if analysis.tls_size > 0 else None,
        tdata=tdata,
        tdata_len=analysis.tdata_len,
        init_tls=syms.init_tls.index if syms.init_tls is not None else None,
        segments=tuple(writes),
        start_once=analysis.start_once,
        start_every_instance=analysis.start_every_instance,
        stack_limits=None if limits is None else (limits.low, limits.high),
    )
    count_width = module.code_count_width()  # as the input wrote it
    injected = inject_runtime(module, plan)
    changes.append("injected wasi_thread_start, threadify_thread_destroy and the thread "
                   "runtime")
    warnings: list[Hint] = []
    checked: dict[str, Any] | None = None
    if stack is not None and limits is not None:
        checked = _insert_stack_checks(module, syms.stack_pointer.index, stack, limits,
                                       injected, program_functions, scan, changes, warnings)
    warnings += _drop_moved_offsets(module, count_width)

    name_items(module, injected.functions, injected.globals)
    record_producer(module, __version__)
    features = record_features(module)
    if features:
        changes.append(f"target_features: {', '.join(features)} added (threadify's code uses "
                       "them)")
    record: dict[str, Any] = {
        "abi": abi.ABI_VERSION,
        "version": __version__,
        "class": analysis.verdict,
        "options": asdict(options),
        "control_block": control,
        "blocks_from": blocks_from,
        "control_on_stack": blocks_from == memory.type.min * abi.PAGE,
        "block_size": layout.size,
        "stack_size": layout.stack_size,
        "stack_top": layout.stack_top,
        "tls_offset": layout.tls_offset,
        "tls_size": layout.tls_size,
        "tls_align": layout.tls_align,
        "tdata": tdata,
        "stack_pointer": syms.stack_pointer.index,
        "tls_base": plan.tls_base,
        "functions": injected.functions,
        "globals": injected.globals,
    }
    if checked is not None:
        record["stack_check"] = checked
    record_section(module, record)
    # last, once no section is added or removed any more
    gone = retarget_relocations(module, relocations)
    if gone:
        changes.append(f"{one_line(', '.join(gone))} dropped (the sections they refer to were "
                       "dropped)")
    return Result(module, data, analysis.verdict, analysis.reasons, changes, record,
                  validation, warnings)


def _maximum_pages(memory: MemoryType, options: Options, layout: abi.BlockLayout) -> int | None:
    """The ``--max-memory`` in pages (``None``: the input's maximum stays), after checking that
    the maximum the output will have leaves room for the control block and one thread block
    beyond the initial memory: a module that cannot start a single thread is refused now, with
    a maximum to pass, rather than failing at its first spawn."""
    max_pages = None if options.max_memory is None else options.max_memory // abi.PAGE
    effective_max = max_pages if max_pages is not None else (
        memory.max if memory.max is not None else abi.DEFAULT_MAX_MEMORY // abi.PAGE)
    if max_pages is not None and max_pages < memory.min:
        raise UnsupportedModuleError(
            f"maximum memory {options.max_memory} is smaller than the module's initial memory "
            f"({memory.min * abi.PAGE} bytes)",
            Hint("pass a larger {}", Suggestion(
                "max_memory", _suggested_pages(memory.min * 2 + SUGGESTED_HEADROOM) * abi.PAGE)))
    needed = memory.min + abi.CONTROL_PAGES + layout.pages
    if effective_max < needed:
        if needed > MAX_WASM32_PAGES:
            fix = Hint("use a smaller {}, or link with a smaller initial memory",
                       Suggestion("stack_size"))
        else:
            suggest = _suggested_pages(max(needed * 2, memory.min + SUGGESTED_HEADROOM))
            fix = Hint("relink with a larger maximum (wasm-ld --max-memory=N), or pass "
                       "{} to threadify", Suggestion("max_memory", suggest * abi.PAGE))
        raise UnsupportedModuleError(
            f"the memory maximum ({effective_max} pages) leaves no room for a thread stack "
            f"(needs at least {needed} pages)", fix)
    return max_pages


def _suggested_pages(pages: int) -> int:
    """A maximum to suggest: ``pages`` rounded up to whole MiB, at most 4 GiB."""
    return min(abi.align_up(pages, SUGGESTED_ALIGN), MAX_WASM32_PAGES)


def _insert_stack_checks(module: Module, stack_pointer: int, stack: stack_check.StackRange,
                         limits: stack_check.LimitGlobals, injected: Injected,
                         program_functions: int, scan: codescan.Insertion | None,
                         changes: list[str], warnings: list[Hint]) -> dict[str, Any]:
    """The ``--stack-check`` pass over the program's own bodies, once the runtime (and its
    overflow function) is in; returns what the ``threadify`` record says of it."""
    from threadify.passes import stack_check

    injected.globals[stack_check.STACK_LOW] = limits.low
    injected.globals[stack_check.STACK_HIGH] = limits.high
    done = stack_check.insert_checks(module, stack_pointer, limits,
                                     injected.functions[stack_check.OVERFLOW],
                                     program_functions, scan)
    changes.append(f"stack-limit checks after {done.checks} stack-pointer write(s) in "
                   f"{done.functions} function(s)")
    if done.dropped:
        dropped = one_line(", ".join(done.dropped)).replace("{", "{{").replace("}", "}}")
        warnings.append(Hint(f"{{}} moved code, so the debug information (what addresses "
                             f"code by offset) no longer matched it: dropped {dropped}",
                             Suggestion("stack_check", True)))
    return {"main_stack": [stack.low, stack.high], "main_stack_how": stack.how,
            "red_zone": stack_check.RED_ZONE, "checks": done.checks, "dropped": done.dropped}


def _drop_moved_offsets(module: Module, count_width: int) -> list[Hint]:
    """Drop what addresses bytes that threadify's additions moved (passes/offsets.py), and
    say so: the code-offset sections when the bodies' count needs a longer LEB than the
    input's ``count_width`` (an input with 119 to 127 functions gets past 127, and every body
    moves by the difference: docs/abi.md, "Preserved"), and a source map always."""
    warnings = []
    if count_width and uleb_width(module.function_count()) > count_width:
        moved = drop_offset_sections(module)
        if moved:
            warnings.append(Hint(
                f"adding threadify's functions made the code section's function count one "
                f"byte longer, which moved all code, so the debug information (what "
                f"addresses code by offset) no longer matched it: dropped "
                f"{one_line(', '.join(moved))}"))
    if drop_source_map(module):
        warnings.append(Hint("threadify's additions to the sections before the code moved "
                             "it in the file, so the source map (whose columns are offsets "
                             "in the file) no longer matched it: dropped sourceMappingURL"))
    return warnings
