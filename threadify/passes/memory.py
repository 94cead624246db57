"""Memory pass: exactly one shared, imported memory, also exported as ``memory`` (docs/abi.md).

WASI-threads hosts instantiate the module once per thread with the *same* memory, which they
can only do if the module imports it; WASI itself needs it exported as ``memory``. A defined
memory becomes the import ``env.memory``; an imported one keeps its module and name. A shared
memory needs a maximum: the input's is kept, or ``max_pages`` is used when it has none.
:func:`place_control_block` decides where threadify's own control block lives in that memory.
"""

from __future__ import annotations

from dataclasses import replace
from operator import add, itemgetter

from threadify import abi
from threadify.linker import (
    LinkerSymbols,
    const_i32,
    const_i32_all,
    defined_global_init,
    i32_const_expr,
)
from threadify.wasm import Export, ExternKind, Import, MemoryType, Module


def share_memory(module: Module, max_pages: int | None, default_max_pages: int) -> list[str]:
    """Make the module's single memory shared and imported; returns a description of changes.

    ``max_pages`` (from an explicit ``--max-memory``) overrides the input's maximum;
    ``default_max_pages`` applies only when the input has none.
    """
    changes: list[str] = []
    imports = module.imports
    for position, imp in enumerate(imports):
        if imp.kind == ExternKind.MEMORY:
            assert isinstance(imp.desc, MemoryType)
            new_type = _shared(imp.desc, max_pages, default_max_pages, changes)
            if new_type != imp.desc:
                imports[position] = replace(imp, desc=new_type)
            break
    else:
        defined = module.memories[0]
        new_type = _shared(defined, max_pages, default_max_pages, changes)
        module.memories.clear()
        imports.append(Import("env", "memory", ExternKind.MEMORY, new_type))
        changes.append("memory imported as env.memory")
    if not any(e.name == abi.EXPORT_MEMORY for e in module.exports):
        module.add_export(Export(abi.EXPORT_MEMORY, ExternKind.MEMORY, 0))
        changes.append("memory exported as 'memory'")
    return changes


def _shared(memory: MemoryType, max_pages: int | None, default_max_pages: int,
            changes: list[str]) -> MemoryType:
    """``memory`` made shared: a shared memory must declare a maximum (the host reserves it
    up front, since every instance sees the same memory and it can never move)."""
    new_max = memory.max
    if max_pages is not None:
        new_max = max_pages
    elif new_max is None:
        new_max = default_max_pages
    if new_max != memory.max:
        changes.append(f"memory maximum set to {new_max} pages")
    if not memory.shared:
        changes.append("memory made shared")
    return replace(memory, shared=True, max=new_max)


#: How far below the stack's top the control block may move to stay clear of data written at
#: start-up (the stack loses as much).
CONTROL_SEARCH = 16 * 1024


def place_control_block(module: Module, stack_pointer: int, initial_end: int,
                        initialised: list[tuple[int, int]]) -> tuple[int, int]:
    """Where threadify's control block goes, and the lowest address a thread block can get.

    The control block takes the top :data:`~threadify.abi.CONTROL_BYTES` of the linker's stack:
    the stack pointer's initial value is lowered by that much, so the block lies inside the
    initial memory, below ``__heap_base`` and outside every data segment. A page grown past the
    initial memory for it would be taken by an allocator that claims everything up to
    ``memory.size`` at its first call (wasi-libc of 2022 does), and the program's allocations
    would overwrite it (docs/abi.md, "Memory layout"). Thread blocks then start at the initial
    memory's end. When the stack pointer's initial value is not a usable constant (not lld's
    layout), the block gets its own page past the initial memory, as the fallback.

    ``initialised`` are the ``(start, end)`` ranges the module writes at start-up
    (:func:`initialised_ranges`). The block's words start as zero and must stay out of them: a
    pre-initialised snapshot (Wizer's, as CRuby's module has) keeps the stale bytes of its
    stack as data just below the stack pointer, and they would land on the block's lock and
    free list. The block then goes to the first free 64 bytes below them, at most
    :data:`CONTROL_SEARCH` below the stack's top, or else to its own page.
    """
    top = defined_global_init(module, stack_pointer)
    fallback = initial_end, initial_end + abi.CONTROL_PAGES * abi.PAGE
    if top is None or top < abi.MIN_STACK_FOR_CONTROL or top % abi.STACK_ALIGN:
        return fallback
    control = top - abi.CONTROL_BYTES
    # by end, highest first: once a range ends at or below the block, all later ones do too.
    # Only ranges near the stack's top are sorted: one starting at or above the top never moves
    # the block, and one ending CONTROL_SEARCH or more below it can only move a block that is
    # already too low (the block only moves down), which falls back anyway.
    near = [r for r in initialised if r[1] > top - CONTROL_SEARCH and r[0] < top]
    for start, end in sorted(near, key=itemgetter(1), reverse=True):
        if end <= control:
            break
        if start < control + abi.CONTROL_BYTES and start < end:
            control = (start - abi.CONTROL_BYTES) & ~(abi.STACK_ALIGN - 1)
    if control < top - CONTROL_SEARCH or control < abi.MIN_STACK_FOR_CONTROL - abi.CONTROL_BYTES:
        return fallback
    local = stack_pointer - module.num_imported(ExternKind.GLOBAL)
    glob = module.globals[local]
    module.globals[local] = type(glob)(glob.type, i32_const_expr(control))
    return control, initial_end


def initialised_ranges(module: Module, syms: LinkerSymbols) -> list[tuple[int, int]]:
    """``(start, end)`` of the memory the module initialises: active segments at constant
    offsets, and what lld's memory initialiser writes (``memory.init`` / ``memory.fill`` at
    constant addresses, and its flag word: ``syms.init_memory_writes``).

    Every transform asks (:func:`place_control_block`), and a module may have 10 000 segments:
    their offsets are read together (:func:`~threadify.linker.const_i32_all`), and nothing
    here loops over them in Python.
    """
    summary = module.data_summary()
    offsets = [offset for _passive, offset, _length in summary if offset is not None]
    lengths = [length for _passive, offset, length in summary if offset is not None]
    starts = const_i32_all(offsets)
    if starts is None:  # not lld's usual offsets: one by one
        pairs = [(start & 0xFFFF_FFFF, length) for start, length
                 in zip(map(const_i32, offsets), lengths, strict=True) if start is not None]
        starts, lengths = [p[0] for p in pairs], [p[1] for p in pairs]
    out = list(zip(starts, map(add, starts, lengths), strict=True))
    out += syms.init_memory_writes
    if syms.tls_base_init:
        out.append((syms.tls_base_init, syms.tls_base_init + max(syms.tls_size_value or 0, 1)))
    return out
