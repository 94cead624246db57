"""Custom sections that address the module's bytes by offset, kept true to the output.

threadify keeps every function body where it was inside the code section, so DWARF and
lld's relocations stay right as they are; some changes still move what such a section
points at, and then it is dropped with a warning, or rewritten where that is exact:

* function bodies change (``--stack-check``) or the code section's body count grows a byte:
  the code-offset sections go (:func:`drop_offset_sections`);
* the sections before the code always grow, so a source map, whose columns count from the
  file's start, goes on every rewrite (:func:`drop_source_map`);
* class B makes active data segments passive: ``reloc.DATA`` goes
  (:func:`drop_data_relocations`);
* a section added or removed before another moves its index, which every ``reloc.*`` section
  names first: it is rewritten (:func:`retarget_relocations`).

See docs/abi.md, "Preserved", and docs/stack-check.md, "Debug information".
"""

from __future__ import annotations

from typing import NamedTuple

from threadify.errors import WasmDecodeError
from threadify.wasm import Module
from threadify.wasm.reader import Reader, uleb32_at
from threadify.wasm.writer import uleb

#: Prefix of the custom sections holding relocations (``--emit-relocs``), one per section
#: they apply to: ``reloc.CODE``, ``reloc.DATA``, ``reloc..debug_info``.
RELOC_PREFIX = "reloc."

#: A section as the relocations name it: a known section's id, or a custom section's name.
SectionKey = int | str

#: The custom section with lld's symbol table, which the relocations refer to (Linking.md).
LINKING = "linking"
_SYMBOL_TABLE = 8  #: its subsection id of the symbol table
_SYMBOL_DATA, _SYMBOL_SECTION = 1, 3  #: symbol kinds with their own layout
_SYMBOL_UNDEFINED, _SYMBOL_EXPLICIT_NAME = 0x10, 0x40  #: symbol flags that change the layout


def drop_offset_sections(module: Module) -> list[str]:
    """Remove the custom sections that address code by byte offset — DWARF (``.debug_*``, or
    the name of a file of it), ``sourceMappingURL``, the relocations of ``--emit-relocs``
    (``reloc.CODE``) — and return their names, sorted. For when existing function bodies
    moved: those sections would point at the wrong instructions (docs/stack-check.md, "Debug
    information")."""
    dropped = sorted({name for name in module.custom_names()
                      if name.startswith(".debug_") or name in OFFSET_SECTIONS})
    for name in dropped:
        module.remove_custom(name)
    return dropped


#: The custom section naming a source map, whose columns are byte offsets in the whole file.
SOURCE_MAP = "sourceMappingURL"

#: The relocations ``--emit-relocs`` keeps for the code and for the data section.
RELOC_CODE, RELOC_DATA = RELOC_PREFIX + "CODE", RELOC_PREFIX + "DATA"

#: Custom sections besides ``.debug_*`` whose contents are code offsets, or that name a file
#: of them (``external_debug_info``: DWARF kept apart, ``-gseparate-dwarf``).
OFFSET_SECTIONS = frozenset({SOURCE_MAP, RELOC_CODE, "external_debug_info"})


def drop_data_relocations(module: Module) -> bool:
    """Remove ``reloc.DATA``; whether there was one. For when active segments were made
    passive: its offsets count into the data section as the input wrote it, offset
    expressions included, which passive segments no longer have."""
    if module.get_custom(RELOC_DATA) is None:
        return False
    module.remove_custom(RELOC_DATA)
    return True


def drop_source_map(module: Module) -> bool:
    """Remove the ``sourceMappingURL`` section; whether there was one. For every rewrite: a
    source map's columns are offsets in the whole file (the tool conventions' Debugging.md),
    unlike DWARF's, which count from the code section, and threadify always lengthens the
    sections before the code (types, functions, globals, exports)."""
    if module.get_custom(SOURCE_MAP) is None:
        return False
    module.remove_custom(SOURCE_MAP)
    return True


def _section_keys(module: Module) -> list[SectionKey]:
    """Every section the encoded module will have, in order, as :data:`SectionKey`."""
    names = iter(module.custom_names())
    return [next(names) if sid == 0 else sid for sid in module.section_ids()]


class Relocations(NamedTuple):
    """What ``--emit-relocs`` output names by section index, read before the transform."""

    keys: list[SectionKey]  #: every section of the input, in order
    targets: dict[str, SectionKey]  #: each ``reloc.*`` section's target


