"""Metadata pass: names for what threadify added, ``producers``, and the ``threadify`` section.

Names make traps readable ("threadify_stack_overflow") even in modules that came without a
name section. The ``threadify`` custom section records the version, the options and the memory
layout the injected code uses: it marks the output as already thread-ready (so a second run is a
no-op) and tells ``--verify`` where to look.
"""

from __future__ import annotations

import json
from typing import Any

from threadify.wasm import Module, NameSection, Producers, TargetFeatures

FUNCTION_NAMES = 1  # name subsection ids
GLOBAL_NAMES = 7


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
    """``processed-by threadify <version>`` in the ``producers`` section, where tools and
    people look to learn what made a module (wasm-bindgen records itself there too)."""
    producers = module.decode_custom("producers", Producers.decode) or Producers()
    producers.add("processed-by", "threadify", version)
    module.set_custom("producers", producers.encode())


#: The features threadify's own code uses, whatever the program's: atomic instructions on a
#: shared memory, and ``memory.init`` / ``data.drop`` (bulk memory).
RUNTIME_FEATURES = ("atomics", "bulk-memory")


def record_features(module: Module) -> list[str]:
    """Add :data:`RUNTIME_FEATURES` the module's ``target_features`` section lacks (a module
    without the section keeps having none); returns those added.

    Tools read the section to know which features a module may use: binaryen's wasm-opt,
    which docs/inputs.md says to run after threadify, refuses the atomic operations of a
    module whose section does not list ``atomics`` -- the output of every input accepted
    with ``allow_non_atomic``. Sorted by name, as lld writes them."""
    features = module.decode_custom("target_features", TargetFeatures.decode)
    if features is None:
        return []
    added = [feature for feature in RUNTIME_FEATURES if not features.has(feature)]
    if added:
        kept = [(prefix, name) for prefix, name in features.features if name not in added]
        features.features = sorted(kept + [("+", feature) for feature in added],
                                   key=lambda pair: pair[1])
        module.set_custom("target_features", features.encode())
    return added


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
