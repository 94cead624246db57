"""Golden tests: transform outputs, printed as WAT, equal reviewed expected files.

Two kinds, both in ``tests/golden/``:

* whole modules — ``<case>/input.wat`` and, beside it, ``<case>/expected.wat``: the complete
  output module as ``wasm-tools print`` shows it (threadify's version written as ``VERSION``),
  so a reader sees exactly what the transform does to a module. Inputs are real wasm-ld output
  of ``src/*.c`` (``build.sh`` rebuilds them), except ``own-start``, written by hand;
* the injected functions alone (``<case>.wat``), for larger real inputs.

The expected files are reviewed by a person. They are regenerated only on request:
``THREADIFY_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py`` rewrites them (then review
the diff); a normal run never writes them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import threadify
from tests.tooling import FIXTURES, print_wat, wat2wasm
from threadify.wasm import Module

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("THREADIFY_REGEN_GOLDEN") == "1"

MINIMAL = """(module (memory 2 64) (global $sp (mut i32) (i32.const 65536))
  (func (export "_start")))"""

CASES = {
    # class A, lld's TLS exports present (shared imported memory)
    "shared-tlsexports": lambda: (
        FIXTURES / "c/wasm/tls.shared-import-tlsexports.wasm").read_bytes(),
    # class B, no name section: symbols found by lld's shape; active segments written once
    "nonshared-stripped": lambda: (FIXTURES / "c/wasm/tls.nonshared-stripped.wasm").read_bytes(),
    # no TLS, no data, no table: the smallest runtime
    "minimal-no-tls": lambda: wat2wasm(MINIMAL),
}


def injected_wat(output: bytes) -> str:
    """The injected functions of ``output`` as ``wasm-tools print`` shows them."""
    record = json.loads(Module.decode(output).get_custom("threadify") or b"{}")
    wanted = set(record["functions"])
    text = print_wat(output)
    blocks = re.split(r"(?m)^(?=  \()", text)
    keep = []
    for block in blocks:
        match = re.match(r"  \(func \$(\S+)", block)
        if match and match.group(1) in wanted:
            # Function and type indices differ per input; keep names, drop ";N;" comments.
            keep.append(re.sub(r" \(;\d+;\)", "", block.rstrip()))
    return "\n".join(keep) + "\n"


#: Whole-module cases: the input classes, with and without TLS and names, and start functions
#: (lld's memory initialiser in class A, a module's own in ``own-start``).
WHOLE_MODULE_CASES = ["class-a-tls", "class-a-tls-stripped", "class-b-no-tls", "class-b-tls",
                      "class-b-tls-stripped", "own-start"]


@pytest.mark.parametrize("case", WHOLE_MODULE_CASES)
def test_whole_module_matches_golden(case: str) -> None:
    directory = GOLDEN / case
    output = threadify.transform(wat2wasm((directory / "input.wat").read_text()))
    actual = print_wat(output).replace(threadify.__version__, "VERSION")
    path = directory / "expected.wat"
    if REGEN:
        path.write_text(actual)
    assert path.exists(), f"missing {path}: run with THREADIFY_REGEN_GOLDEN=1 and review it"
    assert actual == path.read_text(), (
        f"output changed for {case}; if intended, regenerate with THREADIFY_REGEN_GOLDEN=1 and "
        "review the diff")


@pytest.mark.parametrize("case", sorted(CASES))
def test_injected_code_matches_golden(case: str) -> None:
    allow = case == "minimal-no-tls"
    output = threadify.transform(CASES[case](), allow_non_atomic=allow)
    actual = injected_wat(output)
    path = GOLDEN / f"{case}.wat"
    if REGEN:
        path.write_text(actual)
    assert path.exists(), f"missing {path}: run with THREADIFY_REGEN_GOLDEN=1 and review it"
    assert actual == path.read_text(), (
        f"injected code changed for {case}; if intended, regenerate with "
        "THREADIFY_REGEN_GOLDEN=1 and review the diff")
