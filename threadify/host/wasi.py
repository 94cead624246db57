"""WASI preview1 for every thread of one program, over a single shared fd table.

wasmtime-py's own WASI gives each Store its own fd table, so a file opened by one thread would be
invisible to the others; delegating to one native WASI context would serialise every call behind
one lock (a thread blocked reading stdin would stall all others' output). So the host implements
preview1 itself: one :class:`Wasi` object per program holds the fd table, every thread's imports
call into it, and blocking calls (``fd_read`` on a pipe or terminal, ``poll_oneoff``) wait in the
kernel with the GIL released and no lock held, so they stall nobody.

The behaviour is wasmtime 46's, call by call (docs/wasi.md lists the few places where we differ
and why): the descriptor model (stdio streams, preopened and opened directories, files with a
position kept by the host), the rights ``fd_fdstat_get`` reports (derived from how a descriptor
was opened; ``fd_fdstat_set_rights`` is not supported), the errno of every failure, and what
ends the program instead of returning an errno: an out-of-bounds or misaligned pointer and an
argument outside its flag or enum type end the run with exit code 1, as wasmtime's CLI does.

Guest memory is accessed through :class:`~threadify.host.memory.LinearMemory` (bounds
checked). Paths go through :mod:`threadify.host.sandbox`, so nothing outside the granted preopens
is reachable. Each function returns a WASI errno; exceptions are translated here and never reach
wasmtime (see :mod:`threadify.host.linking`). The older snapshot ``wasi_unstable`` is the same
implementation seen through :mod:`threadify.host.wasi_unstable`; ``poll_oneoff``'s
subscriptions and waiting are in :mod:`threadify.host.poll`.
"""

from __future__ import annotations

import errno as E
import os
import select
import stat as S
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from threadify.host import termination
from threadify.host.memory import GuestFault, LinearMemory
from threadify.host.sandbox import (
    Escape,
    Preopen,
    components,
    open_beneath,
    set_times,
    split_parent,
)

# WASI errno values, in the order the preview1 witx defines them.
_ERRNO_NAMES = (
    "SUCCESS 2BIG ACCES ADDRINUSE ADDRNOTAVAIL AFNOSUPPORT AGAIN ALREADY BADF BADMSG BUSY CANCELED"
    " CHILD CONNABORTED CONNREFUSED CONNRESET DEADLK DESTADDRREQ DOM DQUOT EXIST FAULT FBIG"
    " HOSTUNREACH IDRM ILSEQ INPROGRESS INTR INVAL IO ISCONN ISDIR LOOP MFILE MLINK MSGSIZE"
    " MULTIHOP"
    " NAMETOOLONG NETDOWN NETRESET NETUNREACH NFILE NOBUFS NODEV NOENT NOEXEC NOLCK NOLINK NOMEM"
    " NOMSG NOPROTOOPT NOSPC NOSYS NOTCONN NOTDIR NOTEMPTY NOTRECOVERABLE NOTSOCK NOTSUP NOTTY NXIO"
    " OVERFLOW OWNERDEAD PERM PIPE PROTO PROTONOSUPPORT PROTOTYPE RANGE ROFS SPIPE SRCH STALE"
    " TIMEDOUT TXTBSY XDEV NOTCAPABLE"
).split()
# The host errnos wasmtime passes on by name; any other (ENXIO, EROFS, EXDEV, ETXTBSY, EAGAIN,
# ...) reaches the guest as IO, as in wasmtime.
_PASSED_ON = ("PIPE PERM NOENT NOMEM IO BADF BUSY ACCES NOTDIR ISDIR INVAL EXIST FBIG NOSPC SPIPE"
              " MLINK NAMETOOLONG NOTEMPTY LOOP OVERFLOW ILSEQ NOTSUP ALREADY INPROGRESS INTR")
_HOST_TO_WASI = {getattr(E, "E" + name): _ERRNO_NAMES.index(name) for name in _PASSED_ON.split()}
_HOST_TO_WASI[E.EOPNOTSUPP] = _ERRNO_NAMES.index("NOTSUP")

ESUCCESS = 0
EBADF = _ERRNO_NAMES.index("BADF")
EINVAL = _ERRNO_NAMES.index("INVAL")
EIO = _ERRNO_NAMES.index("IO")
EINTR = _ERRNO_NAMES.index("INTR")
ENOTDIR = _ERRNO_NAMES.index("NOTDIR")
ENOTSUP = _ERRNO_NAMES.index("NOTSUP")
EPERM = _ERRNO_NAMES.index("PERM")
ELOOP = _ERRNO_NAMES.index("LOOP")
ENOENT = _ERRNO_NAMES.index("NOENT")
ESPIPE = _ERRNO_NAMES.index("SPIPE")
EILSEQ = _ERRNO_NAMES.index("ILSEQ")
ENOTSOCK = _ERRNO_NAMES.index("NOTSOCK")
ENOMEM = _ERRNO_NAMES.index("NOMEM")
ENAMETOOLONG = _ERRNO_NAMES.index("NAMETOOLONG")
EOVERFLOW = _ERRNO_NAMES.index("OVERFLOW")

