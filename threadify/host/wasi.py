"""WASI preview1 for every thread of one program, over a single shared fd table.

wasmtime-py's own WASI gives each Store its own fd table, so a file opened by one thread would be
invisible to the others; delegating to one native WASI context would serialise every call behind
one lock (a thread blocked reading stdin would stall all others' output). So the host implements
preview1 itself: one :class:`Wasi` object per program holds the fd table, every thread's imports
call into it, and blocking calls (``fd_read`` on a pipe or terminal, ``poll_oneoff``) wait in the
kernel with the GIL released and no lock held, so they stall nobody.

Guest memory is accessed through :class:`~threadify.host.memory.SharedLinearMemory` (bounds
checked; ``EFAULT`` on a bad pointer). Paths go through :mod:`threadify.host.sandbox`, so nothing
outside the granted preopens is reachable. Each function returns a WASI errno; exceptions are
translated here and never reach wasmtime (see :mod:`threadify.host.linking`).
"""

from __future__ import annotations

import errno as E
import os
import select
import stat as S
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from threadify.host import termination
from threadify.host.memory import GuestFault, SharedLinearMemory
from threadify.host.sandbox import Escape, Preopen, open_beneath, split_parent

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
_HOST_TO_WASI = {getattr(E, "E" + name): i for i, name in enumerate(_ERRNO_NAMES)
                 if hasattr(E, "E" + name)}
_HOST_TO_WASI[E.EOPNOTSUPP] = _ERRNO_NAMES.index("NOTSUP")
_HOST_TO_WASI[E.EWOULDBLOCK] = _ERRNO_NAMES.index("AGAIN")

ESUCCESS = 0
EBADF = _ERRNO_NAMES.index("BADF")
EFAULT = _ERRNO_NAMES.index("FAULT")
EINVAL = _ERRNO_NAMES.index("INVAL")
EIO = _ERRNO_NAMES.index("IO")
EISDIR = _ERRNO_NAMES.index("ISDIR")
ENOTDIR = _ERRNO_NAMES.index("NOTDIR")
ENOSYS = _ERRNO_NAMES.index("NOSYS")
ENOTSUP = _ERRNO_NAMES.index("NOTSUP")
ENOTCAPABLE = _ERRNO_NAMES.index("NOTCAPABLE")
EPERM = _ERRNO_NAMES.index("PERM")
ENOTSOCK = _ERRNO_NAMES.index("NOTSOCK")

# filetype
FT_UNKNOWN, FT_BLOCK, FT_CHAR, FT_DIR, FT_FILE, FT_SOCK_DGRAM, FT_SOCK_STREAM, FT_SYMLINK = range(8)
# fdflags
FDF_APPEND, FDF_DSYNC, FDF_NONBLOCK, FDF_RSYNC, FDF_SYNC = 1, 2, 4, 8, 16
# oflags
OF_CREAT, OF_DIRECTORY, OF_EXCL, OF_TRUNC = 1, 2, 4, 8
LOOKUP_SYMLINK_FOLLOW = 1
# rights
R_FD_READ, R_FD_SEEK, R_FD_WRITE, R_FD_TELL = 1 << 1, 1 << 2, 1 << 6, 1 << 5
R_FD_ALLOCATE, R_FD_READDIR, R_FD_FILESTAT_SET_SIZE = 1 << 8, 1 << 14, 1 << 22
R_ALL = (1 << 30) - 1
# fstflags
FST_ATIM, FST_ATIM_NOW, FST_MTIM, FST_MTIM_NOW = 1, 2, 4, 8
# eventtype
EV_CLOCK, EV_FD_READ, EV_FD_WRITE = 0, 1, 2

_FILESTAT = struct.Struct("<QQB7xQQQQQ")
_FDSTAT = struct.Struct("<BxHxxxxQQ")
_DIRENT = struct.Struct("<QQIB3x")
_EVENT = struct.Struct("<QHB5xQH6x")
_SUB = struct.Struct("<QB7xIxxxxQQH6x")

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


