"""Segments pass: active data segments become passive ones that the first instance writes.

An active segment is written by *every* instantiation — for a thread that means re-writing the
program's data over live memory that earlier threads changed. Passive segments are written
only by explicit ``memory.init``; :mod:`threadify.passes.threads` emits those in the code only
the first instance runs. ``.tdata`` stays available (never dropped): it is the TLS template every
later thread copies. Segment indices do not change; ``memory.init`` needs a DataCount section.
"""

from __future__ import annotations

from dataclasses import replace

from threadify.passes.threads import SegmentInit
from threadify.wasm import Module


def passivate(module: Module, tdata: int | None) -> list[SegmentInit]:
    """Turn every active segment passive; returns what the first instance must write."""
    writes: list[SegmentInit] = []
    data = module.data
    for index, seg in enumerate(data):
        if seg.passive:
            continue
        assert seg.offset is not None
        writes.append(SegmentInit(index, bytes(seg.offset), len(seg.init), keep=index == tdata))
        data[index] = replace(seg, passive=True, offset=None, memory=0)
    if writes or module.data_count is not None:
        module.data_count = len(data)
    return writes
