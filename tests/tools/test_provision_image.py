"""Provision a real disk image and read it back with independent tools (sfdisk, 7-Zip, fsck.fat)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tools.provisioning import firstboot

from .conftest import (
    BOOT_SECTORS,
    BOOT_START,
    CMDLINE,
    SECTOR,
    SITE_ARGS,
    extract_boot,
    flash,
    need,
    require_config_schema,
)

pytestmark = pytest.mark.e2e


def _provision(target: Path, bundle: Path, secrets: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return flash(
        "provision",
        "--target", str(target),
        "--bundle", str(bundle),
        "--device-id", "desk-101",
        "--extension", "101",
        "--name", "Reception",
        "--secrets", str(secrets),
        *SITE_ARGS,
        *extra,
    )  # fmt: skip


def test_provision_writes_everything_and_reads_back(
    pi_image: Path, copy_image: Callable[[Path], Path], bundle: Path, tmp_path: Path
) -> None:
    require_config_schema()
    target = copy_image(pi_image)
    secrets = tmp_path / "office-secrets.csv"
    proc = _provision(target, bundle, secrets)
    assert proc.returncode == 0, proc.stderr
    store = {row["account"]: row for row in csv.DictReader(secrets.open())}
    sip_password = store["desk-101"]["sip_password"]
    assert sip_password and sip_password not in proc.stdout + proc.stderr  # never printed
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o600, "the image holds passwords: 0600"

    # The partition table, read by sfdisk: untouched.
    table = json.loads(
        subprocess.run(["sfdisk", "--json", str(target)], capture_output=True, check=True).stdout
    )
    first = table["partitiontable"]["partitions"][0]
    assert (first["start"], first["size"], first["type"]) == (BOOT_START, BOOT_SECTORS, "c")

    # The FAT file system is consistent (fsck.fat on the extracted partition).
    need("fsck.vfat")
    part = tmp_path / "boot.fat"
    with target.open("rb") as src, part.open("wb") as dst:
        src.seek(BOOT_START * SECTOR)
        dst.write(src.read(BOOT_SECTORS * SECTOR))
    fsck = subprocess.run(["fsck.vfat", "-n", str(part)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    boot = extract_boot(target, tmp_path / "readback")
    d = boot / "deskphone"
    config = tomllib.loads((d / "deskphone.toml").read_text())
    assert config["device"] == {"id": "desk-101", "name": "Reception"}
    assert config["board"] == {"name": "rpi-v1", "pin_factory": "lgpio"}
    assert config["sip"]["registrar"] == "pbx.office.test" and config["sip"]["user"] == "101"
    assert "password" not in config["sip"] and "password" not in config["mqtt"]
    assert config["mqtt"]["username"] == "desk-101" and config["mqtt"]["topic_prefix"] == "deskphone"
    assert config["storage"]["dir"] == "/var/lib/deskphone"
    secrets_toml = tomllib.loads((d / "secrets.toml").read_text())
    assert secrets_toml == {
        "sip": {"password": sip_password},
        "mqtt": {"password": store["desk-101"]["mqtt_password"]},
    }
    # The config plus secrets passes the phone's own schema.
    from firmware.config import parse_config

    merged = {k: {**v, **secrets_toml.get(k, {})} for k, v in config.items()}
    assert parse_config(merged).sip.password.reveal() == sip_password

    # The bundle and its checksums, checked with sha256sum as the phone will.
    for rel in ("deskphone-0.1.0-py3-none-any.whl", "wheelhouse/paho_mqtt-2.2.0-py3-none-any.whl"):
        assert (d / "bundle" / rel).read_bytes() == (bundle / rel).read_bytes()
    check = subprocess.run(
        ["sha256sum", "--check", "SHA256SUMS"], cwd=d / "bundle", capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout.count(": OK") == 3, check.stdout
    manifest = dict(line.split("  ", 1)[::-1] for line in (d / "MANIFEST").read_text().splitlines())
    for name, digest in manifest.items():
        assert hashlib.sha256((d / name).read_bytes()).hexdigest() == digest, name

    # First boot, the way an image without cloud-init expects: systemd.run= on the kernel command line.
    cmdline = (boot / "cmdline.txt").read_text()
    assert cmdline.count("\n") == 1
    assert cmdline.strip() == CMDLINE.strip() + " " + firstboot.cmdline_tokens()
    assert "systemd.run=/boot/firmware/deskphone/firstboot.sh" in cmdline
    assert (d / "firstboot.sh").read_text().startswith("#!/bin/bash")
    assert (
        "ExecStart=/bin/bash /boot/firmware/deskphone/firstboot.sh run"
        in (d / "deskphone-firstboot.service").read_text()
    )
    service = (d / "deskphone.service").read_text()
    for line in ("Type=notify", "WatchdogSec=30", "Restart=on-failure", "User=deskphone"):
        assert line in service.splitlines()
    assert (boot / "config.txt").read_text() == "[all]\nenable_uart=1\n"

    # verify agrees; then it notices a tampered wheel.
    ok = flash(
        "verify", "--target", str(target), "--secrets", str(secrets), "--inventory", str(_inventory(tmp_path))
    )
    assert ok.returncode == 0, ok.stderr
    assert "desk-101 OK" in ok.stdout
    tampered = tmp_path / "deskphone-0.1.0-py3-none-any.whl"
    tampered.write_bytes(b"evil")
    subprocess.run(
        ["mcopy", "-o", "-i", f"{target}@@{BOOT_START * SECTOR}", str(tampered), "::/deskphone/bundle/"],
        check=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    )
    bad = flash("verify", "--target", str(target))
    assert bad.returncode == 1
    assert "bundle/deskphone-0.1.0-py3-none-any.whl: checksum" in bad.stderr


def _inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.csv"
    path.write_text("device_id,extension,name\ndesk-101,101,Reception\n")
    return path


def test_cloud_init_image_gets_a_runcmd_entry(
    pi_image_cloud_init: Path, copy_image: Callable[[Path], Path], bundle: Path, tmp_path: Path
) -> None:
    require_config_schema()
    target = copy_image(pi_image_cloud_init)
    proc = _provision(target, bundle, tmp_path / "s.csv")
    assert proc.returncode == 0, proc.stderr
    assert "first boot: cloud-init" in proc.stdout
    boot = extract_boot(target, tmp_path / "readback")
    user_data = (boot / "user-data").read_text()
    assert user_data.splitlines()[:4] == [
        "#cloud-config",
        "hostname: raspberrypi",
        "runcmd:",
        "- [bash, /boot/firmware/deskphone/firstboot.sh, run]  # deskphone-firstboot",
    ]
    assert "- [echo, hello]" in user_data
    assert (boot / "cmdline.txt").read_text() == CMDLINE  # untouched: cloud-init runs the step
    assert flash("verify", "--target", str(target)).returncode == 0


def test_dry_run_writes_nothing(
    pi_image: Path, copy_image: Callable[[Path], Path], bundle: Path, tmp_path: Path
) -> None:
    require_config_schema()
    target = copy_image(pi_image)
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    proc = _provision(target, bundle, tmp_path / "s.csv", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "would write" in proc.stdout
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before
    assert not (tmp_path / "s.csv").exists()


def test_base_image_xz_is_decompressed_onto_the_target(pi_image: Path, bundle: Path, tmp_path: Path) -> None:
    require_config_schema()
    need("xz")
    base = tmp_path / "raspios.img.xz"
    with base.open("wb") as out:
        subprocess.run(["xz", "-0", "-T1", "-c", str(pi_image)], stdout=out, check=True)
    target = tmp_path / "desk-101.img"
    proc = _provision(target, bundle, tmp_path / "s.csv", "--base", str(base))
    assert proc.returncode == 0, proc.stderr
    assert target.stat().st_size == pi_image.stat().st_size
    assert flash("verify", "--target", str(target)).returncode == 0
