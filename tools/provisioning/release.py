"""Which Raspberry Pi OS release an image or card holds, and which Python the bundle needs for it.

The release is read from ``/usr/lib/os-release`` (``VERSION_CODENAME``) in the root partition (the
first Linux partition after the boot partition), with ``debugfs`` from e2fsprogs, which reads an ext4
file system at an offset inside an image or card without mounting it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .image import read_partitions

LINUX = 0x83
# Raspberry Pi OS release -> the wheel tag of its python3.
PYTHON_OF = {"bookworm": "cp311", "trixie": "cp313"}


def image_release(path: Path) -> str | None:
    """The release codename of the image's root file system; None when it cannot be read."""
    debugfs = shutil.which("debugfs") or "/usr/sbin/debugfs"
    if not Path(debugfs).exists():
        return None
    roots = [p for p in read_partitions(path) if p.type_id == LINUX]
    if not roots:
        return None
    for name in ("/usr/lib/os-release", "/etc/os-release"):
        proc = subprocess.run(
            [debugfs, "-R", f"cat {name}", f"{path}?offset={roots[0].start}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        for line in proc.stdout.splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"') or None
    return None