class WasiError(Exception):
    """Raised inside a WASI function to return ``errno`` to the guest."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


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
    if S.S_ISSOCK(mode):
        return FT_SOCK_STREAM
    return FT_UNKNOWN


@dataclass
class FdEntry:
    """One open guest descriptor: the host fd behind it and what the guest may know of it."""

    host_fd: int
    filetype: int
    rights_base: int = R_ALL
    rights_inheriting: int = R_ALL
    preopen: str | None = None
    owned: bool = True
    dir_listing: list[tuple[bytes, int, int]] = field(default_factory=list)


class Wasi:
    """The preview1 functions of one program; every thread's instance links the same object."""

    def __init__(self, memory: SharedLinearMemory, args: list[str],
                 env: list[tuple[str, str]], preopens: list[Preopen]) -> None:
        self.mem = memory
        self.args = [a.encode() + b"\0" for a in args]
        self.env = [f"{k}={v}".encode() + b"\0" for k, v in env]
        self.lock = threading.Lock()
        self.table: dict[int, FdEntry] = {}
        for fd in (0, 1, 2):
            try:
                mode = os.fstat(fd).st_mode
            except OSError:
                continue
            self.table[fd] = FdEntry(fd, _filetype(mode), self._rights_for(fd, mode),
                                     owned=False)
        for pre in preopens:
            try:
                host_fd = os.open(pre.host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                from threadify.errors import ThreadifyError

                raise ThreadifyError(f"--dir {pre.host}: {exc.strerror}",
                                     "pass an existing directory") from None
            self.table[self._free_fd()] = FdEntry(host_fd, FT_DIR, preopen=pre.guest)

    # -- plumbing ---------------------------------------------------------------------------

    @staticmethod
    def _rights_for(fd: int, mode: int) -> int:
        # wasi-libc's isatty() means: character device without seek/tell rights.
        if S.S_ISCHR(mode) and os.isatty(fd):
            return R_ALL & ~(R_FD_SEEK | R_FD_TELL)
        return R_ALL

    def _free_fd(self) -> int:
        fd = 0
        while fd in self.table:
            fd += 1
        return fd

    def _get(self, fd: int) -> FdEntry:
        entry = self.table.get(fd)
        if entry is None:
            raise WasiError(EBADF)
        return entry

    def _dir(self, fd: int) -> FdEntry:
        entry = self._get(fd)
        if entry.filetype != FT_DIR:
            raise WasiError(ENOTDIR)
        return entry

    def _path(self, ptr: int, length: int) -> str:
        raw = self.mem.read(ptr, length)
        if b"\0" in raw:
            raise WasiError(EINVAL)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise WasiError(_ERRNO_NAMES.index("ILSEQ")) from None

    def _write_filestat(self, ptr: int, st: os.stat_result) -> None:
        buf = _FILESTAT.pack(st.st_dev & M64, st.st_ino & M64, _filetype(st.st_mode),
                             st.st_nlink, st.st_size, st.st_atime_ns, st.st_mtime_ns,
                             st.st_ctime_ns)
        self.mem.write(ptr, buf)

    def _strings(self, items: list[bytes], ptrs: int, buf: int) -> int:
        for i, item in enumerate(items):
            self.mem.set_u32(ptrs + 4 * i, buf)
            self.mem.write(buf, item)
            buf += len(item)
        return ESUCCESS

    # -- args, environment, clocks, random ---------------------------------------------------

    def args_sizes_get(self, argc: int, size: int) -> int:
        self.mem.set_u32(argc, len(self.args))
        self.mem.set_u32(size, sum(map(len, self.args)))
        return ESUCCESS

    def args_get(self, argv: int, buf: int) -> int:
        return self._strings(self.args, argv, buf)

    def environ_sizes_get(self, count: int, size: int) -> int:
        self.mem.set_u32(count, len(self.env))
        self.mem.set_u32(size, sum(map(len, self.env)))
        return ESUCCESS

    def environ_get(self, environ: int, buf: int) -> int:
        return self._strings(self.env, environ, buf)

    _CLOCKS = (time.CLOCK_REALTIME, time.CLOCK_MONOTONIC, time.CLOCK_PROCESS_CPUTIME_ID,
               time.CLOCK_THREAD_CPUTIME_ID)

    def clock_res_get(self, clock: int, out: int) -> int:
        if clock >= len(self._CLOCKS):
            return EINVAL
        self.mem.set_u64(out, max(1, int(time.clock_getres(self._CLOCKS[clock]) * 1e9)))
        return ESUCCESS

    def clock_time_get(self, clock: int, precision: int, out: int) -> int:
        if clock >= len(self._CLOCKS):
            return EINVAL
        self.mem.set_u64(out, time.clock_gettime_ns(self._CLOCKS[clock]))
        return ESUCCESS

    def random_get(self, buf: int, length: int) -> int:
        self.mem.write(buf, os.urandom(length))
        return ESUCCESS

    def sched_yield(self) -> int:
        os.sched_yield()
        return ESUCCESS

    def proc_exit(self, status: int) -> int:
        termination.proc_exit(status)

    def proc_raise(self, sig: int) -> int:
        return ENOSYS

    # -- descriptors -------------------------------------------------------------------------

    def fd_read(self, fd: int, iovs: int, count: int, nread: int) -> int:
        entry = self._get(fd)
        bufs = self.mem.iovecs(iovs, count)
        n = os.readv(entry.host_fd, bufs) if bufs else 0
        self.mem.set_u32(nread, n)
        return ESUCCESS

    def fd_write(self, fd: int, iovs: int, count: int, nwritten: int) -> int:
        entry = self._get(fd)
        bufs = self.mem.iovecs(iovs, count)
        n = os.writev(entry.host_fd, bufs) if bufs else 0
        self.mem.set_u32(nwritten, n)
        return ESUCCESS

    def fd_pread(self, fd: int, iovs: int, count: int, offset: int, nread: int) -> int:
        entry = self._get(fd)
        self.mem.set_u32(nread, os.preadv(entry.host_fd, self.mem.iovecs(iovs, count),
                                          offset & M64))
        return ESUCCESS

    def fd_pwrite(self, fd: int, iovs: int, count: int, offset: int, nwritten: int) -> int:
        entry = self._get(fd)
        self.mem.set_u32(nwritten, os.pwritev(entry.host_fd, self.mem.iovecs(iovs, count),
                                              offset & M64))
        return ESUCCESS

    def fd_seek(self, fd: int, offset: int, whence: int, out: int) -> int:
        entry = self._get(fd)
        if whence > 2:
            return EINVAL
        if entry.filetype == FT_DIR:
            return EBADF
        self.mem.set_u64(out, os.lseek(entry.host_fd, offset, whence))
        return ESUCCESS

    def fd_tell(self, fd: int, out: int) -> int:
        return self.fd_seek(fd, 0, os.SEEK_CUR, out)

    def fd_close(self, fd: int) -> int:
        with self.lock:
            entry = self.table.pop(fd, None)
        if entry is None:
            return EBADF
        if entry.owned:
            os.close(entry.host_fd)
        return ESUCCESS

    def fd_renumber(self, fd: int, to: int) -> int:
        with self.lock:
            entry = self.table.get(fd)
            if entry is None or to not in self.table:
                return EBADF
            old = self.table[to]
            self.table[to] = entry
            if fd != to:
                del self.table[fd]
        if fd != to and old.owned:
            os.close(old.host_fd)
        return ESUCCESS

    def fd_fdstat_get(self, fd: int, out: int) -> int:
        entry = self._get(fd)
        fl = os.get_blocking(entry.host_fd)
        import fcntl

        status = fcntl.fcntl(entry.host_fd, fcntl.F_GETFL)
        flags = (FDF_APPEND if status & os.O_APPEND else 0) | (0 if fl else FDF_NONBLOCK)
        if status & os.O_DSYNC:
            flags |= FDF_DSYNC
        if status & os.O_SYNC == os.O_SYNC:
            flags |= FDF_SYNC
        self.mem.write(out, _FDSTAT.pack(entry.filetype, flags, entry.rights_base,
                                         entry.rights_inheriting))
        return ESUCCESS

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> int:
        import fcntl

        entry = self._get(fd)
        status = fcntl.fcntl(entry.host_fd, fcntl.F_GETFL) & ~(os.O_APPEND | os.O_NONBLOCK)
        status |= (os.O_APPEND if flags & FDF_APPEND else 0)
        status |= (os.O_NONBLOCK if flags & FDF_NONBLOCK else 0)
        fcntl.fcntl(entry.host_fd, fcntl.F_SETFL, status)
        return ESUCCESS

    def fd_fdstat_set_rights(self, fd: int, base: int, inheriting: int) -> int:
        entry = self._get(fd)
        base &= M64
        inheriting &= M64
        if base & ~entry.rights_base or inheriting & ~entry.rights_inheriting:
            return ENOTCAPABLE
        entry.rights_base, entry.rights_inheriting = base, inheriting
        return ESUCCESS

    def fd_filestat_get(self, fd: int, out: int) -> int:
        self._write_filestat(out, os.fstat(self._get(fd).host_fd))
        return ESUCCESS

    def fd_filestat_set_size(self, fd: int, size: int) -> int:
        os.ftruncate(self._get(fd).host_fd, size)
        return ESUCCESS

    def _times(self, current: os.stat_result, atim: int, mtim: int, fst: int) -> tuple[int, int]:
        if (fst & FST_ATIM and fst & FST_ATIM_NOW) or (fst & FST_MTIM and fst & FST_MTIM_NOW):
            raise WasiError(EINVAL)
        now = time.time_ns()
        a = atim if fst & FST_ATIM else now if fst & FST_ATIM_NOW else current.st_atime_ns
        m = mtim if fst & FST_MTIM else now if fst & FST_MTIM_NOW else current.st_mtime_ns
        return a & M64, m & M64

    def fd_filestat_set_times(self, fd: int, atim: int, mtim: int, fst: int) -> int:
        host_fd = self._get(fd).host_fd
        os.utime(host_fd, ns=self._times(os.fstat(host_fd), atim, mtim, fst))
        return ESUCCESS

    def fd_advise(self, fd: int, offset: int, length: int, advice: int) -> int:
        self._get(fd)
        return ESUCCESS if advice <= 5 else EINVAL

    def fd_allocate(self, fd: int, offset: int, length: int) -> int:
        os.posix_fallocate(self._get(fd).host_fd, offset, length)
        return ESUCCESS

    def fd_datasync(self, fd: int) -> int:
        os.fdatasync(self._get(fd).host_fd)
        return ESUCCESS

    def fd_sync(self, fd: int) -> int:
        os.fsync(self._get(fd).host_fd)
        return ESUCCESS

    def fd_prestat_get(self, fd: int, out: int) -> int:
        entry = self._get(fd)
        if entry.preopen is None:
            return EBADF
        self.mem.write(out, struct.pack("<BxxxI", 0, len(entry.preopen.encode())))
        return ESUCCESS

    def fd_prestat_dir_name(self, fd: int, path: int, length: int) -> int:
        entry = self._get(fd)
        if entry.preopen is None:
            return EBADF
        name = entry.preopen.encode()
        if length < len(name):
            return _ERRNO_NAMES.index("NAMETOOLONG")
        self.mem.write(path, name)
        return ESUCCESS

    def fd_readdir(self, fd: int, buf: int, length: int, cookie: int, used: int) -> int:
        entry = self._dir(fd)
        if cookie == 0 or not entry.dir_listing:
            listing: list[tuple[bytes, int, int]] = []
            st = os.fstat(entry.host_fd)
            listing.append((b".", st.st_ino, FT_DIR))
            listing.append((b"..", 0, FT_DIR))
            with os.scandir(entry.host_fd) as it:
                for item in it:
                    try:
                        kind = _filetype(item.stat(follow_symlinks=False).st_mode)
                    except OSError:
                        kind = FT_UNKNOWN
                    listing.append((os.fsencode(item.name), item.inode(), kind))
            entry.dir_listing = listing
        out = bytearray()
        for index in range(cookie & M64, len(entry.dir_listing)):
            name, ino, kind = entry.dir_listing[index]
            out += _DIRENT.pack(index + 1, ino & M64, len(name), kind) + name
            if len(out) >= length:
                break
        data = bytes(out[:length])
        self.mem.write(buf, data)
        self.mem.set_u32(used, len(data))
        return ESUCCESS

    # -- paths -------------------------------------------------------------------------------

    def path_open(self, fd: int, dirflags: int, path: int, path_len: int, oflags: int,
                  rights_base: int, rights_inheriting: int, fdflags: int, out: int) -> int:
        base = self._dir(fd)
        name = self._path(path, path_len)
        rights_base &= M64
        writing = bool(rights_base & (R_FD_WRITE | R_FD_ALLOCATE | R_FD_FILESTAT_SET_SIZE))
        reading = bool(rights_base & (R_FD_READ | R_FD_READDIR))
        flags = os.O_RDWR if writing and reading else os.O_WRONLY if writing else os.O_RDONLY
        if oflags & OF_DIRECTORY:
            flags = os.O_RDONLY | os.O_DIRECTORY
        if oflags & OF_CREAT:
            flags |= os.O_CREAT
        if oflags & OF_EXCL:
            flags |= os.O_EXCL
        if oflags & OF_TRUNC:
            flags |= os.O_TRUNC
        if fdflags & FDF_APPEND:
            flags |= os.O_APPEND
        if fdflags & FDF_NONBLOCK:
            flags |= os.O_NONBLOCK
        if fdflags & (FDF_SYNC | FDF_RSYNC):
            flags |= os.O_SYNC
        elif fdflags & FDF_DSYNC:
            flags |= os.O_DSYNC
        if not dirflags & LOOKUP_SYMLINK_FOLLOW:
            flags |= os.O_NOFOLLOW
        try:
            host_fd = open_beneath(base.host_fd, name, flags)
        except IsADirectoryError:
            if oflags & (OF_CREAT | OF_TRUNC) or not writing:
                raise
            # A directory asked for with broad rights (wasi-libc does for O_RDWR-less opens).
            host_fd = open_beneath(base.host_fd, name, (flags & ~(os.O_WRONLY | os.O_RDWR))
                                   | os.O_DIRECTORY)
        kind = _filetype(os.fstat(host_fd).st_mode)
        new = FdEntry(host_fd, kind, rights_base, rights_inheriting & M64)
        with self.lock:
            new_fd = self._free_fd()
            self.table[new_fd] = new
        try:
            self.mem.set_u32(out, new_fd)
        except GuestFault:
            self.fd_close(new_fd)
            raise
        return ESUCCESS

    def _stat_path(self, fd: int, flags: int, path: str) -> os.stat_result:
        base = self._dir(fd)
        follow = bool(flags & LOOKUP_SYMLINK_FOLLOW)
        host_fd = open_beneath(base.host_fd, path, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
        try:
            return os.fstat(host_fd)
        finally:
            os.close(host_fd)

    def path_filestat_get(self, fd: int, flags: int, path: int, path_len: int,
                          out: int) -> int:
        self._write_filestat(out, self._stat_path(fd, flags, self._path(path, path_len)))
        return ESUCCESS

    def path_filestat_set_times(self, fd: int, flags: int, path: int, path_len: int,
                                atim: int, mtim: int, fst: int) -> int:
        name = self._path(path, path_len)
        base = self._dir(fd)
        follow = bool(flags & LOOKUP_SYMLINK_FOLLOW)
        host_fd = open_beneath(base.host_fd, name, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
        try:
            times = self._times(os.fstat(host_fd), atim, mtim, fst)
            # The fd is already resolved inside the sandbox; /proc names exactly that inode.
            os.utime(f"/proc/self/fd/{host_fd}", ns=times, follow_symlinks=follow)
        finally:
            os.close(host_fd)
        return ESUCCESS

    def _with_parent(self, fd: int, path: int, path_len: int,
                     action: Callable[[int, str], Any]) -> int:
        parent, name = split_parent(self._dir(fd).host_fd, self._path(path, path_len))
        try:
            action(parent, name)
        finally:
            os.close(parent)
        return ESUCCESS

    def path_create_directory(self, fd: int, path: int, path_len: int) -> int:
        return self._with_parent(fd, path, path_len, lambda d, n: os.mkdir(n, dir_fd=d))

    def path_remove_directory(self, fd: int, path: int, path_len: int) -> int:
        return self._with_parent(fd, path, path_len, lambda d, n: os.rmdir(n, dir_fd=d))

    def path_unlink_file(self, fd: int, path: int, path_len: int) -> int:
        def unlink(d: int, n: str) -> None:
            if self._path(path, path_len).endswith("/"):
                raise WasiError(ENOTDIR)
            os.unlink(n, dir_fd=d)

        return self._with_parent(fd, path, path_len, unlink)

    def path_readlink(self, fd: int, path: int, path_len: int, buf: int, buf_len: int,
                      used: int) -> int:
        result: list[bytes] = []
        self._with_parent(fd, path, path_len,
                          lambda d, n: result.append(os.fsencode(os.readlink(n, dir_fd=d))))
        data = result[0][:buf_len]
        self.mem.write(buf, data)
        self.mem.set_u32(used, len(data))
        return ESUCCESS

    def path_symlink(self, old: int, old_len: int, fd: int, new: int, new_len: int) -> int:
        target = self._path(old, old_len)
        if target.startswith("/"):
            # Following it is refused anyway; not creating it keeps the tree clean.
            return EPERM
        return self._with_parent(fd, new, new_len,
                                 lambda d, n: os.symlink(target, n, dir_fd=d))

    def path_rename(self, fd: int, old: int, old_len: int, new_fd: int, new: int,
                    new_len: int) -> int:
        src_parent, src_name = split_parent(self._dir(fd).host_fd, self._path(old, old_len))
        try:
            dst_parent, dst_name = split_parent(self._dir(new_fd).host_fd,
                                                self._path(new, new_len))
            try:
                os.rename(src_name, dst_name, src_dir_fd=src_parent, dst_dir_fd=dst_parent)
            finally:
                os.close(dst_parent)
        finally:
            os.close(src_parent)
        return ESUCCESS

    def path_link(self, old_fd: int, old_flags: int, old: int, old_len: int, new_fd: int,
                  new: int, new_len: int) -> int:
        src_parent, src_name = split_parent(self._dir(old_fd).host_fd, self._path(old, old_len))
        try:
            dst_parent, dst_name = split_parent(self._dir(new_fd).host_fd,
                                                self._path(new, new_len))
            try:
                if old_flags & LOOKUP_SYMLINK_FOLLOW:
                    # Link the resolved target; resolution itself stays beneath the preopen.
                    target = open_beneath(src_parent, src_name, os.O_PATH)
                    try:
                        os.link(f"/proc/self/fd/{target}", dst_name, dst_dir_fd=dst_parent,
                                follow_symlinks=True)
                    finally:
                        os.close(target)
                else:
                    os.link(src_name, dst_name, src_dir_fd=src_parent, dst_dir_fd=dst_parent,
                            follow_symlinks=False)
            finally:
                os.close(dst_parent)
        finally:
            os.close(src_parent)
        return ESUCCESS

    # -- poll, sockets -----------------------------------------------------------------------

    def poll_oneoff(self, subs: int, events: int, count: int, nevents: int) -> int:
        if count == 0:
            return EINVAL
        self.mem.check(subs, 48 * count)
        self.mem.check(events, 32 * count)
        now_mono = time.monotonic_ns()
        deadlines: list[tuple[int, int]] = []  # (monotonic deadline ns, userdata)
        fd_subs: list[tuple[int, int, int, int]] = []  # (userdata, type, guest fd, host fd)
        out: list[bytes] = []
        for i in range(count):
            userdata, tag, ident, timeout, _precision, flags = _SUB.unpack_from(
                self.mem.view, subs + 48 * i)
            if tag == EV_CLOCK:
                if ident >= len(self._CLOCKS):
                    out.append(_EVENT.pack(userdata, EINVAL, EV_CLOCK, 0, 0))
                    continue
                if flags & 1:  # absolute time on that clock
                    remaining = timeout - time.clock_gettime_ns(self._CLOCKS[ident])
                else:
                    remaining = timeout
                deadlines.append((now_mono + max(0, remaining), userdata))
            elif tag in (EV_FD_READ, EV_FD_WRITE):
                entry = self.table.get(ident)
                if entry is None:
                    out.append(_EVENT.pack(userdata, EBADF, tag, 0, 0))
                else:
                    fd_subs.append((userdata, tag, ident, entry.host_fd))
            else:
                return EINVAL
        if not out:
            out = self._wait(deadlines, fd_subs)
        data = b"".join(out)
        self.mem.write(events, data)
        self.mem.set_u32(nevents, len(out))
        return ESUCCESS

    def _wait(self, deadlines: list[tuple[int, int]],
              fd_subs: list[tuple[int, int, int, int]]) -> list[bytes]:
        """Block (GIL released, no lock held) until a clock expires or an fd is ready."""
        first = min((d for d, _ in deadlines), default=None)
        while True:
            now = time.monotonic_ns()
            timeout = None if first is None else max(0, first - now) / 1e9
            out: list[bytes] = []
            if fd_subs:
                poller = select.poll()
                for _u, tag, _fd, host_fd in fd_subs:
                    poller.register(host_fd, select.POLLIN if tag == EV_FD_READ
                                    else select.POLLOUT)
                ready = dict(poller.poll(None if timeout is None else timeout * 1000))
                for userdata, tag, _fd, host_fd in fd_subs:
                    revents = ready.get(host_fd, 0)
                    if revents:
                        hup = 1 if revents & (select.POLLHUP | select.POLLERR) else 0
                        out.append(_EVENT.pack(userdata, 0, tag, 1, hup))
            elif timeout is not None:
                time.sleep(timeout)
            else:  # nothing to wait for can ever happen: sleep until the run ends
                threading.Event().wait()
            now = time.monotonic_ns()
            for deadline, userdata in deadlines:
                if deadline <= now:
                    out.append(_EVENT.pack(userdata, 0, EV_CLOCK, 0, 0))
            if out:
                return out

    def sock_accept(self, fd: int, flags: int, out: int) -> int:
        self._get(fd)
        return ENOTSOCK

    def sock_recv(self, fd: int, iovs: int, count: int, flags: int, out_len: int,
                  out_flags: int) -> int:
        self._get(fd)
        return ENOTSOCK

    def sock_send(self, fd: int, iovs: int, count: int, flags: int, out_len: int) -> int:
        self._get(fd)
        return ENOTSOCK

    def sock_shutdown(self, fd: int, how: int) -> int:
        self._get(fd)
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


def errno_of(exc: BaseException) -> int | None:
    """The WASI errno for an expected failure, or ``None`` for a host bug."""
    if isinstance(exc, WasiError):
        return exc.errno
    if isinstance(exc, GuestFault):
        return EFAULT
    if isinstance(exc, Escape):
        return ENOTCAPABLE
    if isinstance(exc, OSError):
        return _HOST_TO_WASI.get(exc.errno or 0, EIO)
    if isinstance(exc, (OverflowError, ValueError)):
        return EINVAL
    return None
