"""The library as a caller meets it: typed keyword-only options, bytes in, bytes out.

A misspelt option must be caught before the build runs (by mypy, and by Python at the call),
a path passed instead of the module's bytes must say how to read the file, and the report of
:func:`threadify.inspect` must be typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import threadify
from tests.tooling import FIXTURES

CLASS_B = FIXTURES / "c/wasm/tls.nonshared.wasm"


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
