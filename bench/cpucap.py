"""Run a process under a CPU quota (emulating a slower CPU): a cgroup of its own, v2 or v1.

``CpuCap(0.25)`` makes a cgroup that may use a quarter of one core (``cpu.max`` under cgroup v2,
``cpu.cfs_quota_us`` under the v1 ``cpu`` controller); ``add(pid)`` moves a process (all its threads)
into it; ``close`` moves them back and removes the cgroup. ``available()`` says whether this machine
lets us (root and a writable cgroup file system).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_V2 = Path("/sys/fs/cgroup")
_V1 = Path("/sys/fs/cgroup/cpu")
_PERIOD_US = 100_000


def _root() -> tuple[Path, int] | None:
    if (_V2 / "cgroup.controllers").exists() and "cpu" in (_V2 / "cgroup.controllers").read_text():
        return _V2, 2
    if (_V1 / "cpu.cfs_quota_us").exists():
        return _V1, 1
    return None


def available() -> bool:
    root = _root()
    return root is not None and os.access(root[0], os.W_OK)


class CpuCap:
    def __init__(self, cores: float, name: str = "") -> None:
        root = _root()
        if root is None:
            raise RuntimeError("no cgroup cpu controller on this machine")
        self._root, self._version = root
        self.path = self._root / f"deskphone-bench-{os.getpid()}{'-' + name if name else ''}"
        self.path.mkdir(exist_ok=True)
        quota = int(cores * _PERIOD_US)
        if self._version == 2:
            (self.path / "cpu.max").write_text(f"{quota} {_PERIOD_US}\n")
        else:
            (self.path / "cpu.cfs_period_us").write_text(f"{_PERIOD_US}\n")
            (self.path / "cpu.cfs_quota_us").write_text(f"{quota}\n")
        self.description = f"cgroup v{self._version} {self.path}: {quota} us per {_PERIOD_US} us"

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self._root / "cgroup.procs").write_text(f"{pid}\n")
            self.path.rmdir()

    def __enter__(self) -> CpuCap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