# filetype
FT_UNKNOWN, FT_BLOCK, FT_CHAR, FT_DIR, FT_FILE, FT_SOCK_DGRAM, FT_SOCK_STREAM, FT_SYMLINK = range(8)
# fdflags
FDF_APPEND, FDF_DSYNC, FDF_NONBLOCK, FDF_RSYNC, FDF_SYNC = 1, 2, 4, 8, 16
FDF_ALL = 31
# oflags
OF_CREAT, OF_DIRECTORY, OF_EXCL, OF_TRUNC = 1, 2, 4, 8
OF_ALL = 15
LOOKUP_SYMLINK_FOLLOW = 1
# rights (the bits preview1 defines; preview0 lacks the last one, SOCK_ACCEPT)
R_FD_READ, R_FD_SEEK, R_FD_WRITE = 1 << 1, 1 << 2, 1 << 6
R_FD_READDIR, R_PATH_FILESTAT_SET_SIZE, R_FD_FILESTAT_SET_SIZE = 1 << 14, 1 << 19, 1 << 22
R_ALL = (1 << 30) - 1
# What wasmtime reports for every preopened directory, whatever the host allows.
R_PREOPEN_BASE = 0x7B7FE00
R_PREOPEN_INHERITING = 0xFF7FFFF
# fstflags
FST_ATIM, FST_ATIM_NOW, FST_MTIM, FST_MTIM_NOW = 1, 2, 4, 8
FST_ALL = 15
# clockid (the last two, the CPU-time clocks, wasmtime does not have); whence; signal
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
CLOCK_COUNT, WHENCE_COUNT, SIGNAL_COUNT = 4, 3, 31
# the guest clocks the host has, and the host clock behind each
CLOCKS = {CLOCK_REALTIME: time.CLOCK_REALTIME, CLOCK_MONOTONIC: time.CLOCK_MONOTONIC}
# riflags, sdflags (both two bits); siflags has no flag but is a u16
RIFLAGS_ALL = SDFLAGS_ALL = 3
SIFLAGS_MAX = 0xFFFF
# advice, indexed by its WASI value (Linux numbers SEQUENTIAL and RANDOM the other way round)
_ADVICE = (os.POSIX_FADV_NORMAL, os.POSIX_FADV_SEQUENTIAL, os.POSIX_FADV_RANDOM,
           os.POSIX_FADV_WILLNEED, os.POSIX_FADV_DONTNEED, os.POSIX_FADV_NOREUSE)
AT_FDCWD = -100

# Record layouts (poll's subscriptions and events are in threadify.host.poll). FDSTAT is the same
# in both snapshots, so wasi_unstable uses it too; filestat differs there.
_FILESTAT = struct.Struct("<QQB7xQQQQQ")
FDSTAT = struct.Struct("<BxHxxxxQQ")
_DIRENT = struct.Struct("<QQIB3x")

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF

# wasmtime copies at most this many bytes of guest data per call (iovec arrays and the buffer
# moved, path strings, poll arrays); a call that needs more fails with NOMEM.
HOSTCALL_FUEL = 128 << 20
# random_get asks for at most this many bytes; more ends the program.
RANDOM_MAX = 64 << 20


class WasiError(Exception):
    """Raised inside a WASI function to return ``errno`` to the guest."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


class GuestTrap(Exception):
    """The call ends the whole program with exit code 1, as wasmtime's CLI ends it.

    wasmtime turns an out-of-bounds or misaligned pointer and an argument outside its WASI type
    (an unknown flag bit, an enum value past the last) into an error that aborts the run instead
    of an errno; so do we.
    """


class GuestMisaligned(GuestTrap):
    """A misaligned pointer: a :class:`GuestTrap` that Wasmer's WASIX answers differently
    (``UNKNOWN`` rather than ``MEMVIOLATION``, :mod:`threadify.host.wasix`)."""


def _filetype(mode: int) -> int:
    if S.S_ISREG(mode):
        return FT_FILE
    if S.S_ISDIR(mode):
        return FT_DIR
    if S.S_ISCHR(mode):
        return FT_CHAR
    if S.S_ISBLK(mode):
        return FT_BLOCK
    if S.S_ISLNK(mode):
        return FT_SYMLINK
    return FT_UNKNOWN  # FIFOs and sockets too, as wasmtime reports them


def _siphash13(data: bytes) -> int:
    """SipHash-1-3 with zero keys: the hash Rust's ``DefaultHasher::new()`` computes.

    wasmtime reports a file's inode to the guest as this hash of the host's (device, inode)
    pair, and every device as 1; computing the same value lets a guest compare inode numbers
    across the two hosts.
    """
    def rotl(x: int, b: int) -> int:
        return ((x << b) | (x >> (64 - b))) & M64

    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573

    def rnd() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & M64
        v1 = rotl(v1, 13) ^ v0
        v0 = rotl(v0, 32)
        v2 = (v2 + v3) & M64
        v3 = rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & M64
        v3 = rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & M64
        v1 = rotl(v1, 17) ^ v2
        v2 = rotl(v2, 32)

    length = len(data)
    tail = length & ~7
    for i in range(0, tail, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        rnd()
        v0 ^= m
    last = int.from_bytes(data[tail:] + bytes(8 - (length - tail)), "little")
    last |= (length & 0xFF) << 56
    v3 ^= last
    rnd()
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        rnd()
    return v0 ^ v1 ^ v2 ^ v3


_SECOND_NS = 1_000_000_000


def _timestamp(ns: int) -> int:
    """A file time (ns since the epoch, negative before it) as the WASI timestamp wasmtime 46
    reports: a time less than a second before the epoch comes out as its distance from it (only
    whole seconds before the epoch are refused there), an earlier one or one past what a u64 of
    nanoseconds holds is ``OVERFLOW``. Files dated before 1970 do occur (unpacked from old
    archives): stat'ing one is an errno, never the end of the run."""
    if ns < 0:
        if ns <= -_SECOND_NS:
            raise WasiError(EOVERFLOW)
        return -ns
    if ns > M64:
        raise WasiError(EOVERFLOW)
    return ns


def _inode(st: os.stat_result) -> int:
    return _siphash13(struct.pack("<QQ", st.st_dev & M64, st.st_ino & M64))


STDIN, STDOUT, STDERR, DIRECTORY, FILE = range(5)


class FdEntry:
    """One open guest descriptor, shaped as wasmtime's preview1 adapter keeps it.

    Files carry their own position (reads and writes go to that offset; the host fd's offset is
    never used), the append and non-blocking flags, and the mode they were opened in, from which
    ``fd_fdstat_get`` derives the rights it reports. (A plain class: importing ``dataclasses``
    would cost every run ~6 ms of start-up, see docs/performance.md.)
    """

    __slots__ = ("kind", "host_fd", "owned", "isatty", "preopen", "readable", "writable",
                 "position", "append", "nonblock", "io_lock")

    def __init__(self, kind: int, host_fd: int, owned: bool = True, isatty: bool = False,
                 preopen: str | None = None, readable: bool = True, writable: bool = False,
                 position: int = 0, append: bool = False, nonblock: bool = False) -> None:
        self.kind = kind
        self.host_fd = host_fd
        self.owned = owned
        self.isatty = isatty
        self.preopen = preopen
        self.readable = readable
        self.writable = writable
        self.position = position
        self.append = append
        self.nonblock = nonblock
        # Serialises position updates: two threads writing through one descriptor must not
        # both write at the same offset (the kernel's own offset would have kept them apart).
        self.io_lock = threading.Lock()


