"""The FAT boot partition, read and written with mtools (no mounting, no root needed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import ToolMissing, WriteFailed

_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0", "LC_ALL": "C"}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise ToolMissing(f"{name} not found: install mtools (apt-get install mtools)")
    return found


class FatVolume:
    """A FAT file system inside ``path`` (an image file or a block device) at ``offset`` bytes."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self.spec = f"{path}@@{offset}"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            [_tool(tool), "-i", self.spec, *args], capture_output=True, env=_ENV, check=False
        )
        if check and proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip() or f"exit {proc.returncode}"
            raise WriteFailed(f"{tool} {' '.join(args)} on {self.path}: {message}")
        return proc

    def is_fat(self) -> bool:
        return self._run("minfo", check=False).returncode == 0

    def exists(self, path: str) -> bool:
        return self._run("mdir", "-b", f"::{path}", check=False).returncode == 0

    def listdir(self, path: str = "/") -> list[str]:
        """Names (long names) in a directory."""
        proc = self._run("mdir", "-b", f"::{path}", check=False)
        if proc.returncode != 0:
            return []
        prefix = f"::{path.rstrip('/')}/"
        names = []
        for line in proc.stdout.decode(errors="replace").splitlines():
            line = line.strip()
            if line.startswith(prefix):
                names.append(line[len(prefix) :].rstrip("/"))
        return [n for n in names if n not in (".", "..", "")]

    def walk(self, path: str) -> list[str]:
        """Every file below ``path``, as paths relative to it."""
        proc = self._run("mdir", "-/", "-b", f"::{path}", check=False)
        if proc.returncode != 0:
            return []
        prefix = f"::{path.rstrip('/')}/"
        files = []
        for line in proc.stdout.decode(errors="replace").splitlines():
            line = line.strip()
            if line.startswith(prefix) and not line.endswith("/"):
                rel = line[len(prefix) :]
                if rel.split("/")[-1] not in (".", ".."):
                    files.append(rel)
        return sorted(files)

    def read(self, path: str) -> bytes:
        proc = self._run("mtype", f"::{path}", check=False)
        if proc.returncode != 0:
            raise FileNotFoundError(f"{path} not found on the boot partition of {self.path}")
        return proc.stdout

    def free_bytes(self) -> int:
        out = self._run("mdir", "::/").stdout.decode(errors="replace")
        match = re.search(r"([\d ]+) bytes free", out)
        return int(match.group(1).replace(" ", "")) if match else 0

    def put_tree(self, local_dir: Path, dest: str) -> None:
        """Copy the contents of ``local_dir`` into ``dest`` (created), overwriting."""
        self.mkdirs(dest)
        entries = sorted(str(p) for p in local_dir.iterdir())
        if entries:
            self._run("mcopy", "-s", "-o", "-Q", *entries, f"::{dest.rstrip('/')}/")

    def put_file(self, local: Path, dest: str) -> None:
        self._run("mcopy", "-o", "-Q", str(local), f"::{dest}")

    def write_text(self, dest: str, text: str, scratch: Path) -> None:
        tmp = scratch / f"put-{os.getpid()}-{Path(dest).name}"
        tmp.write_text(text, encoding="utf-8")
        try:
            self.put_file(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def mkdirs(self, path: str) -> None:
        current = ""
        for part in [p for p in path.split("/") if p]:
            current += "/" + part
            if not self.exists(current):
                self._run("mmd", f"::{current}")

    def delete_tree(self, path: str) -> None:
        if self.exists(path):
            self._run("mdeltree", f"::{path}")
