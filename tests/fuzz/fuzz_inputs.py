#!/usr/bin/env python3
"""Fuzz threadify's handling of bad input, through the library and the command line.

Usage: ``python tests/fuzz/fuzz_inputs.py [--seconds S | --count N] [--seed K] [--corpus DIR]``.

Inputs are real modules (``fixtures/**.wasm``, and the small modules of ``--corpus``) edited by
``wasm-tools mutate``, by byte edits and by the structural mutators of
:mod:`tests.fuzz.mutators` (overlong LEBs, reordered, repeated or missing sections, huge counts
and sizes, nonsense custom sections), ``wasm-tools smith`` modules with threads and shared
memory, and tiny modules that claim billions of items. Each input goes through
``threadify.inspect`` and ``threadify.transform`` with random options, and some through the
command line (``threadify IN -o OUT`` with and without ``--stack-check`` / ``--no-validate``,
``threadify inspect [--json]``). The oracles (docs/fuzzing.md):

- nothing but a ``ThreadifyError`` (library) or exit code 0/1 (command line), never a traceback;
- a rejection is one line ``threadify: error: ...`` (and at most one ``threadify: hint:``), and
  leaves no output file, no temporary file and the input unchanged;
- an output validates (``wasm-tools validate --features all``) — with ``--no-validate`` too when
  the input was valid;
- the same input and options give the same bytes (library twice, and the command line);
- no input takes more than ``--limit`` seconds, no command-line run more than 1 GiB of memory.

A finding is saved under ``--out`` as the input plus a description; exit code 1 if any.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import threadify  # noqa: E402
from tests.fuzz import mutators  # noqa: E402
from tests.fuzz.fuzz_transform import TimedOut, _alarm, wasm_tools  # noqa: E402

FIXTURES = sorted((ROOT / "fixtures").rglob("*.wasm"))
THREADIFY = [sys.executable, "-m", "threadify"]
SMITH_FLAGS = ["--threads-enabled", "--simd-enabled", "--exceptions-enabled",
               "--memory64-enabled", "--tail-call-enabled", "--extended-const-enabled",
               "--bulk-memory-enabled", "--reference-types-enabled", "--gc-enabled",
               "--custom-page-sizes-enabled", "--multi-value-enabled"]
RSS_LIMIT_KIB = 1 << 20


class Campaign:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tool = wasm_tools()
        self.sources = [] if args.corpus_only else list(FIXTURES)
        if args.corpus:
            self.sources += sorted(p for p in Path(args.corpus).glob("*.wasm")
                                   if p.stat().st_size <= args.corpus_max)
        self.source_bytes = {p: p.read_bytes() for p in self.sources}
        self.stats: dict[str, int] = {}
        self.findings: list[dict[str, str]] = []
        self.work = Path(tempfile.mkdtemp(prefix="threadify-fuzz-"))

    # -- generators -------------------------------------------------------------------------

    def generate(self, rng: random.Random) -> tuple[bytes, str] | None:
        kind = rng.choices(["smith", "mutate", "structural", "bytes", "tiny"],
                           weights=[2, 2, 5, 1, 0.5])[0]
        if kind == "tiny":
            return mutators.tiny_hostile(rng)
        if kind == "smith":
            return self.smith(rng)
        source = rng.choice(self.sources)
        data = self.source_bytes[source]
        name = str(source.relative_to(ROOT) if source.is_relative_to(ROOT) else source.name)
        if kind == "mutate":
            seed = rng.randrange(1 << 32)
            proc = subprocess.run([self.tool, "mutate", "--seed", str(seed)], input=data,
                                  capture_output=True, timeout=60)
            if proc.returncode != 0:
                return None
            data, how = proc.stdout, f"mutate --seed {seed}"
        else:
            how = ""
        steps = []
        rounds = rng.randint(1, 3) if kind == "structural" else 1
        for _ in range(rounds):
            mutator = (mutators.byte_edits if kind == "bytes"
                       else rng.choice(mutators.STRUCTURAL))
            made = mutator(data, rng)
            if made is None:
                continue
            data, step = made
            steps.append(step)
        return data, f"{name}: {how} {'; '.join(steps)}".strip()

    def smith(self, rng: random.Random) -> tuple[bytes, str] | None:
        args = [self.tool, "smith", "--threads-enabled", "true", "--min-memories", "1",
                "--max-memories", str(rng.choice([1, 1, 1, 2])), "--min-globals", "1",
                "--max-globals", str(rng.randint(1, 6))]
        for flag in SMITH_FLAGS[1:]:
            args += [flag, rng.choice(["true", "false"])]
        if rng.random() < 0.5:
            args += ["--min-data-segments", "1", "--max-data-segments", "6"]
        if rng.random() < 0.3:
            args += ["--min-uleb-size", str(rng.randint(2, 5))]
        if rng.random() < 0.5:
            args += ["--generate-custom-sections", "true"]
        proc = subprocess.run(args, input=rng.randbytes(rng.choice([64, 512, 2048])),
                              capture_output=True, timeout=60)
        if proc.returncode != 0:
            return None
        data = proc.stdout
        how = "smith " + " ".join(args[2:])
        if rng.random() < 0.3:
            made = rng.choice(mutators.STRUCTURAL)(data, rng)
            if made is not None:
                data, step = made
                how += "; " + step
        return data, how

    # -- oracles ----------------------------------------------------------------------------

    def valid(self, data: bytes) -> bool:
        proc = subprocess.run([self.tool, "validate", "--features", "all", "-"], input=data,
                              capture_output=True, timeout=120)
        return proc.returncode == 0

    def options(self, rng: random.Random) -> dict[str, Any]:
        return {"stack_size": rng.choice([1 << 20, 65536, 16]),
                "max_memory": rng.choice([None, None, 1 << 30, 64 << 20]),
                "allow_non_atomic": rng.random() < 0.7,
                "validate": rng.choice([None, None, True, False]),
                "stack_check": rng.random() < 0.3}

    def library(self, data: bytes, options: dict[str, Any], input_valid: bool,
                rng: random.Random) -> tuple[str, bytes | None, list[str]]:
        problems = []
        try:
            report = threadify.inspect(data)
            if report.verdict.value not in "ABCD":
                problems.append(f"inspect verdict {report.verdict}")
            if not report.accepted and not report.reasons:
                problems.append("inspect rejected without a reason")
            if any("\n" in reason for reason in report.reasons):
                problems.append(f"inspect reason not one line: {report.reasons!r}")
            json.dumps(report.as_dict())
            report.text()
        except TimedOut:
            raise
        except Exception:
            problems.append("inspect raised:\n" + traceback.format_exc())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = threadify.transform(data, **options)
        except threadify.ThreadifyError as error:
            if not error.problem or "\n" in error.problem:
                problems.append(f"rejection not one line: {error.problem!r}")
            if error.fix is not None and "\n" in error.fix:
                problems.append(f"fix not one line: {error.fix!r}")
            return "rejected", None, problems
        except TimedOut:
            raise
        except Exception:
            problems.append("transform raised:\n" + traceback.format_exc())
            return "crashed", None, problems
        if (options["validate"] is not False or input_valid) and not self.valid(out):
            problems.append("output does not validate")
        if rng.random() < 0.3:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                again = threadify.transform(data, **options)
            if again != out:
                problems.append("transform is not deterministic")
        return "transformed", out, problems

    def run_cli(self, argv: list[str], timeout: float) -> tuple[int, bytes, bytes, int, float]:
        """Run the command line; returns (exit code, stdout, stderr, max RSS KiB, seconds)."""
        out_f = tempfile.TemporaryFile()
        err_f = tempfile.TemporaryFile()
        started = time.monotonic()
        # another hash seed than the library run's: output that depends on set order shows
        env = {**os.environ, "PYTHONHASHSEED": "random"}
        proc = subprocess.Popen(THREADIFY + argv, stdout=out_f, stderr=err_f,
                                stdin=subprocess.DEVNULL, cwd=self.work, env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - started
        out_f.seek(0)
        err_f.seek(0)
        return proc.returncode, out_f.read(), err_f.read(), usage.ru_maxrss, elapsed

    def cli(self, data: bytes, options: dict[str, Any], input_valid: bool,
            library_out: bytes | None, library_outcome: str) -> list[str]:
        problems: list[str] = []
        case = Path(tempfile.mkdtemp(dir=self.work))
        src = case / "in.wasm"
        src.write_bytes(data)
        before = hashlib.sha256(data).hexdigest()
        argv = [str(src), "-o", str(case / "out.wasm"), "--stack-size",
                str(options["stack_size"])]
        if options["max_memory"] is not None:
            argv += ["--max-memory", str(options["max_memory"])]
        if options["allow_non_atomic"]:
            argv.append("--allow-non-atomic")
        if options["stack_check"]:
            argv.append("--stack-check")
        if options["validate"] is not None:
            argv.append("--validate" if options["validate"] else "--no-validate")
        verifying = random.Random(before).random() < self.args.verify_share
        if verifying:  # runs the output on the bundled host: slow, so now and then
            argv.append("--verify")
        code, _out, err, rss, seconds = self.run_cli(argv, self.args.limit * 2)
        problems += self._check_run("transform", code, err, rss, seconds)
        files = sorted(p.name for p in case.iterdir())
        if hashlib.sha256(src.read_bytes()).hexdigest() != before:
            problems.append("the input file was modified")
        if code == 1 and files != ["in.wasm"]:
            problems.append(f"rejected, but the directory holds {files}")
        if code == 0:
            if files != ["in.wasm", "out.wasm"]:
                problems.append(f"after success the directory holds {files}")
            else:
                out = (case / "out.wasm").read_bytes()
                if (options["validate"] is not False or input_valid) and not self.valid(out):
                    problems.append("command-line output does not validate")
                if library_out is not None and out != library_out:
                    problems.append("command line and library outputs differ")
        if code in (0, 1) and {0: "transformed", 1: "rejected"}[code] != library_outcome \
                and library_outcome != "crashed" and not verifying:
            problems.append(f"command line exit {code} but library {library_outcome}")
        for extra in ([], ["--json"]):
            code, out_b, err, rss, seconds = self.run_cli(["inspect", str(src), *extra],
                                                          self.args.limit * 2)
            problems += self._check_run("inspect " + " ".join(extra), code, err, rss, seconds)
            if extra and code in (0, 1):
                try:
                    json.loads(out_b)
                except ValueError:
                    problems.append("inspect --json printed no JSON")
        for p in case.iterdir():
            p.unlink()
        case.rmdir()
        return problems

    def _check_run(self, what: str, code: int, err: bytes, rss: int,
                   seconds: float) -> list[str]:
        problems = []
        text = err.decode(errors="replace")
        if code not in (0, 1):
            problems.append(f"{what}: exit code {code}: {text[-2000:]}")
        if "Traceback" in text:
            problems.append(f"{what}: traceback: {text[-2000:]}")
        lines = [line for line in text.splitlines() if line]
        if code == 1 and not what.startswith("inspect"):
            if not lines or not lines[0].startswith("threadify: error: ") or len(lines) > 2 \
                    or (len(lines) == 2 and not lines[1].startswith("threadify: hint: ")):
                problems.append(f"{what}: rejection is not one error line (+ hint): {text!r}")
        if rss > RSS_LIMIT_KIB:
            problems.append(f"{what}: used {rss // 1024} MiB of memory")
        if seconds > self.args.limit * 2:
            problems.append(f"{what}: took {seconds:.1f} s")
        return problems

    # -- the loop ---------------------------------------------------------------------------

    def one(self, seed: int) -> None:
        rng = random.Random(seed)
        made = self.generate(rng)
        if made is None:
            self.bump("skipped")
            return
        data, how = made
        input_valid = self.valid(data)
        options = self.options(rng)
        problems: list[str] = []
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(self.args.limit)
        started = time.monotonic()
        try:
            outcome, out, problems = self.library(data, options, input_valid, rng)
        except TimedOut:
            outcome, out, problems = "crashed", None, [f"took over {self.args.limit} s"]
        finally:
            signal.alarm(0)
        library_seconds = time.monotonic() - started
        if rng.random() < self.args.cli_share:
            problems += self.cli(data, options, input_valid, out, outcome)
            self.bump("cli")
        self.bump("inputs")
        self.bump(outcome)
        self.bump("valid inputs" if input_valid else "invalid inputs")
        self.stats["max library seconds x10"] = max(self.stats.get("max library seconds x10", 0),
                                                    int(library_seconds * 10))
        if problems:
            self.save(seed, data, how, options, problems)

    def bump(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def save(self, seed: int, data: bytes, how: str, options: dict[str, Any],
             problems: list[str]) -> None:
        self.args.out.mkdir(parents=True, exist_ok=True)
        name = f"finding-{seed}"
        (self.args.out / f"{name}.wasm").write_bytes(data)
        (self.args.out / f"{name}.txt").write_text(
            f"seed {seed}\n{how}\noptions {options}\n\n" + "\n\n".join(problems) + "\n")
        self.findings.append({"seed": str(seed), "input": how,
                              "problem": problems[0][:300]})
        print(f"FINDING seed {seed}: {how}: {problems[0][:200]}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=0, help="stop after N inputs (0: no)")
    parser.add_argument("--seconds", type=float, default=60, help="stop after S seconds")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--only", type=int, nargs="*", help="replay these input seeds")
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--corpus-max", type=int, default=1 << 20,
                        help="corpus modules up to this many bytes")
    parser.add_argument("--corpus-only", action="store_true",
                        help="edit only the corpus modules (from 1 MiB the command line maps "
                             "its input instead of reading it)")
    parser.add_argument("--cli-share", type=float, default=0.25)
    parser.add_argument("--verify-share", type=float, default=0.1,
                        help="share of command-line transforms run with --verify")
    parser.add_argument("--limit", type=int, default=20, help="seconds per input")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    args = parser.parse_args(argv)
    # stopped by a signal (a background job ignores SIGINT): still print the report
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    campaign = Campaign(args)
    start = time.monotonic()
    seeds = args.only if args.only else None
    k = 0
    try:
        while True:
            if seeds is not None:
                if k >= len(seeds):
                    break
                seed = seeds[k]
            else:
                if (args.count and k >= args.count) or \
                        (args.seconds and time.monotonic() - start > args.seconds):
                    break
                seed = args.seed * 1_000_003 + k
            k += 1
            campaign.one(seed)
            if k % 200 == 0:
                print(json.dumps({"at": k, **campaign.stats}), file=sys.stderr, flush=True)
    finally:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        report = {"seed": args.seed, "seconds": round(time.monotonic() - start, 1),
                  "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
                  "children_cpu_seconds": round(children.ru_utime + children.ru_stime, 1),
                  "max_rss_mib": usage.ru_maxrss // 1024, **campaign.stats,
                  "findings": campaign.findings}
        print(json.dumps(report, indent=2))
    return 1 if campaign.findings else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
