"""Test corpus of the binary layer: random valid modules from ``wasm-tools smith``, real
compiler/linker outputs (``tests/wasm/data``, rebuilt by ``data/build.sh``) and every fixture
module of the repository."""

from __future__ import annotations

import random
import subprocess
from functools import cache
from pathlib import Path

from tests.tooling import FIXTURES, wasm_tools

DATA = Path(__file__).resolve().parent / "data"

# name -> extra ``wasm-tools smith`` flags. smith's defaults already include GC, reference
# types, compact imports and multi-value.
FEATURE_SETS: dict[str, list[str]] = {
    "default": [],
    "threads-simd": ["--threads-enabled", "true", "--simd-enabled", "true",
                     "--relaxed-simd-enabled", "true", "--bulk-memory-enabled", "true"],
    "exceptions-tailcall-gc": ["--exceptions-enabled", "true", "--tail-call-enabled", "true",
                               "--gc-enabled", "true"],
    "memory64-multimem-pages": ["--memory64-enabled", "true", "--max-memories", "4",
                                "--custom-page-sizes-enabled", "true", "--threads-enabled",
                                "true"],
    "wide-extconst": ["--wide-arithmetic-enabled", "true", "--extended-const-enabled", "true",
                      "--simd-enabled", "true", "--exceptions-enabled", "true"],
}
SEEDS_PER_SET = 20


#: ``wasm-tools smith``'s documented exit code for "could not generate a module from this seed"
#: (rare; the seed is to blame, not the tool). Any other failure is a broken tool or flag.
SMITH_DECLINED_SEED = 2


@cache
def smith_module(feature_set: str, seed: int) -> bytes | None:
    """A deterministic random valid module (None when smith declines the seed).

    Only smith's documented "cannot use this seed" exit turns into None (callers skip); any other
    failure raises, so a renamed flag or a crashing smith fails the tests instead of hiding them.
    """
    data = random.Random(f"{feature_set}-{seed}").randbytes(400 + 150 * seed)
    proc = subprocess.run([wasm_tools(), "smith", *FEATURE_SETS[feature_set]], input=data,
                          capture_output=True, timeout=60)
    if proc.returncode == SMITH_DECLINED_SEED:
        return None
    if proc.returncode != 0:
        raise RuntimeError(f"wasm-tools smith {' '.join(FEATURE_SETS[feature_set])} failed "
                           f"(exit {proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def smith_cases() -> list[tuple[str, int]]:
    return [(fs, seed) for fs in FEATURE_SETS for seed in range(SEEDS_PER_SET)]


def real_modules() -> list[Path]:
    """Committed compiler outputs (incl. a relocatable object with padded LEBs) and fixtures."""
    paths = sorted(DATA.glob("*.wasm")) + sorted(DATA.glob("*.o"))
    paths += sorted(FIXTURES.glob("**/*.wasm"))
    return paths
