#!/usr/bin/env python3
"""Make the Node.js WASI-threads host (``scripts/node-host/host.mjs``) usable; print its path.

The host needs nothing but Node.js >= 20: V8 runs the code, the built-in ``node:wasi`` serves
WASI preview1 and ``worker_threads`` carries the threads, so ``package.json`` has no
dependencies and there is nothing to fetch from the npm registry. When ``node`` is missing, or
older than 20, and this runs as root on Debian, Debian's ``nodejs`` package is installed with
apt-get (the machines this project targets already have Node.js 20).

Idempotent. Exit code 0 when ``node host.mjs`` can run, 1 (with one line on stderr) otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HOST_DIR = Path(__file__).resolve().parent / "node-host"
HOST = HOST_DIR / "host.mjs"
MIN_NODE_MAJOR = 20


def node_major(node: str) -> int | None:
    """Major version of the ``node`` binary, or None when it does not run."""
    try:
        proc = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    text = proc.stdout.strip().lstrip("v")
    if proc.returncode != 0 or not text.split(".")[0].isdigit():
        return None
    return int(text.split(".")[0])


def usable_node() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    major = node_major(node)
    return node if major is not None and major >= MIN_NODE_MAJOR else None


def install_debian_nodejs() -> None:
    """Install Debian's nodejs when possible; failures are reported by the caller's re-check."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nodejs"], env=env, check=False,
                   timeout=600)


def main() -> int:
    node = usable_node()
    if node is None:
        install_debian_nodejs()
        node = usable_node()
    if node is None:
        print(f"install_node_host: Node.js >= {MIN_NODE_MAJOR} not found on PATH",
              file=sys.stderr)
        print("install it (Debian: apt-get install nodejs) and run this again", file=sys.stderr)
        return 1
    if not HOST.is_file():
        print(f"install_node_host: {HOST} is missing", file=sys.stderr)
        return 1
    print(HOST)
    return 0


if __name__ == "__main__":
    sys.exit(main())
