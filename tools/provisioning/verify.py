"""Reading a provisioned image or card back and checking it against what was meant to be there."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import firstboot
from .bundle import SUMS, parse_sums, wheel_python
from .device import Device, Site, render_config, validate
from .errors import VerifyFailed
from .image import boot_volume
from .provision import DEST, MANIFEST
from .release import PYTHON_OF, image_release

DEVICE_KEYS = (("device", "id"), ("device", "name"), ("board", "name"), ("sip", "user"))


@dataclass
class Found:
    device_id: str
    mode: str
    files: int
    release: str | None = None


def _toml(volume_read: bytes, name: str, problems: list[str]) -> dict[str, Any]:
    try:
        return tomllib.loads(volume_read.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"{name}: not valid TOML ({exc})")
        return {}


def verify_target(
    target: Path,
    devices: list[Device] | None = None,
    site: Site | None = None,
    boot_mount: str = firstboot.BOOT_MOUNT,
) -> Found:
    """Check the card; raise VerifyFailed listing every problem. Secrets are compared, never shown."""
    volume = boot_volume(target)
    problems: list[str] = []
    try:
        manifest = parse_sums(volume.read(f"{DEST}/{MANIFEST}").decode())
    except FileNotFoundError:
        raise VerifyFailed(
            [f"{target}: no {DEST}/{MANIFEST}: not provisioned, or the write did not finish"]
        ) from None
    on_card = set(volume.walk(DEST)) - {MANIFEST}
    for missing in sorted(set(manifest) - on_card):
        problems.append(f"{DEST}/{missing}: listed in {MANIFEST} but missing")
    for extra in sorted(on_card - set(manifest)):
        problems.append(f"{DEST}/{extra}: on the card but not in {MANIFEST}")
    contents: dict[str, bytes] = {}
    for name in sorted(set(manifest) & on_card):
        contents[name] = volume.read(f"{DEST}/{name}")
        if hashlib.sha256(contents[name]).hexdigest() != manifest[name]:
            problems.append(f"{DEST}/{name}: checksum differs from {MANIFEST}")
    sums_name = f"bundle/{SUMS}"
    if sums_name in contents:
        for name, digest in parse_sums(contents[sums_name].decode()).items():
            data = contents.get(f"bundle/{name}")
            if data is None:
                problems.append(f"bundle/{name}: in {SUMS} but missing")
            elif hashlib.sha256(data).hexdigest() != digest:
                problems.append(f"bundle/{name}: checksum does not match {SUMS}")
    else:
        problems.append(f"{DEST}/{sums_name}: missing")

    release = image_release(target)
    problems += _check_wheels([Path(n) for n in contents if n.startswith("bundle/")], release)

    config = _toml(contents.get("deskphone.toml", b""), "deskphone.toml", problems)
    secrets = _toml(contents.get("secrets.toml", b""), "secrets.toml", problems)
    device_id = str(config.get("device", {}).get("id", ""))
    if config:
        try:
            problems += [f"config: {e}" for e in validate(config, secrets)]
        except ImportError as exc:
            problems.append(f"config: cannot validate, firmware.config not importable ({exc})")
    if devices is not None:
        expected = next((d for d in devices if d.device_id == device_id), None)
        if expected is None:
            problems.append(f"device {device_id!r} on the card is not in the inventory")
        else:
            problems += _compare(config, secrets, expected, site)

    mode = firstboot.detect(volume.listdir("/"))
    hook = firstboot.cmdline_tokens(boot_mount)
    if mode == "cloud-init":
        user_data = volume.read("/user-data").decode(errors="replace")
        if f"{boot_mount}/{firstboot.SCRIPT}, run]  {firstboot.MARK}" not in user_data:
            problems.append("user-data: the first-boot runcmd entry is missing")
    elif hook not in volume.read("/cmdline.txt").decode(errors="replace"):
        problems.append("cmdline.txt: the first-boot systemd.run= hook is missing")
    if problems:
        raise VerifyFailed(problems)
    return Found(device_id=device_id, mode=mode, files=len(manifest), release=release)


def _check_wheels(files: list[Path], release: str | None) -> list[str]:
    """Compiled wheels on the card must be for the image's Python, and pjsua2 among them."""
    if release is None:
        return []
    python = PYTHON_OF.get(release)
    if python is None:
        return [f"the image is Raspberry Pi OS {release}; supported: {', '.join(PYTHON_OF)}"]
    problems = [
        f"{f}: built for {wheel_python(f)}, the image ({release}) has {python}"
        for f in files
        if wheel_python(f) not in (None, python)
    ]
    if not any(f.name.startswith("pjsua2-") and wheel_python(f) == python for f in files):
        problems.append(f"bundle/wheelhouse: no pjsua2 wheel for {python} ({release}): see make dist-pi")
    return problems


def _compare(config: dict[str, Any], secrets: dict[str, Any], device: Device, site: Site | None) -> list[str]:
    problems = []
    if site is not None:
        wanted = render_config(device, site)
        keys = [(s, k) for s, values in wanted.items() for k, v in values.items() if v is not None]
    else:
        wanted = render_config(device, Site())
        keys = list(DEVICE_KEYS)
    for section, key in keys:
        have = config.get(section, {}).get(key)
        want = wanted[section][key]
        if have != want:
            problems.append(f"config {section}.{key}: card has {have!r}, inventory says {want!r}")
    for section, key, want_secret in (
        ("sip", "password", device.sip_password),
        ("mqtt", "password", device.mqtt_password),
    ):
        if want_secret and secrets.get(section, {}).get(key) != want_secret:
            problems.append(f"secrets {section}.{key}: differs from the secrets store")
    return problems
