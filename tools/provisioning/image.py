"""Disk images and cards: partition tables, base-image copying, and the refusals that keep disks safe."""

from __future__ import annotations

import functools
import lzma
import os
import stat
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import RefusedTarget
from .fat import FatVolume

SECTOR = 512
FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, 0xEF}
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/boot/firmware", "/usr", "/var", "/home", "/etc", "/opt", "/srv")
CHUNK = 4 * 1024 * 1024

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Partition:
    number: int
    type_id: int
    start: int  # bytes
    size: int  # bytes

    @property
    def is_fat(self) -> bool:
        return self.type_id in FAT_TYPES


def read_partitions(path: Path) -> list[Partition]:
    """The primary partitions of an MBR partition table (what Raspberry Pi OS images use)."""
    try:
        with path.open("rb") as fh:
            mbr = fh.read(SECTOR)
    except OSError as exc:
        raise RefusedTarget(f"{path}: cannot read ({exc.strerror})") from exc
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise RefusedTarget(f"{path}: no partition table: not a Raspberry Pi OS image or card")
    parts = []
    for i in range(4):
        entry = mbr[446 + 16 * i : 446 + 16 * (i + 1)]
        type_id = entry[4]
        start, count = struct.unpack("<II", entry[8:16])
        if type_id == 0xEE:
            raise RefusedTarget(f"{path}: GPT partition table: Raspberry Pi OS images use MBR")
        if type_id and count:
            parts.append(Partition(i + 1, type_id, start * SECTOR, count * SECTOR))
    return parts


def boot_volume(path: Path) -> FatVolume:
    """The FAT boot partition of a Raspberry Pi OS image or card; refuse anything else."""
    parts = read_partitions(path)
    fat = [p for p in parts if p.is_fat]
    if not fat:
        raise RefusedTarget(f"{path}: no FAT boot partition: not a Raspberry Pi OS image or card")
    volume = FatVolume(path, fat[0].start)
    if not volume.is_fat():
        raise RefusedTarget(f"{path}: partition {fat[0].number} is marked FAT but holds no FAT file system")
    if not volume.exists("/config.txt"):
        raise RefusedTarget(f"{path}: the boot partition has no config.txt: not a Raspberry Pi OS image")
    return volume


def is_block_device(path: Path) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def _device_family(path: Path) -> set[int]:
    """st_rdev of a disk, its partitions and what is stacked on them (dm, md)."""
    real = Path(os.path.realpath(path))
    family = {os.stat(real).st_rdev}
    sys_dir = Path("/sys/class/block") / real.name
    names = [real.name]
    if sys_dir.is_dir():
        names += [p.name for p in sys_dir.iterdir() if (p / "partition").exists()]
    seen: set[str] = set()
    while names:
        name = names.pop()
        if name in seen:
            continue
        seen.add(name)
        dev = Path("/sys/class/block") / name / "dev"
        if dev.exists():
            major, minor = dev.read_text().strip().split(":")
            family.add(os.makedev(int(major), int(minor)))
        holders = Path("/sys/class/block") / name / "holders"
        if holders.is_dir():
            names += [h.name for h in holders.iterdir()]
    return family


def _mount_table() -> list[tuple[str, str]]:
    rows = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2:
            rows.append((fields[0], fields[1].replace("\\040", " ")))
    swaps = Path("/proc/swaps")
    if swaps.exists():
        rows += [(line.split()[0], "[swap]") for line in swaps.read_text().splitlines()[1:] if line.strip()]
    return rows


