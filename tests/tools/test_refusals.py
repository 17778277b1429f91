"""Refusals: not a Raspberry Pi OS image, no boot partition, invalid config, mounted or system disks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.provisioning.errors import RefusedTarget
from tools.provisioning.image import check_block_device

from .conftest import SITE_ARGS, flash, make_image, require_config_schema


def _provision(target: Path, bundle: Path, *extra: str) -> tuple[int, str]:
    proc = flash(
        "provision", "--target", str(target), "--bundle", str(bundle),
        "--device-id", "desk-1", "--extension", "101", *extra,
    )  # fmt: skip
    return proc.returncode, proc.stderr


@pytest.mark.e2e
def test_fat_image_without_config_txt_is_not_raspberry_pi_os(tmp_path: Path, bundle: Path) -> None:
    require_config_schema()
    image = make_image(tmp_path / "other.img", files={"autoexec.bat": "@echo off\n"})
    before = image.read_bytes()
    code, err = _provision(image, bundle, *SITE_ARGS)
    assert code == 1 and "no config.txt: not a Raspberry Pi OS image" in err
    assert image.read_bytes() == before


@pytest.mark.e2e
def test_image_without_boot_partition(tmp_path: Path, bundle: Path) -> None:
    require_config_schema()
    image = make_image(tmp_path / "linux.img", partitions="label: dos\nstart=2048, type=83\n", fat=False)
    code, err = _provision(image, bundle, *SITE_ARGS)
    assert code == 1 and "no FAT boot partition" in err


def test_file_without_partition_table(tmp_path: Path, bundle: Path) -> None:
    require_config_schema()
    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(4096))
    code, err = _provision(junk, bundle, *SITE_ARGS)
    assert code == 1 and "no partition table" in err


def test_invalid_config_names_every_error_and_writes_nothing(
    pi_image: Path, bundle: Path, tmp_path: Path
) -> None:
    require_config_schema()
    secrets = tmp_path / "s.csv"
    code, err = _provision(
        pi_image, bundle, "--secrets", str(secrets), "--board", "sim",
        "--registrar", "bad host!", "--transport", "udp", "--broker-host", "", "--topic-prefix", "/abs",
    )  # fmt: skip
    assert code == 1
    assert "refused, nothing written (3 problems)" in err
    for key in ("sip.registrar", "mqtt.host", "mqtt.topic_prefix"):
        assert key in err
    assert not secrets.exists()


def test_schema_errors_from_firmware_config_are_reported(
    pi_image: Path, bundle: Path, tmp_path: Path
) -> None:
    """What only the phone's own schema knows is caught too (here: sip.user with '@')."""
    require_config_schema()
    from tools.provisioning.device import Device, Site, validate

    errors = validate(
        {"device": {"id": "d"}, "sip": {"registrar": "pbx", "user": "a@b"}, "mqtt": {"port": 0}},
        {"sip": {"password": "x"}},
    )
    assert any(e.startswith("sip.user") for e in errors) and any(e.startswith("mqtt.port") for e in errors)
    assert Device("d-1", "1").problems() == [] and Site().problems()  # no registrar


def test_system_disk_is_refused_outright() -> None:
    null = os.stat("/dev/null").st_rdev
    with pytest.raises(RefusedTarget, match="system disk"):
        check_block_device(Path("/dev/sdz"), mounts=[("/dev/null", "/")], family={null})
    with pytest.raises(RefusedTarget, match="system disk"):
        check_block_device(Path("/dev/sdz"), mounts=[("/dev/null", "[swap]")], family={null})


def test_mounted_card_is_refused() -> None:
    null = os.stat("/dev/null").st_rdev
    with pytest.raises(RefusedTarget, match="unmount it"):
        check_block_device(Path("/dev/sdz"), mounts=[("/dev/null", "/media/pi/bootfs")], family={null})
    check_block_device(Path("/dev/sdz"), mounts=[("/dev/null", "/")], family={12345})  # another disk: fine


def test_help_for_every_subcommand() -> None:
    for command in ("provision", "bulk", "broker", "verify"):
        proc = flash(command, "--help")
        assert proc.returncode == 0 and "--dry-run" in proc.stdout
    assert flash().returncode == 2
