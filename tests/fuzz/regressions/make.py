#!/usr/bin/env python3
"""Write the regression inputs of this directory (each the minimised form of a finding of the
input fuzzer, docs/fuzzing.md); tests/test_fuzz_inputs.py says what each must do. Run:
``python tests/fuzz/regressions/make.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tests.fuzz.mutators import MAGIC, custom, join, split, uleb  # noqa: E402
from tests.tooling import wasm_tools  # noqa: E402

FEATURES = '(@custom "target_features" "\\02+\\07atomics+\\0bbulk-memory")'
#: A shared-memory module with a stack pointer: it gets as far as the linker-symbol lookup.
LINKED = ("(module (memory 1 1000 shared) (global (mut i32) (i32.const 65536)) "
          f"{FEATURES})")


def wat(text: str) -> bytes:
    proc = subprocess.run([wasm_tools(), "parse", "-"], input=text.encode(),
                          capture_output=True, check=True)
    return proc.stdout


def producers(language: bytes, version: bytes) -> bytes:
    return (uleb(1) + uleb(8) + b"language" + uleb(1) + uleb(len(language)) + language
            + uleb(len(version)) + version)


def record(functions: dict[str, int]) -> bytes:
    fields = {"abi": 1, "block_size": 1 << 20, "control_block": 65472, "stack_pointer": 0,
              "stack_size": 1 << 20, "stack_top": 1 << 20, "tls_offset": 0, "tls_size": 0,
              "functions": functions, "globals": {"threadify_block": 0}}
    return json.dumps(fields, sort_keys=True).encode()


def main() -> None:
    files = {
        # inspect: a threadify section of 3000 '[' took json into a RecursionError
        "deep-json-threadify-section.wasm": MAGIC + join([custom("threadify", b"[" * 3000)])[8:],
        # a producer's name with a newline split the one-line error and forged a second one
        "producers-newline.wasm": join([custom("producers", producers(
            b"Go x\nthreadify: error: forged", b"1\r\n2"))]),
        # --verify of a class C module whose record lacks fields / is not UTF-8 / names a
        # function it does not have: KeyError, UnicodeDecodeError, IndexError tracebacks
        "record-missing-fields.wasm": join([custom("threadify", b'{"abi": 1}')]),
        "record-not-utf8.wasm": join([custom("threadify", b"\xff{}")]),
        # 1e999 and NaN: Python reads them, and inspect --json printed Infinity and NaN, which
        # no strict JSON reader (jq) accepts
        "record-infinity.wasm": join([custom("threadify", b'{"abi": 1, "x": 1e999, "y": NaN}')]),
        "record-bad-function.wasm": join([custom("threadify",
                                                 record({"threadify_init": 4294967295}))]),
    }
    # a name section cut short: reported at an offset inside the section, as if it were the
    # module's ("malformed WebAssembly at byte 2"), without saying which section
    linked = wat(LINKED)
    names = b"\x07" + uleb(30) + uleb(1) + uleb(0) + uleb(15) + b"__stack_pointer"
    files["name-section-cut.wasm"] = linked + bytes(join([custom("name", names)])[8:])
    # the name section names data segment 0 '.tdata', and the module has no data segment
    # (found by removing a section of a fixture): IndexError in the analysis
    tdata = uleb(1) + uleb(0) + uleb(6) + b".tdata"
    with_tls = wat(LINKED.replace("(module", '(module (global i32 (i32.const 1024)) '
                                  '(export "__tls_base" (global 0))'))
    files["tdata-name-without-segment.wasm"] = with_tls + bytes(join([custom(
        "name", b"\x09" + uleb(len(tdata)) + tdata)])[8:])
    # the code section's count claims 2^31-1 bodies; the rewrite appends its functions without
    # reading the bodies, and the count was first read while the output was being written:
    # a traceback after the transform "succeeded"
    sections = split(wat(LINKED.replace("(module", "(module (func)")))
    assert sections is not None
    sections = [(sid, uleb(0x7FFFFFFF) + payload[1:] if sid == 10 else payload)
                for sid, payload in sections]
    files["code-count-huge.wasm"] = join(sections)
    # invalid (a data count without data) with DWARF that wasm-tools cannot parse: its
    # time-stamped "WARN ] failed to parse DWARF" line was taken for the validation error
    files["invalid-with-dwarf-warning.wasm"] = join([
        (5, b"\x01\x03\x01\x64"), (6, b"\x01\x7f\x01\x41\x80\x80\x04\x0b"), (12, b"\x01"),
        custom(".debug_info", b"\x07\x00\x00\x00\x04\x00\x00\x00\x00\x00\x04")])
    for name, data in files.items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
