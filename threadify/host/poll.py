"""``poll_oneoff``: subscriptions, events, and waiting for a clock or a descriptor.

Kept apart from :mod:`threadify.host.wasi` because it is the one call with machinery of its own:
two record layouts (preview0 lays out a clock subscription differently, so
:mod:`threadify.host.wasi_unstable` passes its own size and parser), the checks wasmtime 46
makes in subscription order, and the wait itself, which blocks in the kernel with the GIL
released and no lock held so a polling thread stalls nobody. Everything else it needs (the
descriptor table, guest stores, the clocks, the errnos) belongs to the program's preview1
:class:`~threadify.host.wasi.Wasi`, reached through its public pieces.
"""

from __future__ import annotations

import os
import select
import struct
import threading
import time
from collections.abc import Callable

from threadify.host.wasi import (
    CLOCK_COUNT,
    CLOCKS,
    EBADF,
    EINVAL,
    ENOMEM,
    ESUCCESS,
    FILE,
    HOSTCALL_FUEL,
    STDERR,
    STDIN,
    STDOUT,
    FdEntry,
    Wasi,
    WasiError,
)

# eventtype; subclockflags; eventrwflags
EV_CLOCK, EV_FD_READ, EV_FD_WRITE = 0, 1, 2
SUBSCRIPTION_CLOCK_ABSTIME = 1
FD_READWRITE_HANGUP = 1

# Record layouts. SUB_HEAD (a subscription's userdata and tag) and events are the same in both
# snapshots; a clock subscription differs in preview0 (threadify.host.wasi_unstable).
SUB_HEAD = struct.Struct("<QB")
_SUB_CLOCK = struct.Struct("<IxxxxQQH")  # preview1: clock id, timeout, precision, flags
SUB_SIZE = 48  # one preview1 subscription: SUB_HEAD, padding, then the largest variant
_EVENT = struct.Struct("<QHB5xQH6x")

# (userdata, tag, clock id or fd, timeout, flags) of one subscription
Subscription = tuple[int, int, int, int, int]


def subscription(raw: bytes, offset: int) -> Subscription:
    """One preview1 subscription (an unknown tag is returned as it is: poll answers it in its
    turn)."""
    userdata, tag = SUB_HEAD.unpack_from(raw, offset)
    if tag > EV_FD_WRITE:
        return userdata, tag, 0, 0, 0
    if tag == EV_CLOCK:
        ident, timeout, _precision, flags = _SUB_CLOCK.unpack_from(raw, offset + 16)
        return userdata, tag, ident, timeout, flags
    (ident,) = struct.unpack_from("<I", raw, offset + 16)
    return userdata, tag, ident, 0, 0


