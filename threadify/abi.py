"""Constants of threadify's output ABI v1 (docs/abi.md), shared by the passes and by ``--verify``.

Everything threadify adds to a module lives at addresses derived from these numbers, so the
verifier (and a debugger) can find it again from the module alone:

* the **control block** (``CONTROL_BYTES``) is the top of the linker's stack: the stack
  pointer's initial value is lowered by that much, so it lies inside the initial memory but
  below ``__heap_base``, where no allocator looks — an allocator that claims every page up to
  ``memory.size`` at its first call (wasi-libc's) would take a page grown for it. A module
  whose stack pointer cannot give the room keeps the older place: one page grown just past the
  original initial memory (docs/abi.md, "Memory layout").
* every other thread gets one **thread block** from ``memory.grow``: a header, its stack, and its
  TLS block above the stack. Blocks are all the same size (options are fixed at transform time),
  so the free list needs no size classes.
"""

from __future__ import annotations

ABI_VERSION = 1
#: log2 of the wasm page size: ``memory.grow`` returns a page number, ``<< PAGE_SHIFT`` its address.
PAGE_SHIFT = 16
PAGE = 1 << PAGE_SHIFT

#: Bytes of the control block at the top of the linker's stack (the stack pointer's initial
#: value is lowered by this much; docs/abi.md, "Memory layout").
CONTROL_BYTES = 64
#: The stack pointer's initial value must be at least this for the control block to go there.
MIN_STACK_FOR_CONTROL = 4096
#: Pages grown past the initial memory for the control block when it cannot go on the stack.
CONTROL_PAGES = 1

# Control block field offsets (bytes from the control block address).
CTRL_INIT_FLAG = 0  #: one of the ``INIT_*`` states below
CTRL_LOCK = 4  #: free-list lock: ``LOCK_FREE`` or ``LOCK_HELD``
CTRL_FREE_HEAD = 8  #: address of the first free thread block, 0 when empty
CTRL_BLOCKS_CREATED = 12  #: thread blocks ever obtained from memory.grow
CTRL_BLOCKS_LIVE = 16  #: thread blocks currently owned by a thread
CTRL_MAGIC = 20  #: ``CONTROL_MAGIC`` once initialised (lets tools find the block)
CTRL_BLOCK_SIZE = 24  #: size in bytes of every thread block
CTRL_STARTS = 28  #: wasi_thread_start calls so far
CONTROL_MAGIC = 0x54_48_52_44  # the bytes "DRHT" in memory (little-endian)

# States of the control block's init flag (memory of a fresh instance reads 0).
INIT_NOT_STARTED = 0  #: no instance has started initialising memory
INIT_RUNNING = 1  #: the first instance is writing memory; later ones wait
INIT_DONE = 2  #: memory is initialised; later instances go straight on

# States of the free-list lock word.
LOCK_FREE = 0
LOCK_HELD = 1

# Thread block layout (bytes from the block's base; the base is page aligned).
BLOCK_NEXT = 0  #: free-list link while the block is free
BLOCK_CANARY = 4  #: ``CANARY`` while owned; a different value means the stack overflowed
BLOCK_TID = 8  #: thread id of the owner
BLOCK_HEADER = 16  #: the stack's lowest usable byte
CANARY = 0x7E_AD_BE_EF

# The start argument of ``wasi_thread_start``: ``struct { uint32_t func; uint32_t arg; }``.
START_FUNC = 0  #: index of a ``void (*)(void *)`` in table 0
START_ARG = 4  #: the argument ``func`` is called with

#: Alignment of every stack pointer value (the C ABI's): lld aligns the stack's top and bottom
#: to it, and threadify's stacks and stack sizes keep it.
STACK_ALIGN = 16

DEFAULT_STACK_SIZE = 1 << 20
DEFAULT_MAX_MEMORY = 1 << 30

#: Names of the exports threadify adds.
EXPORT_THREAD_START = "wasi_thread_start"
EXPORT_DESTROY = "threadify_thread_destroy"
EXPORT_MEMORY = "memory"
#: Name of the custom section that marks threadify's output (and records version and options).
CUSTOM_SECTION = "threadify"


def align_up(value: int, alignment: int) -> int:
    """Round ``value`` up to a multiple of ``alignment`` (a power of two)."""
    return (value + alignment - 1) & ~(alignment - 1)


class BlockLayout:
    """Where the stack and TLS of a thread block lie, for given stack and TLS sizes.

    The stack sits between the header and the TLS block so that an overflow runs into the
    header's canary (detected when the thread ends) before it reaches another block.
    """

    def __init__(self, stack_size: int, tls_size: int, tls_align: int) -> None:
        self.stack_size = stack_size
        self.tls_size = tls_size
        self.tls_align = max(tls_align, 1)
        self.stack_top = BLOCK_HEADER + stack_size
        self.tls_offset = align_up(self.stack_top, self.tls_align)
        self.size = align_up(self.tls_offset + tls_size, PAGE)
        self.pages = self.size // PAGE

    def __repr__(self) -> str:
        return (f"BlockLayout(stack_size={self.stack_size}, tls_size={self.tls_size}, "
                f"tls_align={self.tls_align}, size={self.size})")
