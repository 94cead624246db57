"""Reading the input and writing the output, with the failures a user can meet.

The output is written atomically (a temporary file beside the target, then a rename) and only
after every check passed, so a failed run never leaves a partial or stale-looking output.

Only ``os`` is used: ``pathlib`` and ``tempfile`` cost ~6 ms of imports together, which every
transform of a small module would pay (docs/performance.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from .parsing import fail


def read_input(path: str) -> bytes:
    """The bytes of ``path`` (``-``: standard input); an unreadable path fails cleanly."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        if os.path.isdir(path):
            fail(f"{path} is a directory, not a .wasm file")
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except PermissionError:
        fail(f"{path}: permission denied")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror or error}")


def write_output(path: str, data: bytes | list[bytes | memoryview],
                 before_commit: Callable[[], None] | None = None) -> None:
    """Write ``data`` (bytes or chunks) atomically: a temporary file beside the target, then a
    rename. ``before_commit`` runs before the rename (or before anything reaches stdout) and
    may fail: the temporary file is then removed and nothing is written."""
    chunks = [data] if isinstance(data, bytes) else data
    if path == "-":
        if before_commit is not None:
            before_commit()
        try:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            fail("cannot write to standard output: the reader closed the pipe")
        except OSError as error:
            fail(f"cannot write to standard output: {error.strerror or error}")
        return
    if os.path.isdir(path):
        fail(f"{path} is a directory", "give the output file's name with -o")
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
    except FileNotFoundError:
        fail(f"cannot write {path}: directory {directory} does not exist")
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


def _temporary_file(directory: str, name: str) -> tuple[int, str]:
    """A new file ``.NAME.XXXXXXXX.tmp`` in ``directory``, opened for writing only by us (what
    ``tempfile.mkstemp`` does)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        candidate = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(candidate, flags, 0o600), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