def relocation_targets(module: Module) -> Relocations | None:
    """The sections ``reloc.*`` and the ``linking`` section name, read before the transform
    changes the module's sections (see :func:`retarget_relocations`); ``None`` for a module
    without them (nearly every one)."""
    names = module.custom_names()
    relocs = [name for name in names if name.startswith(RELOC_PREFIX)]
    if not relocs and LINKING not in names:
        return None
    keys = _section_keys(module)
    targets: dict[str, SectionKey] = {}
    for name in relocs:
        payload = module.get_custom(name)
        assert payload is not None
        index, _end = uleb32_at(payload, 0, len(payload))
        if 0 <= index < len(keys):  # else malformed: left as it is
            targets[name] = keys[index]
    return Relocations(keys, targets)


def retarget_relocations(module: Module, relocations: Relocations | None) -> list[str]:
    """Point each kept ``reloc.*`` section, and each section symbol of the ``linking``
    section, at its section again; returns the names of the sections dropped because what
    they name is gone.

    Both name a section by its index among *all* the module's sections, so a section the
    transform adds or removes before the target (class B takes out the memory section and
    adds the start and data-count sections) would leave ``reloc.CODE`` naming the data-count
    section, and ``.debug_line``'s symbol the data section. Relocations of a dropped section
    (``reloc..debug_info`` once DWARF goes) describe nothing any more; a symbol table whose
    section is gone is dropped, and every relocation with it (they point into it)."""
    if relocations is None:
        return []
    keys = _section_keys(module)
    gone = []
    for name, target in relocations.targets.items():
        payload = module.get_custom(name)
        if payload is None:
            continue  # dropped already (reloc.DATA, reloc.CODE)
        if target not in keys:
            module.remove_custom(name)
            gone.append(name)
            continue
        _index, end = uleb32_at(payload, 0, len(payload))
        module.set_custom(name, uleb(keys.index(target)) + payload[end:])
    linking = module.get_custom(LINKING)
    if linking is not None:
        try:
            retargeted = _retarget_section_symbols(linking, relocations.keys, keys)
        except WasmDecodeError:
            retargeted = linking  # not the linking format: left as it is
        if retargeted is None:
            relocs = [n for n in module.custom_names() if n.startswith(RELOC_PREFIX)]
            for name in [LINKING, *relocs]:
                module.remove_custom(name)
            gone += [LINKING, *relocs]
        else:
            module.set_custom(LINKING, retargeted)
    return sorted(gone)


def _retarget_section_symbols(payload: bytes, old: list[SectionKey],
                              new: list[SectionKey]) -> bytes | None:
    """``payload``, a ``linking`` section, with every section symbol's index naming in ``new``
    the section it named in ``old`` (the tool conventions' Linking.md); ``None`` when one's
    section is not in ``new``. Everything else is copied as it was; relocations name symbols
    by their position in the table, which does not change."""
    r = Reader(payload)
    out = [uleb(r.uleb())]  # the version
    while not r.at_end():
        kind, size = r.u8(), r.uleb()
        body = r.take(size)
        if kind == _SYMBOL_TABLE:
            rewritten = _section_symbols(body, old, new)
            if rewritten is None:
                return None
            body = rewritten
        out += [bytes((kind,)), uleb(len(body)), body]
    return b"".join(out)


def _section_symbols(table: bytes, old: list[SectionKey],
                     new: list[SectionKey]) -> bytes | None:
    """The symbol table subsection with its section symbols retargeted (see
    :func:`_retarget_section_symbols`)."""
    r = Reader(table)
    count = r.count("a symbol count")
    out = [uleb(count)]
    for _ in range(count):
        start = r.pos
        kind, flags = r.u8("a symbol kind"), r.uleb()
        if kind == _SYMBOL_SECTION:
            index = r.uleb()
            if index >= len(old) or old[index] not in new:
                return None
            out.append(bytes((kind,)) + uleb(flags) + uleb(new.index(old[index])))
            continue
        if kind == _SYMBOL_DATA:
            r.name()
            if not flags & _SYMBOL_UNDEFINED:
                r.uleb(), r.uleb(), r.uleb()  # segment, offset, size
        else:  # function, global, tag, table: an index, and a name when it has one
            r.uleb()
            if not flags & _SYMBOL_UNDEFINED or flags & _SYMBOL_EXPLICIT_NAME:
                r.name()
        out.append(table[start:r.pos])
    if not r.at_end():
        raise r.error("the end of the symbol table")
    return b"".join(out)
