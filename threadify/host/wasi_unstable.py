"""WASI preview0 (``wasi_unstable``): the older snapshot, served by the same fd table.

Some toolchains still emit it. wasmtime implements it by converting each call to preview1, and so
do we: same functions, same descriptors, same errors, except where the two snapshots lay out
their data differently (checked against wasmtime 46, see docs/wasi.md):

- ``fd_seek``'s whence numbers its values differently: CUR=0, END=1, SET=2 (preview1: SET=0,
  CUR=1, END=2).
- ``filestat`` has a 32-bit ``nlink`` (preview1: 64-bit), so the struct is 56 bytes, not 64, and
  every field after ``filetype`` moves.
- a clock ``subscription`` carries an extra 64-bit ``identifier`` before the clock id, making a
  subscription 56 bytes, not 48 (events are the same 32 bytes).
- there is no ``sock_accept``; ``sock_recv``/``sock_send``/``sock_shutdown`` end the program, as
  wasmtime's "unsupported" error does; ``rights`` has no ``SOCK_ACCEPT`` bit, so that bit is an
  invalid argument.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from threadify.host import poll
from threadify.host.poll import EV_CLOCK, EV_FD_WRITE, SUB_HEAD
from threadify.host.wasi import (
    FDSTAT,
    SIGNATURES,
    WHENCE_COUNT,
    GuestTrap,
    Wasi,
    check_bits,
    check_enum,
)

MODULE = "wasi_unstable"

# The same functions as preview1 minus sock_accept, with the same parameter types.
P0_SIGNATURES: dict[str, str] = {name: params for name, params in SIGNATURES.items()
                                 if name != "sock_accept"}

RIGHTS_MASK = (1 << 29) - 1
_WHENCE_TO_P1 = {0: 1, 1: 2, 2: 0}  # preview0 CUR, END, SET -> preview1 numbering
_FILESTAT = struct.Struct("<QQB3xIQQQQ")
_SUB_CLOCK = struct.Struct("<QIxxxxQQH")  # identifier, clock id, timeout, precision, flags
SUB_SIZE = 56  # (preview1: 48)


class Preview0:
    """The functions whose preview0 form differs; everything else is the preview1 method.

    Each converts its arguments or results and calls preview1's implementation on the program's
    one :class:`Wasi`, through its public pieces only (descriptor lookup, guest stores, the
    record layouts and argument checks the two snapshots share)."""

    def __init__(self, wasi: Wasi) -> None:
        self.wasi = wasi

    def _write_filestat(self, ptr: int, fields: tuple[int, ...]) -> None:
        dev, ino, kind, nlink, size, atim, mtim, ctim = fields
        self.wasi.store(ptr, _FILESTAT.pack(dev, ino, kind, min(nlink, 0xFFFFFFFF), size,
                                             atim, mtim, ctim), 8)

    def fd_seek(self, fd: int, offset: int, whence: int, out: int) -> int:
        check_enum(whence, WHENCE_COUNT, "whence")
        return self.wasi.fd_seek(fd, offset, _WHENCE_TO_P1[whence], out)

    def fd_fdstat_get(self, fd: int, out: int) -> int:
        kind, flags, base, inheriting = self.wasi.fdstat(self.wasi.descriptor(fd))
        self.wasi.store(out, FDSTAT.pack(kind, flags, base & RIGHTS_MASK,
                                           inheriting & RIGHTS_MASK), 8)
        return 0

    def fd_filestat_get(self, fd: int, out: int) -> int:
        self._write_filestat(out, self.wasi.fd_filestat_fields(fd))
        return 0

    def path_filestat_get(self, fd: int, flags: int, path: int, path_len: int,
                          out: int) -> int:
        self._write_filestat(out, self.wasi.path_filestat_fields(fd, flags, path, path_len))
        return 0

    @staticmethod
    def subscription(raw: bytes, offset: int) -> tuple[int, int, int, int, int]:
        userdata, tag = SUB_HEAD.unpack_from(raw, offset)
        if tag > EV_FD_WRITE:  # answered by poll in its turn, as in preview1
            return userdata, tag, 0, 0, 0
        if tag == EV_CLOCK:
            _ident, clock, timeout, _precision, flags = _SUB_CLOCK.unpack_from(raw, offset + 16)
            return userdata, tag, clock, timeout, flags
        (fd,) = struct.unpack_from("<I", raw, offset + 16)
        return userdata, tag, fd, 0, 0

    def poll_oneoff(self, subs: int, events: int, count: int, nevents: int) -> int:
        return poll.poll_oneoff(self.wasi, subs, events, count, nevents, SUB_SIZE,
                                self.subscription)

    def path_open(self, fd: int, dirflags: int, path: int, path_len: int, oflags: int,
                  rights_base: int, rights_inheriting: int, fdflags: int, out: int) -> int:
        check_bits(rights_base, RIGHTS_MASK, "rights")
        check_bits(rights_inheriting, RIGHTS_MASK, "rights")
        return self.wasi.path_open(fd, dirflags, path, path_len, oflags, rights_base,
                                   rights_inheriting, fdflags, out)

    def fd_fdstat_set_rights(self, fd: int, base: int, inheriting: int) -> int:
        check_bits(base, RIGHTS_MASK, "rights")
        check_bits(inheriting, RIGHTS_MASK, "rights")
        return self.wasi.fd_fdstat_set_rights(fd, base, inheriting)

    def sock_recv(self, *_args: int) -> int:
        raise GuestTrap("sock_recv unsupported")

    def sock_send(self, *_args: int) -> int:
        raise GuestTrap("sock_send unsupported")

    def sock_shutdown(self, *_args: int) -> int:
        raise GuestTrap("sock_shutdown unsupported")


def implementation(wasi: Wasi, name: str) -> Callable[..., Any]:
    """The preview0 function ``name`` over the program's one :class:`Wasi`."""
    found: Callable[..., Any] = getattr(Preview0(wasi), name, None) or getattr(wasi, name)
    return found
