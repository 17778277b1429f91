"""Writing one phone onto an image or card: validate everything, stage, then write, and say so on failure."""

from __future__ import annotations

import hashlib
import lzma
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import firstboot
from .bundle import bundle_files, pythons, stage_bundle
from .device import Device, Site, check_device, config_text, secrets_text
from .errors import InvalidDevice, ProvisioningError, RefusedTarget, WriteFailed
from .fat import FatVolume
from .image import base_boot_files, boot_volume, check_block_device, copy_base_image, is_block_device
from .release import PYTHON_OF, image_release

DEST = "/deskphone"
MANIFEST = "MANIFEST"

Echo = Callable[[str], None]


@dataclass
class Result:
    """What was (or, in a dry run, would be) written."""

    target: Path
    device_id: str
    mode: str = ""
    files: list[str] = field(default_factory=list)
    dry_run: bool = False
    release: str | None = None


def stage(
    device: Device, site: Site, bundle: Path, root: Path, boot_mount: str, python: str | None = None
) -> list[str]:
    """Lay out ``root/deskphone/`` exactly as it will be on the boot partition; the relative file list.

    ``python`` (``cp311``...) picks the compiled wheels of a bundle built for several Pythons.
    """
    out = root / "deskphone"
    out.mkdir(mode=0o700)
    (out / "deskphone.toml").write_text(config_text(device, site), encoding="utf-8")
    fd = os.open(out / "secrets.toml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets_text(device, site))
    (out / "firstboot.sh").write_text(firstboot.script(boot_mount), encoding="utf-8")
    (out / "deskphone-firstboot.service").write_text(firstboot.firstboot_unit(boot_mount), encoding="utf-8")
    (out / "deskphone.service").write_text(firstboot.service_unit(), encoding="utf-8")
    if site.mqtt_ca_file is not None:
        (out / "ca.pem").write_bytes(site.mqtt_ca_file.read_bytes())
    stage_bundle(bundle, out / "bundle", python)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    manifest = "".join(f"{hashlib.sha256((out / f).read_bytes()).hexdigest()}  {f}\n" for f in files)
    (root / MANIFEST).write_text(manifest, encoding="utf-8")
    return files


def check_target(target: Path, base: Path | None) -> None:
    """Refusals that need no writing: a mounted or system disk, a missing target, a non-Pi base image."""
    if is_block_device(target):
        check_block_device(target)
    elif base is None and not target.is_file():
        raise RefusedTarget(f"{target}: no such image (give --base to write a base image first)")
    elif target.exists() and not target.is_file():
        raise RefusedTarget(f"{target}: neither an image file nor a block device")
    if base is not None:
        base_boot_files(base)


def provision(
    target: Path,
    device: Device,
    site: Site,
    bundle: Path,
    *,
    base: Path | None = None,
    boot_mount: str = firstboot.BOOT_MOUNT,
    dry_run: bool = False,
    release: str | None = None,
    echo: Echo = print,
) -> Result:
    """Validate, then write ``device`` onto ``target`` (optionally after writing ``base`` onto it).

    ``release`` (bookworm, trixie) is the image's Raspberry Pi OS release; by default it is read from
    the image, which for a compressed base is possible only once it is written.
    """
    errors = check_device(device, site)
    if errors:
        raise InvalidDevice(errors)
    needs_release = bool(pythons(bundle_files(bundle)))
    if release is not None and release not in PYTHON_OF:
        raise InvalidDevice([f"--release {release}: one of {', '.join(PYTHON_OF)}"])
    check_target(target, base)
    result = Result(target=target, device_id=device.device_id, dry_run=dry_run)
    inspect = target if base is None else base
    if needs_release and release is None and inspect.suffix != ".xz":
        release = _read_release(inspect)
    result.release = release
    with tempfile.TemporaryDirectory(prefix="deskphone-stage-") as tmp:
        staging = Path(tmp)

        def staged(release: str | None) -> list[str]:
            python = PYTHON_OF.get(release or "")
            return [f"{DEST}/{f}" for f in stage(device, site, bundle, staging, boot_mount, python)]

        release_known = release is not None or not needs_release
        if not release_known and dry_run:
            result.files = []
            result.mode = "unknown until the base image is decompressed (or give --release)"
            echo(f"would write {target} ({device.device_id}); the bundle's Python depends on the release")
            return result
        if release_known:
            result.files = staged(release)  # before anything is written
        if dry_run:
            names = boot_volume(target).listdir("/") if base is None else base_boot_files(base)
            result.mode = firstboot.detect(list(names))
            if base is not None:
                echo(f"would write base image {base} onto {target}")
            echo(
                f"would write {len(result.files)} files to {target} ({device.device_id}), "
                f"first boot: {result.mode}"
            )
            return result
        # A new image file is written under a temporary name and renamed when complete: a failed
        # write never leaves something at ``target`` that looks like a good image. That holds for a
        # compressed base too, whose release (and so the bundle's Python) shows only once written.
        partial = base is not None and not is_block_device(target)
        work = target.with_name(f".{target.name}.partial") if partial else target
        try:
            if base is not None:
                _write_base(base, work, echo)
            elif not is_block_device(target):
                os.chmod(target, 0o600)  # it is about to hold the phone's passwords
            if not release_known:
                result.release = _read_release(work)
                result.files = staged(result.release)
            volume = boot_volume(work)
            result.mode = firstboot.detect(volume.listdir("/"))
            _write_boot(volume, staging, result.mode, boot_mount, echo)
        except BaseException as exc:
            if partial:
                work.unlink(missing_ok=True)
                if isinstance(exc, ProvisioningError):
                    cause = exc.__cause__ or exc
                    message = f"{target}: not written, the partial image was removed ({cause})"
                    raise WriteFailed(message) from exc
            raise
        if partial:
            os.replace(work, target)
    if is_block_device(target):
        os.sync()
    echo(
        f"{target}: provisioned {device.device_id} ({len(result.files)} files, first boot via {result.mode})"
    )
    return result


def _read_release(image: Path) -> str | None:
    release = image_release(image)
    if release is not None and release not in PYTHON_OF:
        raise InvalidDevice(
            [f"{image}: Raspberry Pi OS {release} is not supported (supported: {', '.join(PYTHON_OF)})"]
        )
    return release


def _write_base(base: Path, target: Path, echo: Echo) -> None:
    last = [-1]

    def progress(done: int, total: int | None) -> None:
        mib = done >> 20
        if mib // 256 != last[0]:
            last[0] = mib // 256
            of = f" of {total >> 20} MiB" if total else " MiB"
            echo(f"  writing {base.name} -> {target}: {mib}{of}")

    try:
        copy_base_image(base, target, progress)
    except (OSError, EOFError, lzma.LZMAError) as exc:  # EOFError: a truncated .xz
        raise WriteFailed(
            f"{target}: writing the base image failed ({exc}); the target is incomplete"
        ) from exc


def _write_boot(volume: FatVolume, staging: Path, mode: str, boot_mount: str, echo: Echo) -> None:
    need = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    free = volume.free_bytes()
    if need + (1 << 20) > free:
        raise WriteFailed(
            f"{volume.path}: boot partition has {free} bytes free, {need} needed; nothing written"
        )
    try:
        volume.delete_tree(DEST)
        volume.put_tree(staging / "deskphone", DEST)
        if mode == "cloud-init":
            user_data = volume.read("/user-data").decode("utf-8")
            volume.write_text("/user-data", firstboot.add_to_user_data(user_data, boot_mount), staging)
        else:
            cmdline = volume.read("/cmdline.txt").decode("utf-8")
            volume.write_text("/cmdline.txt", firstboot.add_to_cmdline(cmdline, boot_mount), staging)
        volume.put_file(staging / MANIFEST, f"{DEST}/{MANIFEST}")  # last: marks a complete write
    except (ProvisioningError, OSError, ValueError) as exc:
        raise WriteFailed(
            f"{volume.path} is HALF-WRITTEN ({exc}); run provision again or reflash it before use"
        ) from exc
    echo(f"  wrote {DEST} and the {mode} first-boot hook")
