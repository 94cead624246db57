"""Preopened directories and path resolution that cannot leave them.

A guest path is always relative to a directory fd the guest holds (a preopen or a directory opened
beneath one). Resolution uses Linux ``openat2`` with ``RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS``:
the kernel itself refuses absolute paths, ``..`` above the start directory and symlinks (at any
depth) whose target leaves it, with no window between checking and using a path. Where the kernel
lacks ``openat2`` (before 5.6) we walk the path one component at a time with ``O_NOFOLLOW`` and
expand symlinks ourselves, keeping a depth counter so ``..`` can never climb above the start.

Operations that act on a name rather than an open file (mkdir, unlink, rename, link, symlink,
readlink) resolve the *parent* beneath the start directory and then use the ``*at`` call on the
final component, which is never followed (so a final symlink cannot redirect them outside).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat as stat_mod

_SYS_OPENAT2 = 437  # same number on every Linux architecture (unified syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08
_MAX_SYMLINKS = 40


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_have_openat2: bool | None = None


class Escape(OSError):
    """The path would leave the directory it is resolved beneath (WASI ``ENOTCAPABLE``)."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.EXDEV, f"path escapes its preopen: {path}")


class Preopen:
    """A granted directory: ``host`` on this machine, seen by the guest as ``guest``.

    A plain class: a dataclass would import ``dataclasses`` (~6 ms of every run's start-up), a
    named tuple is built with ``eval`` (~0.5 ms).
    """

    __slots__ = ("host", "guest")

    def __init__(self, host: str, guest: str) -> None:
        self.host = host
        self.guest = guest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Preopen) and (self.host, self.guest) == (other.host,
                                                                           other.guest)

    def __hash__(self) -> int:
        return hash((self.host, self.guest))

    def __repr__(self) -> str:
        return f"Preopen(host={self.host!r}, guest={self.guest!r})"

    @staticmethod
    def parse(spec: str) -> Preopen:
        """``HOST[::GUEST]`` as on wasmtime's command line; GUEST defaults to HOST. As there,
        anything after a second ``::`` is ignored (``a::b::c`` is ``a`` seen as ``b``)."""
        parts = spec.split("::")
        host = parts[0]
        if not host:
            from threadify.errors import ThreadifyError  # (only a bad spec pays the import)

            raise ThreadifyError(f"--dir {spec!r}: empty host directory",
                                 "write each preopen as HOST[::GUEST]")
        return Preopen(host, parts[1] if len(parts) > 1 else host)


