"""Fixtures for the busy-light sidecar tests: Node.js with the MicroPython WebAssembly port and mqtt.js.

The npm packages are pinned by ``tests/sidecar/node/package-lock.json``; ``npm ci`` installs them into
``tests/sidecar/node/node_modules`` (git-ignored) the first time. Tests skip only when ``node`` (or
``npm``) is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
HOST = NODE_DIR / "host.mjs"
REPO = Path(__file__).resolve().parents[2]
SIDECAR = REPO / "sidecar"


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with the host's npm packages installed."""
    node_bin, npm_bin = shutil.which("node"), shutil.which("npm")
    if node_bin is None or npm_bin is None:
        pytest.skip("Node.js (node and npm) is not installed: the MicroPython VM tests need it")
    marker = NODE_DIR / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "package.json"
    if not marker.exists():
        proc = subprocess.run(
            [npm_bin, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"npm ci failed:\n{proc.stdout}\n{proc.stderr}"
    return node_bin


def run_host(node: str, *args: str, stdin: str = "", timeout: float = 120) -> dict[str, Any]:
    proc = subprocess.run(
        [node, str(HOST), *args], input=stdin, capture_output=True, text=True, cwd=NODE_DIR, timeout=timeout
    )
    assert proc.returncode == 0, f"host.mjs {args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["implementation"] == "micropython"
    return result
