"""The library as a caller meets it: typed keyword-only options, bytes in, bytes out.

A misspelt option must be caught before the build runs (by mypy, and by Python at the call),
a path passed instead of the module's bytes must say how to read the file, and the report of
:func:`threadify.inspect` must be typed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import threadify
from tests.tooling import FIXTURES

CLASS_B = FIXTURES / "c/wasm/tls.nonshared.wasm"
NON_ATOMIC = FIXTURES / "c/wasm/nonatomic.plain.wasm"


def test_misspelt_keyword_is_a_type_error_at_the_call() -> None:
    options: dict[str, Any] = {"stack_sise": 65536}
    with pytest.raises(TypeError, match="stack_sise"):
        threadify.transform(CLASS_B.read_bytes(), **options)


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        threadify.transform(CLASS_B.read_bytes(), 65536)  # type: ignore[call-arg]


@pytest.mark.parametrize("path", [str(CLASS_B), CLASS_B])
@pytest.mark.parametrize("entry", ["transform", "inspect"])
def test_a_path_is_a_clear_type_error(path: str | Path, entry: str) -> None:
    with pytest.raises(TypeError, match=r"not a path: pass pathlib\.Path\(.*\)\.read_bytes\(\)"):
        getattr(threadify, entry)(path)


def test_bytearray_and_memoryview_are_accepted() -> None:
    data = CLASS_B.read_bytes()
    out = threadify.transform(data)
    assert threadify.transform(bytearray(data)) == out
    assert threadify.transform(memoryview(data)) == out
    assert threadify.inspect(memoryview(data)).verdict == threadify.inspect(data).verdict


def test_other_types_are_refused() -> None:
    with pytest.raises(TypeError, match="not list"):
        threadify.transform([0, 97, 115, 109])  # type: ignore[arg-type]


# -- the report of inspect ------------------------------------------------------------------


def test_verdict_is_an_enum_that_still_compares_as_text() -> None:
    report = threadify.inspect(CLASS_B.read_bytes())
    assert report.verdict is threadify.Verdict.B
    assert report.verdict == "B" and f"{report.verdict}" == "B"
    assert report.accepted
    assert [v.accepted for v in threadify.Verdict] == [True, True, True, False]


def test_report_fields_are_typed() -> None:
    from threadify.inspection import MemoryReport, TlsReport
    from threadify.linker import Found

    report = threadify.inspect(CLASS_B.read_bytes())
    assert isinstance(report.memory, MemoryReport) and not report.memory.shared
    assert isinstance(report.tls, TlsReport) and report.tls.size > 0
    assert report.symbols is not None and isinstance(report.symbols.stack_pointer, Found)
    assert report.symbols.stack_pointer.how  # says how it was found
    assert report.threadify is None
    ready = threadify.inspect(threadify.transform(CLASS_B.read_bytes()))
    assert ready.verdict is threadify.Verdict.C
    assert ready.threadify is not None
    assert ready.threadify.version == threadify.__version__ and ready.threadify.abi == 1
    assert ready.threadify.record["stack_size"] == 1 << 20


def test_rejection_report_carries_the_hint() -> None:
    report = threadify.inspect(NON_ATOMIC.read_bytes())
    assert report.verdict is threadify.Verdict.D and not report.accepted
    assert report.hint is not None
    assert report.hint.suggestions == (threadify.Suggestion("allow_non_atomic", True),)
    assert "allow_non_atomic=True" in (report.fix or "")
    assert report.as_dict()["fix"] == report.fix


def test_malformed_input_is_class_d() -> None:
    report = threadify.inspect(b"\0asm\x02\0\0\0")
    assert report.verdict is threadify.Verdict.D and "byte 4" in report.reasons[0]


# -- hints speak the caller's language ------------------------------------------------------


def test_hint_names_the_keyword_for_library_callers() -> None:
    with pytest.raises(threadify.ThreadifyError) as info:
        threadify.transform(NON_ATOMIC.read_bytes())
    text = str(info.value)
    assert "allow_non_atomic=True" in text and "--allow-non-atomic" not in text
    assert "<allow_non_atomic>" in (info.value.fix_for(lambda s: "<" + s.option + ">") or "")


@pytest.mark.parametrize("kwargs,keyword", [
    ({"stack_size": 1000}, "stack_size=1 * 1024 * 1024"),
    ({"max_memory": 1000}, "max_memory=256 * 1024 * 1024"),
])
def test_option_value_hints_are_python(kwargs: dict[str, Any], keyword: str) -> None:
    with pytest.raises(threadify.ThreadifyError) as info:
        threadify.transform(CLASS_B.read_bytes(), **kwargs)
    assert keyword in str(info.value) and "--" not in str(info.value)


def test_the_suggested_value_works() -> None:
    """A build tool can apply a hint's suggestion as it is."""
    data = CLASS_B.read_bytes()
    with pytest.raises(threadify.ThreadifyError) as info:
        threadify.transform(data, max_memory=1 << 16)
    # 64 KiB is below the initial memory: the error suggests a maximum that fits.
    assert "smaller than the module's initial memory" in info.value.problem
    (suggestion,) = info.value.suggestions
    assert suggestion.option == "max_memory" and isinstance(suggestion.value, int)
    assert threadify.inspect(threadify.transform(data, max_memory=suggestion.value)).accepted


def test_plain_hints_keep_braces() -> None:
    error = threadify.ThreadifyError("p", "use {x}")
    assert str(error) == "p\nuse {x}" and error.suggestions == ()


# -- what a type checker sees ---------------------------------------------------------------

SNIPPET = '''\
import threadify
from threadify.inspection import Report

data = b"\\\\0asm"
threadify.transform(data, stack_size=65536, max_memory=None, stack_check=True)
threadify.transform(data, stack_sise=65536)
threadify.transform(data, max_memory="256MiB")
threadify.transform(data, 65536)
report: Report = threadify.inspect(bytearray(data))
verdict: str = report.verdict
pages: int = report.memory.min_pages
'''


@pytest.mark.slow
def test_mypy_catches_misspelt_and_mistyped_options(tmp_path: Path) -> None:
    """The point of the typed signature: mistakes show before the build runs. (Slow: mypy
    type-checks the whole library behind the snippet.)"""
    from mypy import api

    snippet = tmp_path / "caller.py"
    snippet.write_text(SNIPPET)
    out, err, status = api.run(["--strict", "--no-incremental", "--cache-dir", os.devnull,
                                str(snippet)])
    errors = {int(line.split(":")[1]): line for line in out.splitlines() if ": error:" in line}
    assert status == 1, out + err
    assert set(errors) == {6, 7, 8, 11}, out  # line 10: a Verdict is a str
    assert 'Unexpected keyword argument "stack_sise"' in errors[6]
    assert '"max_memory"' in errors[7] and "int | None" in errors[7]
    assert "Too many positional arguments" in errors[8]
    assert '"None" of "MemoryReport | None"' in errors[11]  # typed, and may be absent


def test_signature_matches_the_options() -> None:
    """transform's keywords are exactly the fields of Options, with the same defaults."""
    import dataclasses
    import inspect

    from threadify.pipeline import Options

    params = list(inspect.signature(threadify.transform).parameters.values())
    assert params[0].name == "data"
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    keywords = {p.name: p.default for p in params[1:]}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    assert keywords == {f.name: f.default for f in dataclasses.fields(Options)}