def check_block_device(
    path: Path,
    mounts: list[tuple[str, str]] | None = None,
    family: set[int] | None = None,
) -> None:
    """Refuse a block device that is, or holds, a mounted file system; a system disk outright."""
    family = _device_family(path) if family is None else family
    mounts = _mount_table() if mounts is None else mounts
    in_use: list[str] = []
    for source, mountpoint in mounts:
        if not source.startswith("/"):
            continue
        try:
            rdev = os.stat(source).st_rdev
        except OSError:
            continue
        if rdev in family:
            if mountpoint in SYSTEM_MOUNTS or mountpoint == "[swap]":
                raise RefusedTarget(
                    f"{path}: this is a system disk ({source} is mounted at {mountpoint}); refusing outright"
                )
            in_use.append(f"{source} at {mountpoint}")
    if in_use:
        raise RefusedTarget(f"{path}: mounted ({', '.join(in_use)}); unmount it (do not eject) and retry")


def copy_base_image(src: Path, dst: Path, progress: Progress | None = None) -> None:
    """Write a base image (``.img`` or ``.img.xz``, decompressed on the fly) onto ``dst``.

    An image file is written sparse; a block device is written whole and flushed.
    """
    device = is_block_device(dst)
    total: int | None = None if src.suffix == ".xz" else src.stat().st_size
    opener = lzma.open if src.suffix == ".xz" else open
    done = 0
    with opener(src, "rb") as fin:  # type: ignore[operator]
        # an image file holds the phone's passwords once provisioned: never readable by others
        fd = os.open(dst, os.O_WRONLY | (0 if device else os.O_CREAT | os.O_TRUNC), 0o600)
        try:
            while True:
                chunk = fin.read(CHUNK)
                if not chunk:
                    break
                if not device and chunk.count(0) == len(chunk):
                    os.lseek(fd, len(chunk), os.SEEK_CUR)  # keep image files sparse
                else:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                done += len(chunk)
                if progress:
                    progress(done, total)
            if not device:
                os.ftruncate(fd, done)
            os.fsync(fd)
        finally:
            os.close(fd)


def check_target_file(base: Path) -> None:
    """A base image must exist and look like Raspberry Pi OS (an ``.img.xz`` is looked into too)."""
    base_boot_files(base)


def base_boot_files(base: Path) -> tuple[str, ...]:
    """The names at the top of a base image's boot partition; refuse one that is not Raspberry Pi OS.

    An ``.img.xz`` is decompressed only up to the end of its boot partition, into a temporary sparse
    file. The answer is kept per file version: ``bulk`` asks once per phone.
    """
    if not base.is_file():
        raise RefusedTarget(f"--base {base}: no such file")
    info = base.stat()
    return _boot_files(base.resolve(), info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=4)
def _boot_files(base: Path, mtime_ns: int, size: int) -> tuple[str, ...]:
    if base.suffix != ".xz":
        return tuple(boot_volume(base).listdir("/"))
    with tempfile.TemporaryDirectory(prefix="deskphone-base-") as tmp:
        head = Path(tmp) / base.stem
        try:
            _decompress_boot_partition(base, head)
            return tuple(boot_volume(head).listdir("/"))
        except RefusedTarget as exc:
            raise RefusedTarget(str(exc).replace(str(head), f"--base {base}")) from None


def _decompress_boot_partition(base: Path, head: Path) -> None:
    """``head``: the start of the decompressed image, up to the end of its first FAT partition."""
    try:
        with lzma.open(base, "rb") as fin, head.open("wb") as out:
            out.write(fin.read(SECTOR))
            out.flush()
            fat = [p for p in read_partitions(head) if p.is_fat]
            end = fat[0].start + fat[0].size if fat else SECTOR
            done = SECTOR
            while done < end:
                chunk = fin.read(min(CHUNK, end - done))
                if not chunk:
                    raise RefusedTarget(f"--base {base}: the image ends inside its boot partition")
                if chunk.count(0) == len(chunk):
                    out.seek(len(chunk), os.SEEK_CUR)
                else:
                    out.write(chunk)
                done += len(chunk)
            out.truncate(done)
    except (lzma.LZMAError, EOFError) as exc:
        raise RefusedTarget(f"--base {base}: not a readable .xz file ({exc})") from None
