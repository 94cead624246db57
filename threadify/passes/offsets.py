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

from threadify.wasm import Module
from threadify.wasm.reader import uleb32_at
from threadify.wasm.writer import uleb

#: Prefix of the custom sections holding relocations (``--emit-relocs``), one per section
#: they apply to: ``reloc.CODE``, ``reloc.DATA``, ``reloc..debug_info``.
RELOC_PREFIX = "reloc."

#: A section as the relocations name it: a known section's id, or a custom section's name.
SectionKey = int | str


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


def relocation_targets(module: Module) -> dict[str, SectionKey]:
    """The section each ``reloc.*`` section applies to, read before the transform changes the
    module's sections (see :func:`retarget_relocations`)."""
    relocs = [name for name in module.custom_names() if name.startswith(RELOC_PREFIX)]
    if not relocs:
        return {}
    keys = _section_keys(module)
    targets: dict[str, SectionKey] = {}
    for name in relocs:
        payload = module.get_custom(name)
        assert payload is not None
        index, _end = uleb32_at(payload, 0, len(payload))
        if 0 <= index < len(keys):  # else malformed: left as it is
            targets[name] = keys[index]
    return targets


def retarget_relocations(module: Module, targets: dict[str, SectionKey]) -> list[str]:
    """Point each kept ``reloc.*`` section at its section again; returns the names of those
    dropped because their section is gone.

    A relocation section starts with the index of its target among *all* the module's
    sections, so a section the transform adds or removes before the target (class B takes
    out the memory section and adds the start and data-count sections) would leave
    ``reloc.CODE`` naming the data-count section. Relocations of a dropped section
    (``reloc..debug_info`` once DWARF goes) describe nothing any more."""
    if not targets:
        return []
    keys = _section_keys(module)
    gone = []
    for name, target in targets.items():
        payload = module.get_custom(name)
        if payload is None:
            continue  # dropped already (reloc.DATA, reloc.CODE)
        if target not in keys:
            module.remove_custom(name)
            gone.append(name)
            continue
        _index, end = uleb32_at(payload, 0, len(payload))
        module.set_custom(name, uleb(keys.index(target)) + payload[end:])
    return sorted(gone)
