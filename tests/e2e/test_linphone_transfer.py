"""Transfers by Linphone's CLI (a second, independent SIP stack), run in a network namespace of their own
with only ``lo``: kamailio, the phone, baresip and linphonec all live in it (``netns_linphone.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.servers import linphone

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
INNER = "tests/e2e/netns_linphone.py"


def test_linphone_transfers_in_a_namespace_with_only_loopback() -> None:
    if not linphone.available():
        pytest.skip("linphonec (Debian's linphone-cli) is not installed")
    if os.geteuid() != 0:
        pytest.skip("a network namespace of our own needs root")
    script = 'ip link set lo up && exec "$0" -m pytest -q -p no:cacheprovider -o addopts="" "$1"'
    result = subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", script, sys.executable, INNER],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
