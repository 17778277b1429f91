"""Debian's headless chromium loading one page: its DOM once scripts have run, or a screenshot.

Each run gets a fresh profile in ``workdir`` and no network of its own beyond the page (no updates,
sync or background requests); ``--virtual-time-budget`` lets the page's fetches and scripts finish
before the DOM is dumped or the picture taken.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def chromium_path() -> str | None:
    return shutil.which("chromium")


def _run(workdir: Path, url: str, size: tuple[int, int], *extra: str, timeout: float = 120) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt install chromium)")
    with tempfile.TemporaryDirectory(dir=workdir, prefix="profile-") as profile:
        done = subprocess.run(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                "--virtual-time-budget=20000",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=workdir,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def dump_dom(workdir: Path, url: str, size: tuple[int, int] = (1280, 1100)) -> str:
    return _run(workdir, url, size, "--dump-dom")


def screenshot(workdir: Path, url: str, path: Path, size: tuple[int, int] = (1280, 1100)) -> Path:
    _run(workdir, url, size, f"--screenshot={path.absolute()}")
    if not path.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {path}")
    return path
