"""Segments pass: active data segments become passive ones that the first instance writes.

An active segment is written by *every* instantiation — for a thread that means re-writing the
program's data over live memory that earlier threads changed. Passive segments are written
only by explicit ``memory.init``; :mod:`threadify.passes.threads` emits those in the code only
the first instance runs. ``.tdata`` stays available (never dropped): it is the TLS template every
later thread copies. Segment indices do not change; ``memory.init`` needs a DataCount section.
"""

from __future__ import annotations

from typing import NamedTuple

from threadify.wasm import Module


class SegmentInit(NamedTuple):
    """A data segment the first instance writes (it was active before the transform).

    A named tuple rather than a frozen dataclass: large modules have thousands of segments
    (10 000 in CRuby), and a tuple is made in a third of the time (docs/performance.md).
    """

    segment: int  #: the segment's index (``index`` is a tuple method)
    offset: bytes  #: the segment's constant offset expression, with its final ``end``
    length: int
    keep: bool  #: ``True`` for ``.tdata``: later threads copy it, so it is never dropped


def passivate(module: Module, tdata: int | None) -> list[SegmentInit]:
    """Turn every active segment passive; returns what the first instance must write."""
    writes = [SegmentInit(index, offset, length, index == tdata)
              for index, offset, length in module.make_data_passive()]
    if writes or module.data_count is not None:
        module.data_count = module.data_segment_count()
    return writes
