"""What a run calls once the main instance exists: the command's entry points, as the wasmtime
CLI chooses and calls them (docs/host.md, "Entry points").

wasmtime's ``run`` does not insist on ``_start``. After instantiating (which runs the module's
start function) it calls ``_initialize`` when the module exports a function of that name (a
*reactor*'s set-up), then the function exported under the empty name ``""``, or else
``_start``, or nothing at all (exit 0). That function may take parameters, which are parsed from
the program's arguments (``i32``/``i64`` in decimal or ``0x`` hex, ``f32``/``f64`` as decimals),
and may return results, which are printed on stdout one per line. The host does the same, in the
same order, so that a module behaves here as it does there — output, exit code and all.

Only the types of these few functions are needed, and they are not asked of wasmtime's C API
when the module's types mention ``v128``: describing such a type aborts the process there
(:func:`threadify.host.loading.types_mention_v128`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from threadify.host import termination

INITIALIZE = "_initialize"
#: Looked up in this order, as wasmtime's CLI does: the first that is a function is called.
MAIN_NAMES = ("", "_start")

_TYPE_NAMES = {"i": "i32", "I": "i64", "f": "f32", "F": "f64", "r": "funcref", "e": "externref",
               "V": "v128", "?": "unsupported"}
#: What Rust's ``f32``/``f64`` ``from_str`` accepts (compiled only when a float is parsed).
_FLOAT = r"[+-]?(?:inf|infinity|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)"
#: An ``f32``: 23 stored significand bits, the smallest normal exponent, the first power of two
#: past the largest finite value, and the most significant digits any value needs to read back.
_F32_FRACTION_BITS, _F32_MIN_EXPONENT, _F32_OVERFLOW, _F32_MAX_DIGITS = 23, -126, 2.0 ** 128, 9


class EntryPoints:
    """The functions a run calls: ``_initialize`` (if a function) and the main one, with their
    signatures as strings of value kinds (``i``/``I``/``f``/``F``/``r``/``e``/``V``, as
    :mod:`threadify.host.loading` writes them)."""

    __slots__ = ("initialize", "main", "main_type")

    def __init__(self, initialize: tuple[str, str] | None, main: str | None,
                 main_type: tuple[str, str] = ("", "")) -> None:
        self.initialize = initialize
        self.main = main
        self.main_type = main_type


class BadArgument(Exception):
    """A program argument that cannot be the main function's parameter (one line)."""


def _fail(message: str) -> NoReturn:
    termination.end_run(termination.EXIT_HOST_ERROR, f"error: {message}")


def parse_params(kinds: str, args: Sequence[str], name: str) -> list[tuple[str, Any]]:
    """The main function's parameters from the program's arguments, as wasmtime parses them."""
    label = f"`{name}`" if name else "command default"
    if len(args) < len(kinds):
        raise BadArgument(f"not enough arguments for {label}: it takes {len(kinds)}, "
                          f"{len(args)} given")
    out: list[tuple[str, Any]] = []
    for kind, text in zip(kinds, args[:len(kinds)], strict=True):
        if kind in "iI":
            bits = 32 if kind == "i" else 64
            hexa = text[:2] in ("0x", "0X")
            digits = text[2:] if hexa else text
            body = digits.lstrip("+-")
            ok = len(digits) - len(body) <= 1 and body and all(
                c in "0123456789abcdefABCDEF" if hexa else c in "0123456789" for c in body)
            value = int(digits, 16 if hexa else 10) if ok else None
            if value is None or not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
                raise BadArgument(f"argument {text!r} is not an {_TYPE_NAMES[kind]}")
            out.append((kind, value))
        elif kind in "fF":
            if not re.fullmatch(_FLOAT, text, re.IGNORECASE):
                raise BadArgument(f"argument {text!r} is not an {_TYPE_NAMES[kind]}")
            out.append((kind, f32_from_text(text) if kind == "f" else float(text)))
        else:
            raise BadArgument(f"`{name}` takes a {_TYPE_NAMES.get(kind, kind)} parameter, which "
                              "cannot be given as an argument")
    return out


def f32_from_text(text: str) -> float:
    """The ``f32`` nearest to the decimal ``text`` (ties to even), as Rust reads it.

    Not ``float(text)`` narrowed to 32 bits: rounding twice can land on a tie the decimal was
    not on, and a C cast turns values just above the largest ``f32`` into infinity."""
    value = float(text)  # correctly rounded to f64 (Python's reading, as Rust's)
    if value != value or value in (0.0, float("inf"), float("-inf")):
        return value  # NaN, infinities, and what is already zero as an f64
    from fractions import Fraction  # only for a function that takes an f32

    exact = abs(Fraction(text.lstrip("+-")))
    exponent = exact.numerator.bit_length() - exact.denominator.bit_length()
    if exact < Fraction(2) ** exponent:
        exponent -= 1
    # 24 significant bits; subnormals keep the smallest normal number's scale
    shift = _F32_FRACTION_BITS - max(exponent, _F32_MIN_EXPONENT)
    mantissa = round(exact * Fraction(2) ** shift)  # round half to even
    result = float(Fraction(mantissa) / Fraction(2) ** shift)
    if result >= _F32_OVERFLOW:
        result = float("inf")
    return -result if value < 0 else result


def rust_float(value: float, single: bool) -> str:
    """``value`` as Rust's ``Display`` writes an ``f32``/``f64`` (what wasmtime prints): the
    shortest digits that read back as the same value, never in exponent notation."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if single:
        for digits in range(1, _F32_MAX_DIGITS + 1):
            text = f"{value:.{digits - 1}e}"
            if f32_from_text(text) == value:
                break
    else:
        text = repr(value)
    from decimal import Decimal  # only for a function that returns a float

    return format(Decimal(text).normalize(), "f")


def format_result(kind: str, raw: Any) -> str:
    """One result as wasmtime's CLI prints it."""
    if kind == "i":
        return str(raw.i32)
    if kind == "I":
        return str(raw.i64)
    if kind == "f":
        return rust_float(raw.f32, True)
    if kind == "F":
        return rust_float(raw.f64, False)
    if kind == "r":
        return "<funcref>" if raw.funcref else "<null funcref>"
    if kind == "e":
        return "<externref>" if raw.i32 else "<null externref>"
    return str(int.from_bytes(bytes(raw.v128), "little"))


def run(instance: Any, entry: EntryPoints, args: Sequence[str]) -> NoReturn:
    """Call the entry points on the main ``instance`` (a :class:`spawning.Instance`) and end the
    run: 0 when they return, or what a trap, ``proc_exit`` or a bad argument makes it."""
    if entry.initialize is not None:
        if entry.initialize != ("", ""):
            _fail(f"`{INITIALIZE}` must take no parameters and return nothing")
        instance.call_export(INITIALIZE.encode(), None, [], "")
    if entry.main is None:
        termination.end_run(0)
    params, results = entry.main_type
    try:
        values = parse_params(params, args, entry.main)
    except BadArgument as exc:
        _fail(str(exc))
    raw = instance.call_export(entry.main.encode(), None, values, results)
    if results:
        text = "".join(f"{format_result(kind, raw[i])}\n" for i, kind in enumerate(results))
        try:
            os.write(1, text.encode())
        except OSError:
            pass
    termination.end_run(0)