def _openat2(dirfd: int, path: str, flags: int, mode: int) -> int:
    tmpfile = getattr(os, "O_TMPFILE", 0)  # includes the O_DIRECTORY bit: compare whole
    creating = bool(flags & os.O_CREAT) or (tmpfile != 0 and flags & tmpfile == tmpfile)
    how = _OpenHow(flags, mode if creating else 0, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
    raw = os.fsencode(path)
    while True:
        fd = _syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(raw),
                      ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.EINTR:
            continue
        if err == errno.EXDEV:
            raise Escape(path)
        raise OSError(err, os.strerror(err), path)


def _walk_open(dirfd: int, path: str, flags: int, mode: int) -> int:
    """Fallback without ``openat2``: component walk, symlinks expanded by hand."""
    if path.startswith("/"):
        raise Escape(path)
    if not path:  # (no component at all: unlike ".", it names nothing)
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    pending = [p for p in path.split("/") if p not in ("", ".")]
    # A trailing slash asks for a directory: the last link is followed even under O_NOFOLLOW.
    trailing_dir = path.endswith(("/", "/."))
    no_follow = bool(flags & os.O_NOFOLLOW) and not trailing_dir
    stack = [os.dup(dirfd)]  # stack[-1] is the current directory; len-1 is the depth
    links = 0
    try:
        while pending:
            part = pending.pop(0)
            if part == "..":
                if len(stack) == 1:
                    raise Escape(path)
                os.close(stack.pop())
                continue
            last = not pending
            cur = stack[-1]
            try:
                st = os.stat(part, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if not (last and flags & os.O_CREAT):
                    raise
                if trailing_dir:  # open makes no directory: "new/" is EISDIR, "new/." NOENT
                    err = errno.ENOENT if path.rstrip("/").endswith("/.") else errno.EISDIR
                    raise OSError(err, os.strerror(err), path) from None
                return os.open(part, flags | os.O_NOFOLLOW, mode, dir_fd=cur)
            if stat_mod.S_ISLNK(st.st_mode) and not (last and no_follow):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(part, dir_fd=cur)
                if target.startswith("/"):
                    raise Escape(path)
                pending[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            if last:
                extra = os.O_DIRECTORY if trailing_dir else 0
                return os.open(part, flags | extra | os.O_NOFOLLOW, mode, dir_fd=cur)
            stack.append(os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, dir_fd=cur))
        return os.open(".", flags, mode, dir_fd=stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def open_beneath(dirfd: int, path: str, flags: int, mode: int = 0o666) -> int:
    """``openat(dirfd, path, flags)`` that cannot resolve to anything outside ``dirfd``."""
    global _have_openat2
    if "\0" in path:
        raise OSError(errno.EINVAL, "NUL byte in path", path)
    flags |= os.O_CLOEXEC
    if _have_openat2 is not False:
        try:
            return _openat2(dirfd, path, flags, mode)
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise
            _have_openat2 = False
    return _walk_open(dirfd, path, flags, mode)


def split_parent(dirfd: int, path: str, *, strip_slashes: bool = False) -> tuple[int, str]:
    """Open the parent of ``path`` beneath ``dirfd``; returns ``(parent_fd, final_name)``.

    The split follows the rule wasmtime's sandboxing library applies, so trailing slashes mean
    what they mean there: a path ending in ``/`` or ``/.`` names the directory itself (the
    parent is the whole path and the final name is ``.``), as does a path ending in ``..``
    (``a/..`` opens ``a/..`` and acts on ``.``). ``strip_slashes`` first drops trailing slashes
    (what mkdir and rmdir do). The final name never contains a slash, so an ``*at`` call on it
    stays inside the parent. The caller closes ``parent_fd``.
    """
    if path.startswith("/"):
        raise Escape(path)
    if "\0" in path:  # the final name goes to libc as a C string: it must not end early
        raise OSError(errno.EINVAL, "NUL byte in path", path)
    if strip_slashes:
        path = path.rstrip("/") or path
    if path == "":
        raise OSError(errno.ENOENT, "empty path", path)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.endswith(("/", "/.")) or not parts or parts[-1] == "..":
        head, name = (path if parts else "."), "."
    else:
        head, name = "/".join(parts[:-1]) or ".", parts[-1]
    parent = open_beneath(dirfd, head, os.O_PATH | os.O_DIRECTORY)
    return parent, name


def components(path: str) -> list[str]:
    """The components of a relative path as Rust's ``Path::components`` sees them, which is how
    wasmtime's sandboxing library decides how to stat a path: empty parts, trailing slashes and
    ``.`` parts are dropped, except a ``.`` that starts the path."""
    parts = path.split("/")
    kept = [p for p in parts if p not in ("", ".")]
    return ["."] + kept if parts[0] == "." else kept


UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_SYMLINK_NOFOLLOW = 0x100


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _timespec(value: int | None) -> _Timespec:
    """``None`` keeps the time, ``-1`` means now, anything else is nanoseconds."""
    if value is None:
        return _Timespec(0, UTIME_OMIT)
    if value < 0:
        return _Timespec(0, UTIME_NOW)
    return _Timespec(value // 1_000_000_000, value % 1_000_000_000)


def set_times(dirfd: int, name: str | None, atime: int | None, mtime: int | None,
              follow: bool = True) -> None:
    """``utimensat``: ``name=None`` acts on ``dirfd`` itself (``futimens``).

    Python's ``os.utime`` cannot leave one of the two times unchanged, which WASI's ``fstflags``
    ask for, so the call goes to libc directly.
    """
    times = (_Timespec * 2)(_timespec(atime), _timespec(mtime))
    if name is None:
        result = _libc.futimens(ctypes.c_int(dirfd), times)
    else:
        flags = 0 if follow else AT_SYMLINK_NOFOLLOW
        result = _libc.utimensat(ctypes.c_int(dirfd), ctypes.c_char_p(os.fsencode(name)), times,
                                 ctypes.c_int(flags))
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), name)
