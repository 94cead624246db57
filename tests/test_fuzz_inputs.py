"""Hostile and broken inputs, from the input fuzzer (tests/fuzz/fuzz_inputs.py, docs/fuzzing.md).

Every finding of the fuzzer is kept here, minimised, as a file of ``tests/fuzz/regressions/``
(``make.py`` there writes them) with what it must do now; a short property-based run of the same
mutators stays in the fast loop, a run of the fuzzer itself in the slow one. The promise under
test: bad input is class D in ``inspect`` and a one-line ``ThreadifyError`` from ``transform``
(exit 1 and one ``threadify: error:`` line on the command line), never a traceback, a zombie
process, a long loop or a large allocation; what is accepted comes out valid.
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import threadify
from tests.fuzz import mutators
from tests.tooling import FIXTURES, THREADS_FEATURES, assert_valid, slow_unless, validate
from threadify.pipeline import Options, run
from threadify.verify import verify
from threadify.wasm import Module

REGRESSIONS = Path(__file__).parent / "fuzz" / "regressions"
FUZZER = Path(__file__).parent / "fuzz" / "fuzz_inputs.py"

#: file -> (class from inspect, words of the transform's error or None, words of --verify's)
CASES: dict[str, tuple[str, str | None, str | None]] = {
    # json's RecursionError escaped inspect (a traceback from `threadify inspect`)
    "deep-json-threadify-section.wasm": ("C", None, "not a record threadify wrote"),
    # a newline in a producer's name split the error in two and forged a second error line
    "producers-newline.wasm": ("D", "built by Go 1\\r\\n2", None),
    # --verify of a class C module with a forged record: KeyError / UnicodeDecodeError /
    # IndexError tracebacks
    "record-missing-fields.wasm": ("C", None, "block_size is None"),
    "record-not-utf8.wasm": ("C", None, "can't decode byte 0xff"),
    "record-bad-function.wasm": ("C", None, "threadify_init is 4294967295, not a defined"),
    # inspect --json printed the record's 1e999 and NaN as Infinity and NaN: not JSON
    "record-infinity.wasm": ("C", None, "block_size is None"),
    # an error inside the name section was placed at an offset inside that section
    "name-section-cut.wasm": ("D", "at byte 75: expected 30 bytes of name subsection (only 18 "
                                   "left), in the 'name' custom section", None),
    # the name section names a '.tdata' segment the module does not have: IndexError
    "tdata-name-without-segment.wasm": ("A", None, None),
    # the code section's count claims 2^31-1 bodies: first read while the command line wrote
    # the output, outside its error handling (inspect: the validator finds it)
    "code-count-huge.wasm": ("D", "a code section item count that fits", None),
    # wasm-tools' time-stamped warning about the DWARF was reported as the validation error
    "invalid-with-dwarf-warning.wasm": ("D", None, None),
}


def one_line(text: str) -> None:
    assert text and "\n" not in text and "\r" not in text, repr(text)


@pytest.mark.parametrize("name", CASES)
def test_regression_in_the_library(name: str) -> None:
    data = (REGRESSIONS / name).read_bytes()
    verdict, error, verify_error = CASES[name]
    for validated in (None, False):
        report = threadify.inspect(data, validate=validated)
        if validated is None or verdict != "D":  # unvalidated, a body may look fine
            assert report.verdict == verdict, report.reasons
        for reason in report.reasons:
            one_line(reason)
        json.dumps(report.as_dict(), allow_nan=False)
        assert "Traceback" not in report.text()
    if verdict == "D":
        with pytest.raises(threadify.ThreadifyError) as caught:
            threadify.transform(data)
        one_line(caught.value.problem)
        assert "WARN" not in caught.value.problem and "[20" not in caught.value.problem
    if name == "invalid-with-dwarf-warning.wasm":
        assert caught.value.problem == ("the module is not valid WebAssembly: data count is "
                                        "non-zero but data section is absent (at offset 0x34)")
        return
    if error is not None:
        with pytest.raises(threadify.ThreadifyError) as caught:
            threadify.transform(data, validate=False)  # threadify's own checks
        one_line(caught.value.problem)
        assert error in caught.value.problem
        return
    output = threadify.transform(data)
    assert_valid(output, THREADS_FEATURES)
    if verify_error is not None:
        with pytest.raises(threadify.ThreadifyError) as caught:
            verify(output)
        one_line(caught.value.problem)
        assert verify_error in caught.value.problem


@pytest.mark.parametrize("name", slow_unless(lambda n: n.startswith("deep"), list(CASES)))
def test_regression_on_the_command_line(name: str, tmp_path: Path) -> None:
    src = tmp_path / "in.wasm"
    src.write_bytes((REGRESSIONS / name).read_bytes())
    verdict, error, verify_error = CASES[name]
    for args in (["inspect", "in.wasm"], ["inspect", "in.wasm", "--json"]):
        proc = _cli(tmp_path, *args)
        assert proc.returncode == (1 if verdict == "D" else 0), proc.stderr
        assert proc.stderr == b""
        if "--json" in args:
            assert _strict_json(proc.stdout)["class"] == verdict
    extra = ["--verify"] if verify_error is not None else []
    proc = _cli(tmp_path, "in.wasm", "-o", "out.wasm", *extra)
    text = proc.stderr.decode()
    assert "Traceback" not in text
    if verdict != "D" and verify_error is None:
        assert proc.returncode == 0, text
        return
    assert proc.returncode == 1 and "WARN" not in text
    lines = text.splitlines()
    assert lines[0].startswith("threadify: error: ") and len(lines) <= 2, text
    assert (error or verify_error or "") in lines[0]
    assert all(not line.startswith("threadify: error") for line in lines[1:]), text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wasm"]


def _strict_json(text: bytes) -> Any:
    """``text`` parsed as JSON proper: without the NaN and Infinity Python would accept."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "threadify", *args], capture_output=True,
                          timeout=120, cwd=cwd)


