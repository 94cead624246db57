"""Every rejection threadify makes is a :class:`ThreadifyError`.

Callers (the CLI, build tools embedding the library) catch this one type and print
``str(error)``: the first line names the problem, an optional second line says how to fix it.
Anything else escaping the library is a bug.
"""

from __future__ import annotations


class ThreadifyError(Exception):
    """Base of every rejection: a message naming the problem and, optionally, the fix."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n{fix}")


class WasmDecodeError(ThreadifyError):
    """The bytes are not a well-formed WebAssembly module.

    ``offset`` is the byte offset in the input where decoding failed and ``expected`` what the
    decoder was looking for there.
    """

    def __init__(self, offset: int, expected: str) -> None:
        self.offset = offset
        self.expected = expected
        super().__init__(f"malformed WebAssembly at byte {offset}: expected {expected}")


class WasmModuleError(ThreadifyError):
    """A well-formed module whose items do not fit together as asked: an index out of range, or
    a function whose type is not a plain function type. Raised by the binary layer, which
    knows nothing of the transform's input classes."""


class UnsupportedModuleError(ThreadifyError):
    """A well-formed module that threadify cannot make thread-ready (input class D)."""
