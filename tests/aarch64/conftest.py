"""The Raspberry Pi bundle and arm64 roots that ``make test-aarch64`` builds, for the tests here.

``PI_BUNDLE`` is ``make dist-pi``'s output, ``PI_ROOTS`` a directory of arm64 Debian roots made by
``tools/pi/root.sh`` (``bookworm/``, ``trixie/``). Without them (plain ``make test``) these tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INROOT = REPO / "tools" / "pi" / "inroot.sh"
RELEASES = ("bookworm", "trixie")


def _env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} not set: run make test-aarch64")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"{name}={path}: not a directory (run make test-aarch64)")
    return path


@pytest.fixture(scope="session")
def pi_bundle() -> Path:
    return _env_path("PI_BUNDLE")


@pytest.fixture
def pi_root(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``pi_root(release)``: a fresh copy of that release's arm64 root, removed after the test."""
    made: list[Path] = []

    def make(release: str) -> Path:
        source = _env_path("PI_ROOTS") / release
        if not source.is_dir():
            pytest.skip(f"no {release} root in {source.parent} (run make test-aarch64)")
        root = tmp_path / f"root-{release}"
        subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(root)], check=True)
        made.append(root)
        return root

    try:
        yield make
    finally:
        if not os.environ.get("PI_KEEP_ROOTS"):  # set it to look into a failed test's root
            for root in made:
                shutil.rmtree(root, ignore_errors=True)


def inroot(
    root: Path, *command: str, offline: bool = False, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``root`` under QEMU (``tools/pi/inroot.sh``)."""
    args = [str(INROOT), *(["--offline"] if offline else []), str(root), *command]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