def _children() -> list[str]:
    """Process ids whose parent is this process (running or not yet reaped)."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                found.append(entry)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_rejection_leaves_no_validator_process() -> None:
    """The input's validator starts at once, beside the analysis; when the analysis rejects
    the module first, nobody waits for it. It used to stay behind as a zombie: one per
    rejected module in a build tool's process."""
    rejected = (FIXTURES / "c/wasm/tls.shared-import.wasm").read_bytes().replace(
        b"atomics", b"atomicz")  # target_features no longer lists atomics
    before = set(_children())
    for _ in range(3):
        with pytest.raises(threadify.ThreadifyError, match="not compiled with atomics"):
            threadify.transform(rejected)
        assert threadify.inspect(rejected).verdict == "D"
    assert set(_children()) - before == set()
    # a caller of pipeline.run that drops the result without asking for the verdict
    result = run(rejected.replace(b"atomicz", b"atomics"), Options(validate=True))
    del result
    gc.collect()
    assert set(_children()) - before == set()


@pytest.mark.parametrize("seed", range(6))
def test_claims_of_billions_allocate_nothing(seed: int) -> None:
    """A module of under 100 bytes that claims 4 G items (types, locals, br_table labels, name
    map entries, producers fields, a 4 GiB data segment) is refused before anything of that
    size is allocated or looped over."""
    rng = random.Random(seed)
    for _ in range(8):
        data, how = mutators.tiny_hostile(rng)
        assert len(data) < 100
        tracemalloc.start()
        try:
            try:
                Module.decode(data, eager=True)
            except threadify.WasmDecodeError:
                pass
            report = threadify.inspect(data, validate=False)
            try:
                threadify.transform(data, validate=False, allow_non_atomic=True)
            except threadify.ThreadifyError as error:
                one_line(error.problem)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert report.verdict == "D", how
        assert peak < 4 << 20, f"{how}: {peak} bytes"


SEED = (FIXTURES / "c/wasm/tls.shared-import-tlsexports.wasm").read_bytes()


def _check_library(data: bytes) -> None:
    """The fuzzer's library oracles on one input."""
    report = threadify.inspect(data)
    assert report.accepted or report.reasons
    for reason in report.reasons:
        one_line(reason)
    try:
        output = threadify.transform(data)  # inspect's options: the verdicts must agree
    except threadify.ThreadifyError as error:
        one_line(error.problem)
        return
    assert report.accepted, report.reasons
    proc = validate(output)
    assert proc.returncode == 0, proc.stderr.decode()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1 << 32), rounds=st.integers(1, 3))
def test_structural_mutations(seed: int, rounds: int) -> None:
    """Overlong LEBs, reordered, repeated and missing sections, huge counts and sizes, and
    nonsense in the custom sections threadify reads (``name``, ``producers``,
    ``target_features``, ``threadify``) or others leave (``linking``, ``.debug_*``,
    ``dylink.0``)."""
    rng = random.Random(seed)
    data = SEED
    for _ in range(rounds):
        made = rng.choice(mutators.STRUCTURAL)(data, rng)
        if made is not None:
            data = made[0]
    _check_library(data)


#: Fixtures of every input class and linker layout, for the longer property run.
SEEDS = [FIXTURES / path for path in (
    "c/wasm/tls.shared-import-tlsexports.wasm", "c/wasm/tls.nonshared.wasm",
    "c/wasm/barrier.nonshared-stripped.wasm", "linkflags/wasm/tls.shared-stack-64k.wasm",
    "linkflags/wasm/globals.nonshared-O0.wasm", "zig/std_thread.wasm")]


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1 << 32), source=st.integers(0, 5), rounds=st.integers(1, 4),
       edits=st.booleans())
# a forged name section calling an immutable global __stack_pointer (the output wrote it)
@example(seed=25226, source=0, rounds=1, edits=False)
def test_structural_mutations_longer(seed: int, source: int, rounds: int, edits: bool) -> None:
    """The same property on several fixtures (shared and non-shared memory, TLS, an
    already thread-ready module), with byte edits mixed in."""
    rng = random.Random(seed)
    data = SEEDS[source].read_bytes()
    for _ in range(rounds):
        mutator = mutators.byte_edits if edits and rng.random() < 0.3 else rng.choice(
            mutators.STRUCTURAL)
        made = mutator(data, rng)
        if made is not None:
            data = made[0]
    _check_library(data)


@pytest.mark.slow
def test_input_fuzzer_short_run(tmp_path: Path) -> None:
    """The fuzzer itself, library and command line, for 120 inputs (a few minutes)."""
    # --seconds 0: the count alone ends the run (the fuzzer's default 60 s cut it at 70 inputs
    # on a loaded machine)
    proc = subprocess.run([sys.executable, str(FUZZER), "--count", "120", "--seconds", "0",
                           "--seed", "5", "--cli-share", "0.3",
                           "--out", str(tmp_path / "findings")],
                          capture_output=True, text=True, timeout=1800)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["findings"] == [], report["findings"]
    assert report["inputs"] >= 100 and report["cli"] > 10
    assert report.get("transformed", 0) > 0 and report.get("rejected", 0) > 0