def check_bits(value: int, allowed: int, what: str) -> int:
    """``value`` if it sets only ``allowed`` bits; any other bit ends the program, as wasmtime
    ends it for a flags argument outside its WASI type (both snapshots)."""
    if value & ~allowed:
        raise GuestTrap(f"invalid flag value {value:#x} for {what}")
    return value


def check_enum(value: int, count: int, what: str) -> int:
    """``value`` if it is one of an enum's ``count`` values; anything else ends the program."""
    if not 0 <= value < count:
        raise GuestTrap(f"invalid enum value {value} for {what}")
    return value


class Wasi:
    """The preview1 functions of one program; every thread's instance links the same object."""

    RIGHTS_MASK = R_ALL

    def __init__(self, memory: LinearMemory, args: list[str],
                 env: list[tuple[str, str]], preopens: list[Preopen]) -> None:
        self.mem = memory
        self.args = [a.encode() + b"\0" for a in args]
        self.env = [f"{k}={v}".encode() + b"\0" for k, v in env]
        self.lock = threading.Lock()
        # wasmtime's monotonic clock counts from the program's start, not the host's boot.
        self.mono_origin = time.monotonic_ns()
        self.table: dict[int, FdEntry] = {}
        self.free: set[int] = set()
        for fd, kind in ((0, STDIN), (1, STDOUT), (2, STDERR)):
            self.table[fd] = FdEntry(kind, fd, owned=False, isatty=os.isatty(fd))
        for pre in preopens:
            try:
                # The guest reads the name as UTF-8 (fd_prestat_dir_name): one that is not (a
                # directory name the OS gave as undecodable bytes) is refused before the run,
                # not met by the program as an errno it could not explain.
                pre.guest.encode()
                host_fd = os.open(pre.host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except UnicodeEncodeError:
                from threadify.errors import ThreadifyError

                shown = pre.guest.encode(errors="surrogateescape").decode(
                    errors="backslashreplace")
                raise ThreadifyError(f"--dir: the guest name '{shown}' is not valid UTF-8, "
                                     "which WASI requires", "give it a UTF-8 name: HOST::GUEST"
                                     ) from None
            except OSError as exc:
                from threadify.errors import ThreadifyError

                raise ThreadifyError(f"--dir {pre.host}: {exc.strerror}",
                                     "pass an existing directory") from None
            self._push(FdEntry(DIRECTORY, host_fd, preopen=pre.guest))

    # -- plumbing ---------------------------------------------------------------------------

    def _push(self, entry: FdEntry) -> int:
        """A new descriptor number: the highest freed one, else one past the highest in use."""
        with self.lock:
            if self.free:
                fd = max(self.free)
                self.free.discard(fd)
            else:
                fd = max(self.table, default=-1) + 1
            self.table[fd] = entry
        return fd

    def descriptor(self, fd: int) -> FdEntry:
        """The table entry of ``fd``; ``BADF`` when there is none."""
        entry = self.table.get(fd)
        if entry is None:
            raise WasiError(EBADF)
        return entry

    def _file(self, fd: int) -> FdEntry:
        entry = self.descriptor(fd)
        if entry.kind != FILE:
            raise WasiError(EBADF)
        return entry

    def _dir(self, fd: int) -> FdEntry:
        entry = self.descriptor(fd)
        if entry.kind != DIRECTORY:
            raise WasiError(EBADF)
        return entry

    def _file_or_dir(self, fd: int) -> FdEntry:
        entry = self.descriptor(fd)
        if entry.kind not in (FILE, DIRECTORY):
            raise WasiError(EBADF)
        return entry

    def _seekable(self, fd: int) -> FdEntry:
        entry = self.descriptor(fd)
        if entry.kind in (STDIN, STDOUT, STDERR):
            raise WasiError(ESPIPE)
        if entry.kind != FILE:
            raise WasiError(EBADF)
        return entry

    def _path(self, ptr: int, length: int) -> str:
        if length > HOSTCALL_FUEL:
            raise WasiError(ENOMEM)
        raw = self._read(ptr, length)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise WasiError(EILSEQ) from None

    # Guest memory: a bad pointer ends the run (see GuestTrap).
    def _read(self, ptr: int, length: int) -> bytes:
        try:
            return self.mem.read(ptr, length)
        except GuestFault as exc:
            raise GuestTrap(f"pointer out of bounds: {exc}") from None

    def store(self, ptr: int, data: bytes, align: int = 1) -> None:
        """Write a result into guest memory; a pointer out of bounds or not aligned to ``align``
        (the result's alignment in its WASI type) ends the run."""
        if ptr % align:
            raise GuestMisaligned(f"pointer not aligned to {align}: {ptr:#x}")
        if not data:  # storing nothing touches no memory, wherever it points (as wasmtime)
            return
        try:
            self.mem.write(ptr, data)
        except GuestFault as exc:
            raise GuestTrap(f"pointer out of bounds: {exc}") from None

    def put32(self, ptr: int, value: int) -> None:
        """Store a u32 result (a count, a size) at an aligned ``ptr``."""
        self.store(ptr, struct.pack("<I", value & M32), 4)

    def _put64(self, ptr: int, value: int) -> None:
        self.store(ptr, struct.pack("<Q", value & M64), 8)

    def array(self, ptr: int, count: int, size: int, align: int) -> bytes:
        """The bytes of ``count`` guest records of ``size`` bytes (iovecs, subscriptions); a
        pointer out of bounds or not aligned to ``align`` ends the run, as for ``store``."""
        if ptr % align:
            raise GuestMisaligned(f"pointer not aligned to {align}: {ptr:#x}")
        return self._read(ptr, count * size)

    def _first_buffer(self, iovs: int, count: int) -> tuple[int, int]:
        """The first non-empty (buf, len) of an iovec array: wasmtime moves only that one.

        Like wasmtime, the array itself is read before anything else is looked at (an array out
        of bounds ends the run even for a descriptor that is not open), an empty array is not
        read at all, and the buffer is checked only later (:meth:`_buffer`), when the call is
        about to use it."""
        if count == 0:
            return 0, 0
        if 8 * count > HOSTCALL_FUEL:
            raise WasiError(ENOMEM)
        raw = self.array(iovs, count, 8, 4)
        for i in range(count):
            buf, length = struct.unpack_from("<II", raw, 8 * i)
            if length:
                if 8 * count + length > HOSTCALL_FUEL:
                    raise WasiError(ENOMEM)
                return buf, length
        return 0, 0

    def _buffer(self, buf: int, length: int) -> memoryview:
        """The guest bytes [buf, buf + length), or the end of the run if they are not memory."""
        if buf + length > 1 << 32:
            raise GuestTrap("buffer overflows the address space")
        return self._view(buf, length)

    def _view(self, buf: int, length: int) -> memoryview:
        try:
            return self.mem.slice(buf, length)
        except GuestFault as exc:
            raise GuestTrap(f"pointer out of bounds: {exc}") from None

    def _rights(self, value: int, what: str) -> int:
        return check_bits(value & M64, self.RIGHTS_MASK, what)

    def filestat(self, st: os.stat_result | None, isatty: bool = False) -> tuple[int, ...]:
        """(dev, ino, filetype, nlink, size, atim, mtim, ctim) as wasmtime reports them."""
        if st is None:  # stdio: everything zero but the type
            return (0, 0, FT_CHAR if isatty else FT_UNKNOWN, 0, 0, 0, 0, 0)
        return (1, _inode(st), _filetype(st.st_mode), st.st_nlink, st.st_size,
                _timestamp(st.st_atime_ns), _timestamp(st.st_mtime_ns),
                _timestamp(st.st_ctime_ns))

    def _write_filestat(self, ptr: int, fields: tuple[int, ...]) -> None:
        self.store(ptr, _FILESTAT.pack(*fields), 8)

    def _strings(self, items: list[bytes], ptrs: int, buf: int) -> int:
        for i, item in enumerate(items):
            self.put32(ptrs + 4 * i, buf)
            self.store(buf, item)
            buf += len(item)
        return ESUCCESS

    # -- args, environment, clocks, random ---------------------------------------------------

    def args_sizes_get(self, argc: int, size: int) -> int:
        self.put32(argc, len(self.args))
        self.put32(size, sum(map(len, self.args)))
        return ESUCCESS

    def args_get(self, argv: int, buf: int) -> int:
        return self._strings(self.args, argv, buf)

    def environ_sizes_get(self, count: int, size: int) -> int:
        self.put32(count, len(self.env))
        self.put32(size, sum(map(len, self.env)))
        return ESUCCESS

    def environ_get(self, environ: int, buf: int) -> int:
        return self._strings(self.env, environ, buf)

    def _clock(self, clock: int) -> int:
        check_enum(clock, CLOCK_COUNT, "clockid")
        if clock not in CLOCKS:  # the CPU-time clocks: wasmtime has none
            raise WasiError(EBADF)
        return CLOCKS[clock]

    def clock_res_get(self, clock: int, out: int) -> int:
        host = self._clock(clock)
        self._put64(out, max(1, int(time.clock_getres(host) * 1e9)))
        return ESUCCESS

    def now(self, clock: int) -> int:
        """The guest's time on ``clock`` (realtime or monotonic), in nanoseconds."""
        if clock == CLOCK_MONOTONIC:
            return time.monotonic_ns() - self.mono_origin
        return time.time_ns()

    def clock_time_get(self, clock: int, precision: int, out: int) -> int:
        self._clock(clock)
        self._put64(out, self.now(clock))
        return ESUCCESS

    def random_get(self, buf: int, length: int) -> int:
        if length > RANDOM_MAX:
            raise GuestTrap(f"random_get of {length} bytes exceeds the limit of {RANDOM_MAX}")
        self.store(buf, os.urandom(length))
        return ESUCCESS

    def sched_yield(self) -> int:
        return ESUCCESS

    def proc_exit(self, status: int) -> int:
        termination.proc_exit(status)

    def proc_raise(self, sig: int) -> int:
        check_enum(sig, SIGNAL_COUNT, "signal")
        return ENOTSUP

    # -- descriptors -------------------------------------------------------------------------

    def fd_read(self, fd: int, iovs: int, count: int, nread: int) -> int:
        buf, length = self._first_buffer(iovs, count)
        entry = self.descriptor(fd)
        if entry.kind == FILE:
            # A bad buffer ends the run before a file not open for reading is refused (BADF,
            # also when nothing is to be read), as in wasmtime.
            view = self._buffer(buf, length) if length else None
            if not entry.readable:
                raise WasiError(EBADF)
            with entry.io_lock:
                n = os.preadv(entry.host_fd, [view], entry.position) if view else 0
                entry.position += n
        elif entry.kind == STDIN:
            if not length:
                # wasmtime waits until stdin can be read, then answers an empty read with INTR
                # (whatever stdin is: a terminal, a pipe, a file, /dev/null).
                select.select([entry.host_fd], [], [])
                raise WasiError(EINTR)
            try:
                view = self._buffer(buf, length)
            except GuestTrap:
                # wasmtime reads stdin first and copies after: at its end nothing is copied, so
                # a bad buffer goes unnoticed.
                if os.read(entry.host_fd, 1):
                    raise
                n = 0
            else:
                n = os.readv(entry.host_fd, [view])
        else:
            raise WasiError(EBADF)
        self.put32(nread, n)
        return ESUCCESS

    def _write_all(self, host_fd: int, data: bytes) -> int:
        done = 0
        while done < len(data):
            done += os.write(host_fd, data[done:])
        return done

    def _fd_write(self, fd: int, iovs: int, count: int, offset: int | None, out: int) -> int:
        buf, length = self._first_buffer(iovs, count)
        entry = self.descriptor(fd)
        if entry.kind in (STDOUT, STDERR):
            if offset is not None:
                raise WasiError(ESPIPE)
        elif entry.kind != FILE:
            raise WasiError(EBADF)
        # A bad buffer ends the run before a file not open for writing is refused (BADF, also
        # when nothing is to be written), as in wasmtime.
        data = bytes(self._buffer(buf, length)) if length else b""
        if entry.kind == FILE:
            if not entry.writable:
                raise WasiError(EBADF)
            with entry.io_lock:
                if entry.append:
                    n = os.pwritev(entry.host_fd, [data], 0, os.RWF_APPEND) if data else 0
                    if offset is None:
                        entry.position = os.fstat(entry.host_fd).st_size
                else:
                    at = entry.position if offset is None else offset
                    n = os.pwrite(entry.host_fd, data, at) if data else 0
                    if offset is None:
                        entry.position = at + n
        else:
            n = self._write_all(entry.host_fd, data)
        self.put32(out, n)
        return ESUCCESS

    def fd_write(self, fd: int, iovs: int, count: int, nwritten: int) -> int:
        return self._fd_write(fd, iovs, count, None, nwritten)

    def fd_pwrite(self, fd: int, iovs: int, count: int, offset: int, nwritten: int) -> int:
        return self._fd_write(fd, iovs, count, offset & M64, nwritten)

    def fd_pread(self, fd: int, iovs: int, count: int, offset: int, nread: int) -> int:
        buf, length = self._first_buffer(iovs, count)
        entry = self.descriptor(fd)
        if entry.kind == STDIN:
            raise WasiError(ESPIPE)
        if entry.kind != FILE or not entry.readable:
            raise WasiError(EBADF)
        n = os.preadv(entry.host_fd, [self._buffer(buf, length)], offset & M64) if length else 0
        self.put32(nread, n)
        return ESUCCESS

    def fd_seek(self, fd: int, offset: int, whence: int, out: int) -> int:
        check_enum(whence, WHENCE_COUNT, "whence")
        entry = self._seekable(fd)
        with entry.io_lock:
            if whence == 0:
                if offset < 0:
                    raise WasiError(EINVAL)
                pos = offset
            elif whence == 1:
                pos = entry.position + offset
            else:
                pos = os.fstat(entry.host_fd).st_size + offset
            if not 0 <= pos <= M64:
                raise WasiError(EINVAL)
            entry.position = pos
        self._put64(out, pos)
        return ESUCCESS

    def fd_tell(self, fd: int, out: int) -> int:
        self._put64(out, self._seekable(fd).position)
        return ESUCCESS

    def fd_close(self, fd: int) -> int:
        with self.lock:
            entry = self.table.pop(fd, None)
            if entry is None:
                return EBADF
            self.free.add(fd)
        if entry.owned:
            os.close(entry.host_fd)
        return ESUCCESS

    def fd_renumber(self, fd: int, to: int) -> int:
        with self.lock:
            if to not in self.table or fd not in self.table:
                return EBADF
            if fd == to:
                return ESUCCESS
            old = self.table[to]
            self.table[to] = self.table.pop(fd)
            self.free.add(fd)
            self.free.discard(to)
        if old.owned:
            os.close(old.host_fd)
        return ESUCCESS

    def fdstat(self, entry: FdEntry) -> tuple[int, int, int, int]:
        """(filetype, flags, rights base, rights inheriting), derived as wasmtime derives them."""
        if entry.kind == STDIN:
            return (FT_CHAR if entry.isatty else FT_UNKNOWN, 0, R_FD_READ, R_FD_READ)
        if entry.kind in (STDOUT, STDERR):
            return (FT_CHAR if entry.isatty else FT_UNKNOWN, 0, R_FD_WRITE, R_FD_WRITE)
        if entry.preopen is not None:
            return (FT_DIR, 0, R_PREOPEN_BASE, R_PREOPEN_INHERITING)
        kind = _filetype(os.fstat(entry.host_fd).st_mode)
        rights = R_ALL
        if kind == FT_DIR:
            rights &= ~(R_FD_SEEK | R_FD_FILESTAT_SET_SIZE | R_PATH_FILESTAT_SET_SIZE)
        if not entry.readable:
            rights &= ~(R_FD_READ | R_FD_READDIR)
        if not entry.writable:
            rights &= ~R_FD_WRITE
        flags = (FDF_APPEND if entry.append else 0) | (FDF_NONBLOCK if entry.nonblock else 0)
        return (kind, flags, rights, rights)

    def fd_fdstat_get(self, fd: int, out: int) -> int:
        self.store(out, FDSTAT.pack(*self.fdstat(self.descriptor(fd))), 8)
        return ESUCCESS

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> int:
        check_bits(flags, FDF_ALL, "fdflags")
        entry = self._file(fd)
        if flags & (FDF_DSYNC | FDF_SYNC | FDF_RSYNC):
            return EINVAL
        entry.append = bool(flags & FDF_APPEND)
        entry.nonblock = bool(flags & FDF_NONBLOCK)
        return ESUCCESS

    def fd_fdstat_set_rights(self, fd: int, base: int, inheriting: int) -> int:
        self._rights(base, "rights")
        self._rights(inheriting, "rights")
        self._file_or_dir(fd)
        return ENOTSUP

    def fd_filestat_fields(self, fd: int) -> tuple[int, ...]:
        entry = self.descriptor(fd)
        if entry.kind in (STDIN, STDOUT, STDERR):
            return self.filestat(None, entry.isatty)
        return self.filestat(os.fstat(entry.host_fd))

    def fd_filestat_get(self, fd: int, out: int) -> int:
        self._write_filestat(out, self.fd_filestat_fields(fd))
        return ESUCCESS

    def fd_filestat_set_size(self, fd: int, size: int) -> int:
        os.ftruncate(self._file(fd).host_fd, size & M64)
        return ESUCCESS

    @staticmethod
    def _times(atim: int, mtim: int, fst: int) -> tuple[int | None, int | None]:
        check_bits(fst, FST_ALL, "fstflags")
        if (fst & FST_ATIM and fst & FST_ATIM_NOW) or (fst & FST_MTIM and fst & FST_MTIM_NOW):
            raise WasiError(EINVAL)
        a = atim & M64 if fst & FST_ATIM else -1 if fst & FST_ATIM_NOW else None
        m = mtim & M64 if fst & FST_MTIM else -1 if fst & FST_MTIM_NOW else None
        return a, m

    def fd_filestat_set_times(self, fd: int, atim: int, mtim: int, fst: int) -> int:
        a, m = self._times(atim, mtim, fst)
        entry = self._file_or_dir(fd)
        if entry.preopen is not None and (a, m) != (None, None):
            # wasmtime does not change a preopened directory's own times through its
            # descriptor (BADF); "." beneath it, by path, it does.
            return EBADF
        set_times(entry.host_fd, None, a, m)
        return ESUCCESS

    def fd_advise(self, fd: int, offset: int, length: int, advice: int) -> int:
        check_enum(advice, len(_ADVICE), "advice")
        entry = self._file(fd)
        offset, length = offset & M64, length & M64
        # As wasmtime: a length past the signed 64-bit range is INVAL, an offset past it is
        # advice about nothing (success); the kernel never sees either.
        if length >= 1 << 63:
            return EINVAL
        if offset < 1 << 63:
            os.posix_fadvise(entry.host_fd, offset, length, _ADVICE[advice])
        return ESUCCESS

    def fd_allocate(self, fd: int, offset: int, length: int) -> int:
        self._file(fd)
        return ENOTSUP

    def fd_datasync(self, fd: int) -> int:
        os.fdatasync(self._file(fd).host_fd)
        return ESUCCESS

    def fd_sync(self, fd: int) -> int:
        os.fsync(self._file(fd).host_fd)
        return ESUCCESS

    def fd_prestat_get(self, fd: int, out: int) -> int:
        entry = self.descriptor(fd)
        if entry.preopen is None:
            return EBADF
        self.store(out, struct.pack("<BxxxI", 0, len(entry.preopen.encode())), 4)
        return ESUCCESS

    def fd_prestat_dir_name(self, fd: int, path: int, length: int) -> int:
        entry = self.descriptor(fd)
        if entry.preopen is None:
            return ENOTDIR
        name = entry.preopen.encode()
        if len(name) > length:
            return ENAMETOOLONG
        self.store(path, name)
        return ESUCCESS

    @staticmethod
    def _names(entry: FdEntry) -> list[bytes]:
        """The names in the directory, in the order the OS returns them, read through an open
        file description of their own: ``os.scandir`` on the descriptor itself reads at the
        position it shares with every other listing of it in progress (another thread's
        ``fd_readdir`` of the same descriptor), and each listing would miss names."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=entry.host_fd)
        try:
            with os.scandir(fd) as it:
                return [os.fsencode(item.name) for item in it]
        finally:
            os.close(fd)

    @staticmethod
    def _entries(entry: FdEntry, names: list[bytes],
                 first: int) -> Iterator[tuple[int, bytes, int, int]]:
        """(index, name, inode, type) from position ``first`` of ``.``, ``..`` and ``names``;
        names before ``first`` are skipped without a stat."""
        if first < 2:
            own = _inode(os.fstat(entry.host_fd))
            yield from [(i, name, own, FT_DIR) for i, name in ((0, b"."), (1, b".."))
                        if i >= first]
        for index in range(max(first, 2), len(names) + 2):
            name = names[index - 2]
            try:
                st = os.stat(name, dir_fd=entry.host_fd, follow_symlinks=False)
                kind, ino = _filetype(st.st_mode), _inode(st)
            except OSError:
                kind, ino = FT_UNKNOWN, 0
            yield index, name, ino, kind

    def fd_readdir(self, fd: int, buf: int, length: int, cookie: int, used: int) -> int:
        entry = self._dir(fd)
        # The directory is read afresh on every call, as wasmtime reads it; and, as there, it
        # is listed only when every name in it is UTF-8 (else ILSEQ, whatever the cookie).
        names = self._names(entry)
        try:
            for name in names:
                name.decode()
        except UnicodeDecodeError:
            raise WasiError(EILSEQ) from None
        out = bytearray()
        cap = length
        if cap:
            for index, name, ino, kind in self._entries(entry, names, cookie & M64):
                head = _DIRENT.pack(index + 1, ino, len(name), kind)
                out += head[:cap]
                cap -= min(cap, len(head))
                if cap == 0:
                    break
                out += name[:cap]
                cap -= min(cap, len(name))
                if cap == 0:
                    break
        self.store(buf, bytes(out))
        self.put32(used, len(out))
        return ESUCCESS

    # -- paths -------------------------------------------------------------------------------

    def path_open(self, fd: int, dirflags: int, path: int, path_len: int, oflags: int,
                  rights_base: int, rights_inheriting: int, fdflags: int, out: int) -> int:
        check_bits(dirflags, LOOKUP_SYMLINK_FOLLOW, "lookupflags")
        check_bits(oflags, OF_ALL, "oflags")
        base = self._rights(rights_base, "rights")
        self._rights(rights_inheriting, "rights")
        check_bits(fdflags, FDF_ALL, "fdflags")
        name = self._path(path, path_len)
        at = self.descriptor(fd)
        if at.kind == FILE:
            raise WasiError(ENOTDIR)
        if at.kind != DIRECTORY:
            raise WasiError(EBADF)
        if fdflags & (FDF_DSYNC | FDF_SYNC | FDF_RSYNC):  # (before the oflags check, as wasmtime)
            raise WasiError(ENOTSUP)
        if oflags & OF_DIRECTORY and oflags & (OF_CREAT | OF_EXCL | OF_TRUNC):
            raise WasiError(EINVAL)
        # Creating or truncating opens for writing too, whatever the rights ask (wasmtime); a
        # file is read unless only FD_WRITE is asked for.
        writing = bool(base & R_FD_WRITE) or bool(oflags & (OF_CREAT | OF_TRUNC))
        reading = bool(base & R_FD_READ) or not base & R_FD_WRITE
        flags = os.O_RDWR if writing and reading else os.O_WRONLY if writing else os.O_RDONLY
        if oflags & OF_DIRECTORY:
            flags |= os.O_DIRECTORY
        if oflags & OF_CREAT:
            flags |= os.O_CREAT
        if oflags & OF_EXCL:
            flags |= os.O_EXCL
        if oflags & OF_TRUNC:
            flags |= os.O_TRUNC
        follow = bool(dirflags & LOOKUP_SYMLINK_FOLLOW)
        if not follow:
            flags |= os.O_NOFOLLOW
        try:
            host_fd = open_beneath(at.host_fd, name, flags)
        except NotADirectoryError:
            if not follow and self._is_symlink(at.host_fd, name):
                raise WasiError(ELOOP) from None
            raise
        kind = FILE
        if S.S_ISDIR(os.fstat(host_fd).st_mode):
            kind = DIRECTORY
            reading, writing = True, False
        is_file = kind == FILE
        new_fd = self._push(FdEntry(kind, host_fd, readable=reading, writable=writing,
                                    append=is_file and bool(fdflags & FDF_APPEND),
                                    nonblock=is_file and bool(fdflags & FDF_NONBLOCK)))
        self.put32(out, new_fd)
        return ESUCCESS

    @staticmethod
    def _is_symlink(dirfd: int, path: str) -> bool:
        try:
            parent, name = split_parent(dirfd, path)
        except OSError:
            return False
        try:
            return S.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
        except OSError:
            return False
        finally:
            os.close(parent)

    def _stat_at(self, dirfd: int, follow: bool, path: str) -> os.stat_result:
        if follow:
            host_fd = open_beneath(dirfd, path, os.O_PATH)
            try:
                return os.fstat(host_fd)
            finally:
                os.close(host_fd)
        # Without following, as wasmtime's sandboxing library does it: a path of one component
        # (trailing slashes and "." parts do not count: "f/." is "f", "ld/" is the link) is
        # stat'ed by name; any other is opened beneath the directory with O_NOFOLLOW, which a
        # trailing slash overrides ("./ld/" is the directory, "./lf/" is NOTDIR).
        if path.startswith("/"):
            raise Escape(path)
        if "\0" in path:
            raise WasiError(EINVAL)
        parts = components(path)
        if len(parts) == 1 and parts[0] != "..":
            return os.stat(parts[0], dir_fd=dirfd, follow_symlinks=False)
        host_fd = open_beneath(dirfd, path, os.O_PATH | os.O_NOFOLLOW)
        try:
            return os.fstat(host_fd)
        finally:
            os.close(host_fd)

    def path_filestat_fields(self, fd: int, flags: int, path: int,
                             path_len: int) -> tuple[int, ...]:
        check_bits(flags, LOOKUP_SYMLINK_FOLLOW, "lookupflags")
        at = self._dir(fd)
        name = self._path(path, path_len)
        return self.filestat(self._stat_at(at.host_fd, bool(flags & LOOKUP_SYMLINK_FOLLOW), name))

    def path_filestat_get(self, fd: int, flags: int, path: int, path_len: int,
                          out: int) -> int:
        self._write_filestat(out, self.path_filestat_fields(fd, flags, path, path_len))
        return ESUCCESS

    def path_filestat_set_times(self, fd: int, flags: int, path: int, path_len: int,
                                atim: int, mtim: int, fst: int) -> int:
        check_bits(flags, LOOKUP_SYMLINK_FOLLOW, "lookupflags")
        a, m = self._times(atim, mtim, fst)
        at = self._dir(fd)
        name = self._path(path, path_len)
        if flags & LOOKUP_SYMLINK_FOLLOW:
            # Resolve (following links) beneath the preopen, then act on what was found: the
            # /proc entry of an O_PATH descriptor leads to exactly that inode.
            host_fd = open_beneath(at.host_fd, name, os.O_PATH)
            try:
                set_times(AT_FDCWD, f"/proc/self/fd/{host_fd}", a, m, follow=True)
            finally:
                os.close(host_fd)
            return ESUCCESS
        parent, last = split_parent(at.host_fd, name)
        try:
            set_times(parent, last, a, m, follow=False)
        finally:
            os.close(parent)
        return ESUCCESS

    def _with_parent(self, fd: int, path: int, path_len: int, action: Callable[[int, str], Any],
                     strip: bool = False) -> int:
        at = self._dir(fd)
        parent, name = split_parent(at.host_fd, self._path(path, path_len), strip_slashes=strip)
        try:
            action(parent, name)
        finally:
            os.close(parent)
        return ESUCCESS

    def path_create_directory(self, fd: int, path: int, path_len: int) -> int:
        return self._with_parent(fd, path, path_len, lambda d, n: os.mkdir(n, dir_fd=d),
                                 strip=True)

    def path_remove_directory(self, fd: int, path: int, path_len: int) -> int:
        # Trailing slashes are dropped before removing: the WASI test suite requires that "dir/"
        # can be removed (wasmtime answers EINVAL; see docs/wasi.md). Where the suite says
        # nothing, wasmtime's answers stay: it first resolves "x/" following links (so a
        # dangling, looping or escaping link is NOENT, LOOP, PERM) and refuses a link to a
        # directory with EINVAL.
        at = self._dir(fd)  # (the descriptor is looked at before the path is read)
        name = self._path(path, path_len)
        stripped = name.rstrip("/")
        if stripped != name and stripped:
            os.close(split_parent(at.host_fd, name)[0])
            if self._is_symlink(at.host_fd, stripped):
                return EINVAL
        return self._with_parent(fd, path, path_len, lambda d, n: os.rmdir(n, dir_fd=d),
                                 strip=True)

    def path_unlink_file(self, fd: int, path: int, path_len: int) -> int:
        return self._with_parent(fd, path, path_len, lambda d, n: os.unlink(n, dir_fd=d))

    def path_readlink(self, fd: int, path: int, path_len: int, buf: int, buf_len: int,
                      used: int) -> int:
        result: list[bytes] = []
        self._with_parent(fd, path, path_len,
                          lambda d, n: result.append(os.fsencode(os.readlink(n, dir_fd=d))))
        try:
            result[0].decode()
        except UnicodeDecodeError:  # wasmtime returns link targets as strings
            return EILSEQ
        data = result[0][:buf_len]
        self.store(buf, data)
        self.put32(used, len(data))
        return ESUCCESS

    def path_symlink(self, old: int, old_len: int, fd: int, new: int, new_len: int) -> int:
        at = self._dir(fd)
        target = self._path(old, old_len)
        name = self._path(new, new_len)
        if target.startswith("/"):
            # An absolute target could only ever lead outside the sandbox.
            return EPERM
        parent, last = split_parent(at.host_fd, name)
        try:
            os.symlink(target, last, dir_fd=parent)
        finally:
            os.close(parent)
        return ESUCCESS

    def path_rename(self, fd: int, old: int, old_len: int, new_fd: int, new: int,
                    new_len: int) -> int:
        src = self._dir(fd)
        dst = self._dir(new_fd)
        old_path = self._path(old, old_len)
        new_path = self._path(new, new_len)
        src_parent, src_name = split_parent(src.host_fd, old_path, strip_slashes=True)
        try:
            dst_parent, dst_name = split_parent(dst.host_fd, new_path, strip_slashes=True)
            try:
                # As in wasmtime: a trailing slash on the source requires a directory there;
                # one on the destination is ignored.
                if old_path.endswith("/") and src_name != ".":
                    src_name += "/"
                os.rename(src_name, dst_name, src_dir_fd=src_parent, dst_dir_fd=dst_parent)
            finally:
                os.close(dst_parent)
        finally:
            os.close(src_parent)
        return ESUCCESS

    def path_link(self, old_fd: int, old_flags: int, old: int, old_len: int, new_fd: int,
                  new: int, new_len: int) -> int:
        check_bits(old_flags, LOOKUP_SYMLINK_FOLLOW, "lookupflags")
        src = self._dir(old_fd)
        dst = self._dir(new_fd)
        old_path = self._path(old, old_len)
        new_path = self._path(new, new_len)
        if old_flags & LOOKUP_SYMLINK_FOLLOW:
            return EINVAL
        src_parent, src_name = split_parent(src.host_fd, old_path)
        try:
            dst_parent, dst_name = split_parent(dst.host_fd, new_path)
            try:
                os.link(src_name, dst_name, src_dir_fd=src_parent, dst_dir_fd=dst_parent,
                        follow_symlinks=False)
            finally:
                os.close(dst_parent)
        finally:
            os.close(src_parent)
        return ESUCCESS

    # -- poll (threadify.host.poll), sockets -------------------------------------------------

    def poll_oneoff(self, subs: int, events: int, count: int, nevents: int) -> int:
        # Imported here, not at the top: poll builds on this module's descriptors and errnos.
        from threadify.host import poll

        return poll.poll_oneoff(self, subs, events, count, nevents)

    def sock_accept(self, fd: int, flags: int, out: int) -> int:
        check_bits(flags, FDF_ALL, "fdflags")
        self.descriptor(fd)
        return ENOTSOCK

    def sock_recv(self, fd: int, iovs: int, count: int, flags: int, out_len: int,
                  out_flags: int) -> int:
        check_bits(flags, RIFLAGS_ALL, "riflags")
        self.descriptor(fd)
        return ENOTSOCK

    def sock_send(self, fd: int, iovs: int, count: int, flags: int, out_len: int) -> int:
        if flags > SIFLAGS_MAX:
            raise GuestTrap(f"siflags {flags:#x} out of range")
        self.descriptor(fd)
        return ENOTSOCK

    def sock_shutdown(self, fd: int, how: int) -> int:
        check_bits(how, SDFLAGS_ALL, "sdflags")
        self.descriptor(fd)
        return ENOTSOCK


# name -> parameter kinds ('i' = i32, 'I' = i64); every function returns an i32 errno except
# proc_exit, which returns nothing.
SIGNATURES: dict[str, str] = {
    "args_get": "ii", "args_sizes_get": "ii", "environ_get": "ii", "environ_sizes_get": "ii",
    "clock_res_get": "ii", "clock_time_get": "iIi",
    "fd_advise": "iIIi", "fd_allocate": "iII", "fd_close": "i", "fd_datasync": "i",
    "fd_fdstat_get": "ii", "fd_fdstat_set_flags": "ii", "fd_fdstat_set_rights": "iII",
    "fd_filestat_get": "ii", "fd_filestat_set_size": "iI", "fd_filestat_set_times": "iIIi",
    "fd_pread": "iiiIi", "fd_prestat_get": "ii", "fd_prestat_dir_name": "iii",
    "fd_pwrite": "iiiIi", "fd_read": "iiii", "fd_readdir": "iiiIi", "fd_renumber": "ii",
    "fd_seek": "iIii", "fd_sync": "i", "fd_tell": "ii", "fd_write": "iiii",
    "path_create_directory": "iii", "path_filestat_get": "iiiii",
    "path_filestat_set_times": "iiiiIIi", "path_link": "iiiiiii", "path_open": "iiiiiIIii",
    "path_readlink": "iiiiii", "path_remove_directory": "iii", "path_rename": "iiiiii",
    "path_symlink": "iiiii", "path_unlink_file": "iii",
    "poll_oneoff": "iiii", "proc_exit": "i", "proc_raise": "i", "sched_yield": "",
    "random_get": "ii", "sock_accept": "iii", "sock_recv": "iiiiii", "sock_send": "iiiii",
    "sock_shutdown": "ii",
}
NO_RESULT = frozenset({"proc_exit"})
PREVIEW1 = "wasi_snapshot_preview1"


def errno_of(exc: BaseException) -> int | None:
    """The WASI errno for an expected failure, or ``None`` for a host bug."""
    if isinstance(exc, WasiError):
        return exc.errno
    if isinstance(exc, Escape):
        return EPERM
    if isinstance(exc, OSError):
        return _HOST_TO_WASI.get(exc.errno or 0, EIO)
    if isinstance(exc, (OverflowError, ValueError)):
        return EINVAL
    return None
