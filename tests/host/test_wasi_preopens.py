"""What a program finds of its ``--dir`` preopens (``fixtures/wasi/src/preopens.c``: prestat
name and length, type, whether "." opens beneath), on ``threadify run`` and on the wasmtime
46.0.1 CLI, for the ways a preopen can be written: a relative or absolute host path, with or
without ``::GUEST``, an empty guest name, ``.``, trailing slashes, a second ``::`` (ignored with
what follows, as wasmtime ignores it), the same guest name twice."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.host.runner import RUN
from tests.host.wasi_diff import REFERENCE, WASI_FIXTURES
from tests.tooling import wasmtime_cli

PROGRAM = WASI_FIXTURES / "preopens.wasm"

SPECS = [["one"], ["one::/"], ["one::."], ["one::/a/b/"], ["one::"], ["ABSOLUTE"], ["one/"],
         ["./one"], ["one::x::y"], ["one::::y"], ["one::/a", "two::/a"], ["one::/a", "two::/b"]]


def _outcomes(specs: list[str], tmp_path: Path) -> list[tuple[int, str]]:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    options = []
    for spec in specs:
        options += ["--dir", spec.replace("ABSOLUTE", str(tmp_path / "one"))]
    outcomes = []
    for cmd in ([str(wasmtime_cli(REFERENCE)), "run", "-C", "cache=n", *options, str(PROGRAM)],
                [*RUN, *options, str(PROGRAM)]):
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, timeout=120)
        outcomes.append((done.returncode, done.stdout.decode(errors="replace")))
    return outcomes


def test_many_forms_at_once_are_seen_as_on_wasmtime(tmp_path: Path) -> None:
    """The fast loop's case: nine preopens written nine ways in one run (relative, absolute,
    renamed, to an empty or relative guest name, trailing slashes, a second ``::``): the same
    preopens, in the same order, as wasmtime's."""
    forms = ["one", "one::/g", "one::g", "one::", "ABSOLUTE::.", "./one", "one/", "two::/a/b/",
             "two::x::y"]
    reference, ours = _outcomes(forms, tmp_path)
    assert reference[0] == 0
    names = re.findall(r"^fd \d+: prestat SUCCESS tag=0 len=\d+ name=\[(.*?)\]", reference[1],
                       re.MULTILINE)
    assert names == ["one", "/g", "g", "", ".", "./one", "one/", "/a/b/", "x"]
    assert ours == reference


@pytest.mark.slow
@pytest.mark.parametrize("specs", SPECS, ids=[" ".join(s) for s in SPECS])
def test_preopens_are_seen_as_on_wasmtime(specs: list[str], tmp_path: Path) -> None:
    """Each form on its own, and the same guest name twice."""
    reference, ours = _outcomes(specs, tmp_path)
    assert reference[0] == 0
    assert reference[1].startswith("fd 3: prestat SUCCESS")
    assert ours == reference
