"""The repository stays lint-clean and typed: ``ruff check`` and ``mypy`` (strict, on the files
listed in pyproject's ``[tool.mypy]``) run as part of the suite, so CI fails on any regression
instead of relying on someone running them by hand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.tooling import ROOT


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_ruff_check_is_clean() -> None:
    proc = _run("ruff", "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    """Cold, mypy takes tens of seconds: slow, but part of the full suite (and of CI)."""
    config = (ROOT / "pyproject.toml").read_text()
    assert 'strict = true' in config and '"tests"' in config and '"threadify"' in config
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout
