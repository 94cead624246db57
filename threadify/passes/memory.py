"""Memory pass: exactly one shared, imported memory, also exported as ``memory`` (docs/abi.md).

WASI-threads hosts instantiate the module once per thread with the *same* memory, which they
can only do if the module imports it; WASI itself needs it exported as ``memory``. A defined
memory becomes the import ``env.memory``; an imported one keeps its module and name. A shared
memory needs a maximum: the input's is kept, or ``max_pages`` is used when it has none.
"""

from __future__ import annotations

from dataclasses import replace

from threadify import abi
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