def poll_oneoff(wasi: Wasi, subs: int, events: int, count: int, nevents: int,
                size: int = SUB_SIZE,
                parse: Callable[[bytes, int], Subscription] = subscription) -> int:
    """poll_oneoff over subscriptions of ``size`` bytes read by ``parse`` (preview1's unless a
    snapshot passes its own)."""
    if count == 0:
        return EINVAL
    if count > 1 and (size + 32) * count > HOSTCALL_FUEL:
        return ENOMEM
    raw = wasi.array(subs, count, size, 8)
    parsed = [parse(raw, size * i) for i in range(count)]
    if count == 1 and parsed[0][1] == EV_CLOCK:
        userdata, _tag, ident, timeout, flags = parsed[0]
        if ident >= CLOCK_COUNT or flags & ~SUBSCRIPTION_CLOCK_ABSTIME:
            # (read from memory: an errno, not an abort)
            raise WasiError(EINVAL)
        if not flags & SUBSCRIPTION_CLOCK_ABSTIME:
            # wasmtime sleeps for a lone relative timeout whatever its clock, and reports one
            # byte (it fills the event as for a descriptor).
            _sleep(timeout / 1e9)
            wasi.store(events, _EVENT.pack(userdata, 0, EV_CLOCK, 1, 0), 8)
            wasi.put32(nevents, 1)
            return ESUCCESS
    now = time.monotonic_ns()
    deadlines: dict[int, int] = {}  # subscription index -> monotonic deadline (ns)
    fds: dict[int, tuple[int, FdEntry]] = {}  # index -> (event type, entry)
    # Checked in subscription order, as wasmtime does: the first bad one gives the errno
    # (an fd that is not open before an unknown type that follows it: BADF).
    for i, (_userdata, tag, ident, timeout, flags) in enumerate(parsed):
        if tag > EV_FD_WRITE:
            return EINVAL
        if tag == EV_CLOCK:
            if ident not in CLOCKS or flags & ~SUBSCRIPTION_CLOCK_ABSTIME:
                return EINVAL
            if flags & SUBSCRIPTION_CLOCK_ABSTIME:
                timeout -= wasi.now(ident)
            deadlines[i] = now + max(0, min(timeout, 1 << 62))
        else:
            entry = wasi.descriptor(ident)
            allowed = (STDIN, FILE) if tag == EV_FD_READ else (STDOUT, STDERR, FILE)
            if entry.kind not in allowed:
                return EBADF
            fds[i] = (tag, entry)
    ready = _wait(deadlines, fds)
    out = bytearray()
    for i in sorted(ready):
        userdata, tag, _ident, _timeout, _flags = parsed[i]
        flags = 0
        if tag == EV_FD_READ and fds[i][1].kind == FILE:
            entry = fds[i][1]
            if os.fstat(entry.host_fd).st_size <= entry.position:
                flags = FD_READWRITE_HANGUP  # nothing left to read
        out += _EVENT.pack(userdata, 0, tag, 0 if tag == EV_CLOCK else 1, flags)
    wasi.store(events, bytes(out), 8)
    wasi.put32(nevents, len(ready))
    return ESUCCESS


# Longest single wait the platform accepts; longer waits (a u64 of nanoseconds is ~585 years)
# are made of several.
_MAX_WAIT = 1_000_000.0


def _sleep(seconds: float) -> None:
    """Sleep without holding anything; a run that ends meanwhile ends the process."""
    deadline = time.monotonic() + seconds
    while seconds > 0:
        threading.Event().wait(min(seconds, _MAX_WAIT))
        seconds = deadline - time.monotonic()


# A deadline this far in the past counts as already expired when the poll starts (wasmtime's
# timer works in whole milliseconds: a zero timeout is not yet due when descriptors are).
_EXPIRED_NS = 1_000_000


def _wait(deadlines: dict[int, int], fds: dict[int, tuple[int, FdEntry]]) -> set[int]:
    """Block (GIL released, no lock held) until a clock expires or a descriptor is ready.

    Files are always ready (reads and writes on them never block); stdin and stdout are
    asked of the kernel.
    """
    first = True
    while True:
        ready = {i for i, (_tag, entry) in fds.items() if entry.kind == FILE}
        waiting = {i: v for i, v in fds.items() if v[1].kind != FILE}
        now = time.monotonic_ns()
        timeout_ns = 0 if ready else min((d - now for d in deadlines.values()),
                                         default=None)
        if waiting:
            poller = select.poll()
            for _i, (tag, entry) in waiting.items():
                poller.register(entry.host_fd,
                                select.POLLIN if tag == EV_FD_READ else select.POLLOUT)
            millis = None if timeout_ns is None else \
                min(max(0, timeout_ns) / 1e6, _MAX_WAIT * 1000)
            revents = dict(poller.poll(millis))
            ready |= {i for i, (_tag, entry) in waiting.items() if revents.get(entry.host_fd)}
        elif timeout_ns is None:
            threading.Event().wait()  # nothing can ever happen: wait until the run ends
        elif timeout_ns > 0 and not ready:
            _sleep(min(timeout_ns / 1e9, _MAX_WAIT))
        now = time.monotonic_ns()
        slack = _EXPIRED_NS if first and ready else 0
        ready |= {i for i, d in deadlines.items() if d + slack <= now}
        first = False
        if ready:
            return ready
