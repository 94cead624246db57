"""Reading the input and writing the output, with the failures a user can meet.

The output is written atomically (a temporary file beside the target, then a rename) and only
after every check passed, so a failed run never leaves a partial or stale-looking output.

Only ``os`` is used: ``pathlib`` and ``tempfile`` cost ~6 ms of imports together, which every
transform of a small module would pay (docs/performance.md).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO

from .parsing import fail, stdout_failed

if TYPE_CHECKING:
    import mmap

#: Regular files at least this large are mapped instead of read (see :func:`map_input`).
MAP_AT_LEAST = 1 << 20


def read_input(path: str) -> bytes:
    """The bytes of ``path`` (``-``: standard input); an unreadable path fails cleanly."""
    if path == "-":
        return _read_module(sys.stdin.buffer)
    if not path:
        fail("the input file name is empty", "give the .wasm file to read")
    try:
        if os.path.isdir(path):
            fail(f"{path} is a directory, not a .wasm file")
        with open(path, "rb") as handle:
            return _read_module(handle)
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except PermissionError:
        fail(f"{path}: permission denied")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror or error}")


def _read_module(handle: BinaryIO) -> bytes:
    """Everything ``handle`` holds, unless its first bytes are not a module's magic: then only
    those, which the decoder rejects. A device or pipe that never ends (``/dev/zero``, a
    mistyped ``/dev/urandom``) would otherwise be read until memory runs out."""
    head = handle.read(4)
    if head != b"\0asm":
        return head
    return head + handle.read()


def map_input(path: str) -> bytes | mmap.mmap:
    """Like :func:`read_input`, but a large regular file is mapped read-only instead of read.

    Reading copies the file into fresh memory: ~0.6 ms of CPU per MB (15 ms for a 24 MB
    module), more than the whole rewrite of most modules. Mapped, the sections are views of the
    page cache and the output is written from them directly. (As with any mapped input, a file
    truncated by another process while threadify runs ends the process.)
    """
    if path != "-" and os.name == "posix":  # elsewhere a mapped file cannot be replaced
        try:
            with open(path, "rb") as handle:
                info = os.fstat(handle.fileno())
                if stat.S_ISREG(info.st_mode) and info.st_size >= MAP_AT_LEAST:
                    import mmap

                    return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            pass  # read_input reports the problem in its words, or reads what cannot be mapped
    return read_input(path)


def write_output(path: str, data: bytes | list[bytes | memoryview],
                 before_commit: Callable[[], None] | None = None) -> None:
    """Write ``data`` (bytes or chunks) atomically: a temporary file beside the target, then a
    rename. ``before_commit`` runs before the rename (or before anything reaches stdout) and
    may fail: the temporary file is then removed and nothing is written."""
    chunks = [data] if isinstance(data, bytes) else data
    if not path:
        fail("the output file name is empty", "give the file to write with -o ('-': stdout)")
    if path == "-":
        if before_commit is not None:
            before_commit()
        try:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        except OSError as error:
            stdout_failed(error)
        return
    if os.path.isdir(path):
        fail(f"{path} is a directory", "give the output file's name with -o")
    if _is_special(path):
        _write_into(path, chunks, before_commit)
        return
    # a symlink stays a symlink: the file it points to gets the output
    path = os.path.realpath(path) if os.path.islink(path) else path
    directory = os.path.dirname(path) or "."
    tmp_name = None
    try:
        fd, tmp_name = _temporary_file(directory, os.path.basename(path))
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        if before_commit is not None:
            before_commit()
        os.chmod(tmp_name, 0o644 & ~_umask())
        os.replace(tmp_name, path)
        tmp_name = None
    except FileNotFoundError as error:
        if not os.path.isdir(directory):
            fail(f"cannot write {path}: directory {directory} does not exist")
        # the directory is there, but no file can be created in it (/proc, say)
        fail(f"cannot write {path}: {error.strerror or error}")
    except PermissionError:
        fail(f"cannot write {path}: permission denied")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror or error}")
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def _is_special(path: str) -> bool:
    """True for an existing output that is not a regular file: a device (``/dev/null``), a
    FIFO or the pipe behind ``/dev/stdout``. Renaming a temporary file over it would replace
    the node itself — with enough rights, ``-o /dev/null`` would destroy the device."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _write_into(path: str, chunks: Sequence[bytes | memoryview],
                before_commit: Callable[[], None] | None) -> None:
    """Write into an existing device or FIFO in place (nothing to rename); as for a file, only
    after ``before_commit`` passed."""
    if before_commit is not None:
        before_commit()
    try:
        with open(path, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
    except PermissionError:
        fail(f"cannot write {path}: permission denied")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror or error}")


def _temporary_file(directory: str, name: str) -> tuple[int, str]:
    """A new file ``.NAME.XXXXXXXX.tmp`` in ``directory``, opened for writing only by us (what
    ``tempfile.mkstemp`` does)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        # at most 18 + 100 characters: a legal output name of 255 would not fit with the rest
        candidate = os.path.join(directory, f".{name[:100]}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(candidate, flags, 0o600), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
