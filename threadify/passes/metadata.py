"""Metadata pass: names for what threadify added, ``producers``, and the ``threadify`` section.

Names make traps readable ("threadify_stack_overflow") even in modules that came without a
name section. The ``threadify`` custom section records the version, the options and the memory
layout the injected code uses: it marks the output as already thread-ready (so a second run is a
no-op) and tells ``--verify`` where to look.
"""

from __future__ import annotations

import json
from typing import Any

from threadify.wasm import Module, NameSection, Producers
from threadify.wasm.reader import uleb32_at
from threadify.wasm.writer import uleb

FUNCTION_NAMES = 1  # name subsection ids
GLOBAL_NAMES = 7

#: Prefix of the custom sections holding relocations (``--emit-relocs``), one per section
#: they apply to: ``reloc.CODE``, ``reloc.DATA``, ``reloc..debug_info``.
RELOC_PREFIX = "reloc."

#: A section as the relocations name it: a known section's id, or a custom section's name.
SectionKey = int | str


def name_items(module: Module, functions: dict[str, int], globals_: dict[str, int]) -> None:
    """Add names for the injected functions and globals (creating a name section if needed).

    The new items have the highest indices, so their names are appended to the existing maps
    without decoding them (large modules carry ~100k function names).
    """
    names = module.names()
    if names is None:
        names = NameSection()
    names.append(FUNCTION_NAMES, {index: name for name, index in functions.items()})
    names.append(GLOBAL_NAMES, {index: name for name, index in globals_.items()})
    module.set_names(names)


def record_producer(module: Module, version: str) -> None:
    """``processed-by threadify <version>`` in the ``producers`` section."""
    producers = module.decode_custom("producers", Producers.decode) or Producers()
    producers.add("processed-by", "threadify", version)
    module.set_custom("producers", producers.encode())


def record_section(module: Module, record: dict[str, Any]) -> bytes:
    """Write the ``threadify`` custom section: deterministic JSON (sorted keys, no spaces)."""
    payload = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    module.set_custom("threadify", payload)
    return payload


def read_section(payload: bytes) -> dict[str, Any]:
    """Parse a ``threadify`` custom section written by :func:`record_section`."""
    value = json.loads(payload.decode())
    if not isinstance(value, dict):
        raise ValueError("threadify section is not a JSON object")
    return value


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
        if index < len(keys):
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
