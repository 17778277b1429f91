"""The firmware bundle: this project's wheel (``make dist``) plus a wheelhouse of its dependencies.

A Raspberry Pi bundle (``make dist-pi``) holds compiled wheels for more than one Python (cp311 for
bookworm, cp313 for trixie); only the pure wheels and those of the image's Python go onto a card.

On the card it sits in ``deskphone/bundle/`` with a ``SHA256SUMS`` in ``sha256sum`` format, which
the first-boot script checks with ``sha256sum --check`` before installing anything.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .errors import InvalidDevice

SUMS = "SHA256SUMS"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_files(bundle: Path) -> list[Path]:
    """The files of a bundle dir, relative; refuse one without exactly one deskphone wheel."""
    if not bundle.is_dir():
        raise InvalidDevice([f"--bundle {bundle}: not a directory"])
    files = sorted(p.relative_to(bundle) for p in bundle.rglob("*") if p.is_file() and p.name != SUMS)
    wheels = [
        p for p in files if p.parent == Path(".") and p.name.startswith("deskphone-") and p.suffix == ".whl"
    ]
    if len(wheels) != 1:
        found = ", ".join(str(w) for w in wheels) or "none"
        raise InvalidDevice(
            [f"--bundle {bundle}: needs exactly one deskphone-*.whl at its top (found {found})"]
        )
    return files


def wheel_python(path: Path) -> str | None:
    """``cp311`` for a wheel compiled for CPython 3.11; None for a pure wheel or another file."""
    if path.suffix != ".whl":
        return None
    parts = path.stem.split("-")
    python = parts[-3] if len(parts) >= 5 else ""
    return python if python.startswith("cp") and parts[-1] != "any" else None


def pythons(files: list[Path]) -> set[str]:
    """The Pythons the compiled wheels among ``files`` are for."""
    return {p for p in (wheel_python(f) for f in files) if p}


def select(bundle: Path, files: list[Path], python: str | None) -> list[Path]:
    """The files of the bundle one card needs: everything but compiled wheels for another Python."""
    built_for = pythons(files)
    if not built_for:
        return files
    if python is None:
        raise InvalidDevice(
            [
                f"--bundle {bundle} has wheels for {', '.join(sorted(built_for))}: cannot tell the image's "
                "release (give --release bookworm|trixie)"
            ]
        )
    if python not in built_for:
        raise InvalidDevice(
            [f"--bundle {bundle}: no wheels for {python} (it has {', '.join(sorted(built_for))})"]
        )
    return [f for f in files if wheel_python(f) in (None, python)]


def parse_sums(text: str) -> dict[str, str]:
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def stage_bundle(bundle: Path, dest: Path, python: str | None = None) -> dict[str, str]:
    """Copy the bundle (for ``python``, see ``select``) into ``dest`` with a fresh SHA256SUMS.

    A SHA256SUMS the bundle already has is checked for the files copied.
    """
    files = select(bundle, bundle_files(bundle), python)
    sums = {str(rel): sha256(bundle / rel) for rel in files}
    existing = bundle / SUMS
    if existing.exists():
        bad = [n for n, d in parse_sums(existing.read_text()).items() if n in sums and sums[n] != d]
        if bad:
            raise InvalidDevice([f"--bundle {bundle}: checksum mismatch for {', '.join(bad)}"])
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / rel, dest / rel)
    (dest / SUMS).write_text("".join(f"{d}  {n}\n" for n, d in sums.items()), encoding="utf-8")
    return sums
