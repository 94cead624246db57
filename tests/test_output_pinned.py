"""The transform's output is pinned: every committed fixture, under several option sets, gives
exactly the bytes recorded in ``tests/output_pins.json`` (their sha256), or the same rejection.

Speed work must not change a single output byte (docs/performance.md); this test is what shows
it. When a change is *meant* to change outputs, regenerate the pins on request and say why in the
commit message::

    THREADIFY_REGEN_PINS=1 python -m pytest tests/test_output_pinned.py

A normal run never writes the file. Validation is off here (it never changes output bytes, only
whether an invalid input is rejected, which other tests cover).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

import threadify
from tests.tooling import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
PINS = Path(__file__).parent / "output_pins.json"
REGEN = os.environ.get("THREADIFY_REGEN_PINS") == "1"

#: Option sets every fixture is transformed with (name -> keyword arguments).
OPTION_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "allow-non-atomic": {"allow_non_atomic": True},
    "small-stack-max-256MiB": {"allow_non_atomic": True, "stack_size": 64 << 10,
                               "max_memory": 256 << 20},
}


def fixture_paths() -> list[Path]:
    paths = sorted(FIXTURES.rglob("*.wasm")) + sorted((ROOT / "tests").rglob("*.wasm"))
    return [p for p in paths if not p.name.startswith(".")]


def outcome(data: bytes, options: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the output, or ``rejected: <problem>``."""
    try:
        out = threadify.transform(data, validate=False, **options)
    except threadify.ThreadifyError as error:
        return f"rejected: {error.problem}"
    return "sha256:" + hashlib.sha256(out).hexdigest()


def current() -> dict[str, dict[str, str]]:
    pins: dict[str, dict[str, str]] = {}
    for path in fixture_paths():
        data = path.read_bytes()
        pins[path.relative_to(ROOT).as_posix()] = {
            name: outcome(data, options) for name, options in OPTION_SETS.items()}
    return pins


def test_outputs_match_pins() -> None:
    actual = current()
    if REGEN:
        PINS.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    assert PINS.exists(), f"missing {PINS}: run with THREADIFY_REGEN_PINS=1"
    pinned = json.loads(PINS.read_text())
    assert len(actual) >= 40, "the fixtures were not found"
    changed = [f"{path} [{name}]: {pinned.get(path, {}).get(name)} -> {value}"
               for path, results in actual.items() for name, value in results.items()
               if pinned.get(path, {}).get(name) != value]
    missing = sorted(set(pinned) - set(actual))
    assert not changed and not missing, (
        "transform output changed:\n" + "\n".join(changed + [f"{m}: gone" for m in missing])
        + "\nif intended, regenerate with THREADIFY_REGEN_PINS=1 and say why in the commit")


@pytest.mark.parametrize("options", sorted(OPTION_SETS))
def test_transform_is_deterministic(options: str) -> None:
    """Two runs in one process give the same bytes (no state leaks between transforms)."""
    path = FIXTURES / "c/wasm/tls.nonshared-stripped.wasm"
    data = path.read_bytes()
    assert outcome(data, OPTION_SETS[options]) == outcome(data, OPTION_SETS[options])
