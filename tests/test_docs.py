"""The error catalogue (docs/errors.md) lists every rejection the library can make."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _messages(source: str) -> list[str]:
    """The constant start of every rejection message in ``source``."""
    found = []
    pattern = r'(?:reject|UnsupportedModuleError|ThreadifyError|fail)\(\s*f?"([^"]+)"'
    for match in re.finditer(pattern, source):
        text = match.group(1)
        text = re.split(r"\{", text)[0].strip()
        if len(text) >= 12:
            found.append(text)
    return found


def test_every_rejection_is_catalogued() -> None:
    catalogue = (ROOT / "docs/errors.md").read_text()
    missing = []
    for path in ("threadify/classify.py", "threadify/pipeline.py"):
        for message in _messages((ROOT / path).read_text()):
            if message not in catalogue:
                missing.append(f"{path}: {message}")
    assert not missing, "not in docs/errors.md:\n" + "\n".join(missing)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert ci in readme.splitlines()
    assert "pytest" in ci


def test_readme_documents_the_fast_loop() -> None:
    """The fast loop the README promises selects by the marker pyproject registers."""
    readme = (ROOT / "README.md").read_text()
    assert '`python -m pytest -q -m "not slow"`' in readme
    assert '"slow: ' in (ROOT / "pyproject.toml").read_text()
