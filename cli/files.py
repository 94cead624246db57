"""Reading the input and writing the output, with the failures a user can meet.

The output is written atomically (a temporary file beside the target, then a rename) and only
after every check passed, so a failed run never leaves a partial or stale-looking output.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .parsing import fail


def read_input(path: str) -> bytes:
    """The bytes of ``path`` (``-``: standard input); an unreadable path fails cleanly."""
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    try:
        if p.is_dir():
            fail(f"{path} is a directory, not a .wasm file")
        return p.read_bytes()
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
    target = Path(path)
    if target.is_dir():
        fail(f"{path} is a directory", "give the output file's name with -o")
    directory = target.parent if str(target.parent) else Path(".")
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=directory)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        if before_commit is not None:
            before_commit()
        os.chmod(tmp_name, 0o644 & ~_umask())
        os.replace(tmp_name, target)
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
