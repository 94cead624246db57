"""Run modules on the Node.js WASI-threads host (``scripts/node-host/host.mjs``).

A third engine for the compiler x host matrix that shares no code with wasmtime or threadify's
own host: V8 compiles, Node's ``node:wasi`` (uvwasi) serves WASI preview1, and each WebAssembly
thread runs in a ``worker_threads`` Worker. ``scripts/install_node_host.py`` makes it usable.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.tooling import ROOT

NODE_HOST = ROOT / "scripts" / "node-host" / "host.mjs"
MIN_NODE_MAJOR = 20


def node_host_available() -> bool:
    """True when ``node`` (>= 20) is on PATH and the host script exists."""
    node = shutil.which("node")
    if node is None or not NODE_HOST.is_file():
        return False
    proc = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    major = proc.stdout.strip().lstrip("v").split(".")[0]
    return proc.returncode == 0 and major.isdigit() and int(major) >= MIN_NODE_MAJOR


def run_node_host(path: Path, args: list[str] | tuple[str, ...] = (), timeout: float = 300,
                  ) -> subprocess.CompletedProcess[str]:
    """Run the WASI-threads command module ``path`` with ``args``; stdout/stderr captured."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node not found: python scripts/install_node_host.py")
    return subprocess.run([node, str(NODE_HOST), str(path), *args], capture_output=True,
                          text=True, timeout=timeout)
