"""Fixtures for the provisioning tests: real disk images (sfdisk + mkfs.vfat + mtools), a bundle, a site."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tools.provisioning.device import Site

REPO = Path(__file__).resolve().parents[2]
FLASH = REPO / "tools" / "flash.py"
SECTOR = 512
BOOT_START = 2048  # sectors
BOOT_SECTORS = 81920  # 40 MiB: the smallest comfortable FAT32
ROOT_SECTORS = 8192
IMAGE_BYTES = (BOOT_START + BOOT_SECTORS + ROOT_SECTORS) * SECTOR
CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=0d3c5a1e-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
)
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)} (apt-get install dosfstools mtools fdisk 7zip)")


def require_config_schema() -> None:
    """Skip only when firmware.config cannot be imported (it is written by another part of the project)."""
    try:
        import firmware.config  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"firmware.config not importable yet: {exc}")


def make_image(
    path: Path,
    *,
    partitions: str | None = None,
    fat: bool = True,
    files: dict[str, str] | None = None,
) -> Path:
    """A Raspberry-Pi-OS-shaped disk image: MBR, FAT32 boot partition (type c), a Linux partition."""
    need("sfdisk", "mkfs.vfat", "mcopy")
    with path.open("wb") as fh:
        fh.truncate(IMAGE_BYTES)
    table = partitions or (
        f"label: dos\nstart={BOOT_START}, size={BOOT_SECTORS}, type=c\n"
        f"start={BOOT_START + BOOT_SECTORS}, size={ROOT_SECTORS}, type=83\n"
    )
    subprocess.run(["sfdisk", "--quiet", str(path)], input=table.encode(), check=True, capture_output=True)
    if fat:
        subprocess.run(
            [
                "mkfs.vfat",
                "-F",
                "32",
                "-n",
                "bootfs",
                "--offset",
                str(BOOT_START),
                str(path),
                str(BOOT_SECTORS // 2),
            ],
            check=True,
            capture_output=True,
        )
        files = {"config.txt": "[all]\nenable_uart=1\n", "cmdline.txt": CMDLINE} if files is None else files
        for name, text in files.items():
            local = path.parent / f".{path.name}.{name}"
            local.write_text(text)
            subprocess.run(
                ["mcopy", "-i", f"{path}@@{BOOT_START * SECTOR}", str(local), f"::/{name}"],
                check=True,
                env=MTOOLS_ENV,
                capture_output=True,
            )
            local.unlink()
    return path


def make_release_image(path: Path, os_release: str) -> Path:
    """``make_image`` whose root partition (ext4) has ``/usr/lib/os-release``: it says the release."""
    need("mkfs.ext4")
    make_image(path)
    tree = path.parent / f".{path.name}.root"
    (tree / "usr/lib").mkdir(parents=True)
    (tree / "usr/lib/os-release").write_text(os_release)
    offset = (BOOT_START + BOOT_SECTORS) * SECTOR
    mkfs = [
        "mkfs.ext4",
        "-q",
        "-F",
        "-d",
        str(tree),
        "-E",
        f"offset={offset}",
        str(path),
        str(ROOT_SECTORS // 2),
    ]
    subprocess.run(mkfs, check=True, capture_output=True)
    shutil.rmtree(tree)
    return path


@pytest.fixture(scope="session")
def pi_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stock-like image without cloud-init (the first-boot step goes through cmdline.txt)."""
    return make_image(tmp_path_factory.mktemp("base") / "raspios.img")


@pytest.fixture(scope="session")
def pi_image_cloud_init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stock-like image with cloud-init's user-data on the boot partition."""
    files = {
        "config.txt": "[all]\n",
        "cmdline.txt": CMDLINE,
        "user-data": "#cloud-config\nhostname: raspberrypi\nruncmd:\n- [echo, hello]\n",
        "meta-data": "instance-id: rpios\n",
    }
    return make_image(tmp_path_factory.mktemp("base-ci") / "raspios-ci.img", files=files)


@pytest.fixture
def copy_image(tmp_path: Path) -> Callable[[Path], Path]:
    def copy(src: Path) -> Path:
        dst = tmp_path / f"target-{src.name}"
        subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)
        return dst

    return copy


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A firmware bundle as ``make dist`` lays it out (placeholder wheels: only their bytes matter here)."""
    root = tmp_path / "bundle"
    (root / "wheelhouse").mkdir(parents=True)
    (root / "deskphone-0.1.0-py3-none-any.whl").write_bytes(b"PK\x03\x04 deskphone placeholder wheel\n" * 100)
    (root / "wheelhouse" / "paho_mqtt-2.2.0-py3-none-any.whl").write_bytes(
        b"PK\x03\x04 paho placeholder\n" * 50
    )
    (root / "wheelhouse" / "gpiozero-2.0.1-py3-none-any.whl").write_bytes(b"PK\x03\x04 gpiozero\n" * 50)
    return root


@pytest.fixture
def site() -> Site:
    return Site(
        sip_registrar="pbx.office.test",
        trusted_pbx=("pbx.office.test",),
        mqtt_host="broker.office.test",
        mqtt_port=1883,
    )


SITE_ARGS = [
    "--registrar",
    "pbx.office.test",
    "--trusted-pbx",
    "pbx.office.test",
    "--broker-host",
    "broker.office.test",
]


def flash(*args: str, stdin: str = "", check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run tools/flash.py as an installer would (a separate process)."""
    import sys

    proc = subprocess.run(
        [sys.executable, str(FLASH), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"flash.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def extract_boot(image: Path, dest: Path) -> Path:
    """Read the boot partition back with 7-Zip: independent of mtools, which wrote it."""
    need("7zz")
    parts = dest / "parts"
    subprocess.run(["7zz", "x", "-y", f"-o{parts}", str(image)], check=True, capture_output=True)
    fat = sorted(parts.glob("0.*"))[0]
    boot = dest / "boot"
    subprocess.run(["7zz", "x", "-y", f"-o{boot}", str(fat)], check=True, capture_output=True)
    return boot
