"""The committed test programs of every producer, from their manifests, as one list.

``fixtures/manifest.json`` (C, clang-22 + wasm-ld-22), ``fixtures/rust/manifest.json`` (rustc +
rust-lld), ``fixtures/zig/manifest.json`` (zig) and ``fixtures/cxx/manifest.json`` (clang++-22)
describe each built module: its input class,
the arguments it runs with, the stdout line it prints on success and its exit code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tests.tooling import FIXTURES


@dataclass(frozen=True)
class Program:
    path: Path
    toolchain: str
    klass: str
    stdout: str | None
    exit_code: int = 0
    args: tuple[str, ...] = ()
    variant: str = ""
    threads_at_once: int = 0
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        return str(self.path.relative_to(FIXTURES))

    @property
    def runnable(self) -> bool:
        return self.stdout is not None


#: The producers besides C (whose manifest is ``fixtures/manifest.json``): each has
#: ``fixtures/<name>/manifest.json``, and a missing one is an error, not an empty list.
PRODUCERS = ("rust", "zig", "cxx")


def load(root: Path = FIXTURES) -> list[Program]:
    """Every program of every producer under ``root`` (the fixtures folder)."""
    out: list[Program] = []
    c = json.loads((root / "manifest.json").read_text())
    for entry in c["fixtures"]:
        out.append(Program(root / entry["file"], "c", entry["class"], entry.get("stdout"),
                           int(entry.get("exit_code", 0)), tuple(entry.get("args", [])),
                           entry.get("variant", ""), int(entry.get("threads_at_once", 0) or 0),
                           entry))
    for sub in PRODUCERS:
        path = root / sub / "manifest.json"
        if not path.is_file():
            # a lost manifest would silently drop a whole producer from the matrix
            raise FileNotFoundError(f"{path} is missing: every producer in PRODUCERS needs its "
                                    f"manifest (rebuild with fixtures/{sub}/build.sh)")
        data = json.loads(path.read_text())
        for entry in data["modules"]:
            out.append(Program(root / sub / entry["file"], sub, entry["class"],
                               entry.get("stdout"), int(entry.get("exit_code", 0)),
                               tuple(entry.get("args", [])), entry.get("note", ""),
                               int(entry.get("concurrent_threads", 0) or 0), entry))
    return out


PROGRAMS = load()
#: Modules that look like lld output but whose spawner does not use threadify's ABI (a Zig
#: std.Thread program built without --export=wasi_thread_start): they transform, but cannot run.
PITFALLS = [p for p in PROGRAMS if p.klass in ("A", "B") and p.extra.get("start_abi") == "zig-std"]
TRANSFORMABLE = [p for p in PROGRAMS if p.klass in ("A", "B")]
READY = [p for p in PROGRAMS if p.klass == "C"]
REJECTED = [p for p in PROGRAMS if p.klass == "D"]
