"""Every rejection threadify makes is a :class:`ThreadifyError`.

Callers (the CLI, build tools embedding the library) catch this one type and print
``str(error)``: the first line names the problem, an optional second line says how to fix it.
Anything else escaping the library is a bug.

A fix that suggests one of threadify's own options names it as the caller would write it: a
library caller reads ``max_memory=256 * 1024 * 1024``, someone at the command line reads
``--max-memory 256MiB``. So a hint is a :class:`Hint`: a template whose ``{}`` slots hold
:class:`Suggestion` objects (an option and, optionally, the value to try), rendered in the
library's words by ``str()`` and in the command line's words by the CLI (docs/errors.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Suggestion:
    """One of threadify's options named in a hint (a keyword of :func:`threadify.transform`).

    ``value`` is the value to try; ``None`` names the option alone ("a smaller stack_size").
    Immutable and compared by value, like a frozen dataclass; written out because every
    command imports this module and ``dataclasses`` costs ~6 ms of start-up.
    """

    __slots__ = ("option", "value")
    option: str
    value: int | bool | None

    def __init__(self, option: str, value: int | bool | None = None) -> None:
        object.__setattr__(self, "option", option)
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Suggestion)
        return (self.option, self.value) == (other.option, other.value)

    def __hash__(self) -> int:
        return hash((self.option, self.value))

    def __repr__(self) -> str:
        return f"Suggestion(option={self.option!r}, value={self.value!r})"

    def as_keyword(self) -> str:
        """How a library caller writes it: ``allow_non_atomic=True``, ``stack_size``."""
        if self.value is None:
            return self.option
        return f"{self.option}={python_literal(self.value)}"


def python_literal(value: int | bool) -> str:
    """``value`` as a caller would type it: sizes in binary units (``256 * 1024 * 1024``)."""
    if isinstance(value, bool) or value == 0:
        return repr(value)
    for factors in (" * 1024 * 1024 * 1024", " * 1024 * 1024", " * 1024"):
        scale = 1024 ** factors.count("1024")
        if value % scale == 0:
            return f"{value // scale}{factors}"
    return str(value)


#: Turns a suggestion into words: :meth:`Suggestion.as_keyword` or the CLI's flag spelling.
Renderer = Callable[[Suggestion], str]


class Hint:
    """A fix whose ``{}`` slots name threadify options (see the module docstring)."""

    def __init__(self, template: str, *suggestions: Suggestion) -> None:
        self.template = template
        self.suggestions = suggestions

    def render(self, name: Renderer = Suggestion.as_keyword) -> str:
        """The hint with every suggested option written by ``name``."""
        if not self.suggestions:
            return self.template  # a plain text hint: braces in it are literal
        return self.template.format(*(name(s) for s in self.suggestions))

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Hint({self.template!r}, {', '.join(map(repr, self.suggestions))})"


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters written as escapes (``\\n``).

    A problem often quotes the module — an import's name, a toolchain from the ``producers``
    section — and a module can put anything there: a newline would split the one-line error,
    and could even forge a ``threadify: error:`` line of its own.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class ThreadifyError(Exception):
    """Base of every rejection: a message naming the problem and, optionally, the fix.

    ``problem`` and ``fix`` are text (``fix`` in the library's words); ``hint`` keeps the fix's
    structure so that the command line can name its flags instead, and ``suggestions`` lists
    the options it suggests (a build tool may apply them).
    """

    def __init__(self, problem: str, fix: str | Hint | None = None) -> None:
        self.problem = one_line(problem)
        self.hint = Hint(fix) if isinstance(fix, str) else fix
        self.fix = None if self.hint is None else self.hint.render()
        super().__init__(self.problem if self.fix is None else f"{self.problem}\n{self.fix}")

    @property
    def suggestions(self) -> tuple[Suggestion, ...]:
        return () if self.hint is None else self.hint.suggestions

    def fix_for(self, name: Renderer) -> str | None:
        """The fix with the suggested options written by ``name`` (the CLI's flags)."""
        return None if self.hint is None else self.hint.render(name)


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
