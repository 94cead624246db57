"""pytest configuration: make the repository root importable for ``tests.tooling``; the
property tests' profile."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Property tests draw the same examples on every run (``derandomize``): a suite that gates
# every landing must not fail on an input no earlier run drew. Searching for new inputs is the
# fuzzers' job (tests/fuzz/, docs/fuzzing.md); ``HYPOTHESIS_PROFILE=explore`` lets a developer
# run the property tests with fresh random examples too.
settings.register_profile("suite", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))
