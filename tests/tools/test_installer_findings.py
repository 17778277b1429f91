"""Issue 11, part 4: what a new installer ran into, each finding pinned by a test."""

from __future__ import annotations

import lzma
import stat
from pathlib import Path

import pytest

from tools.provisioning.device import DEVICE_ID_RULE, Device, Site
from tools.provisioning.errors import InvalidDevice
from tools.provisioning.inventory import parse_inventory

from .conftest import REPO, SITE_ARGS, flash, require_config_schema

INVENTORY = "device_id,extension,crm_user\ndesk-1,101,alice\ndesk-2,102,\n"


def _xz(src: bytes, path: Path) -> Path:
    path.write_bytes(lzma.compress(src, preset=0))
    return path


def _bulk(tmp_path: Path, bundle: Path, base: Path, *extra: str) -> tuple[int, str, str]:
    inventory = tmp_path / "office.csv"
    inventory.write_text(INVENTORY)
    proc = flash(
        "bulk", "--inventory", str(inventory), "--secrets", str(tmp_path / "secrets.csv"),
        "--bundle", str(bundle), "--base", str(base), "--out-dir", str(tmp_path / "images"),
        *SITE_ARGS, *extra,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("suffix", [".img", ".img.xz"])
@pytest.mark.parametrize("dry_run", [True, False])
def test_an_all_zero_base_is_refused_before_anything_is_written(
    suffix: str, dry_run: bool, tmp_path: Path, bundle: Path
) -> None:
    require_config_schema()
    zeros = bytes(4 << 20)
    base = _xz(zeros, tmp_path / f"zeros{suffix}") if suffix == ".img.xz" else tmp_path / "zeros.img"
    if suffix == ".img":
        base.write_bytes(zeros)
    code, _, err = _bulk(tmp_path, bundle, base, *(["--dry-run"] if dry_run else []))
    assert code == 1
    assert f"{base}: no partition table: not a Raspberry Pi OS image" in err
    assert not (tmp_path / "secrets.csv").exists(), "passwords were generated for a refused base"
    assert not (tmp_path / "images").exists()


@pytest.mark.e2e
def test_a_dry_run_looks_into_an_xz_base(tmp_path: Path, bundle: Path, pi_image_cloud_init: Path) -> None:
    require_config_schema()
    base = _xz(pi_image_cloud_init.read_bytes(), tmp_path / "raspios.img.xz")
    code, out, err = _bulk(tmp_path, bundle, base, "--dry-run")
    assert code == 0, err
    assert out.count("first boot: cloud-init") == 2
    assert "unknown" not in out


@pytest.mark.e2e
def test_a_failed_write_leaves_no_image_and_good_ones_are_0600(
    tmp_path: Path, bundle: Path, pi_image: Path
) -> None:
    """A truncated .img.xz passes the check (its boot partition is whole) and fails while copied."""
    require_config_schema()
    whole = lzma.compress(pi_image.read_bytes(), preset=0)
    truncated = tmp_path / "truncated.img.xz"
    truncated.write_bytes(whole[:-16])
    code, _, err = _bulk(tmp_path, bundle, truncated)
    assert code == 1
    assert "not written, the partial image was removed" in err
    left = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert left == ["summary.csv"], f"a half-written image was left behind: {left}"

    good = tmp_path / "good.img.xz"
    good.write_bytes(whole)
    code, _, err = _bulk(tmp_path, bundle, good)
    assert code == 0, err
    images = sorted((tmp_path / "images").glob("*.img"))
    assert [i.name for i in images] == ["desk-1.img", "desk-2.img"]
    assert {stat.S_IMODE(i.stat().st_mode) for i in images} == {0o600}
    assert not list((tmp_path / "images").glob(".*partial"))


def test_site_ca_cert_is_read_as_ca_file_with_a_deprecation_warning(tmp_path: Path) -> None:
    (tmp_path / "office-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    old = tmp_path / "old-site.toml"
    old.write_text('[sip]\nregistrar = "pbx"\n[mqtt]\nhost = "b"\ntls = true\nca_cert = "office-ca.pem"\n')
    warned: list[str] = []
    site = Site.from_toml(old, warn=warned.append)
    assert site.mqtt_ca_file == tmp_path / "office-ca.pem"
    assert len(warned) == 1 and "mqtt.ca_cert is deprecated, rename it to ca_file" in warned[0]

    new = tmp_path / "site.toml"
    new.write_text('[sip]\nregistrar = "pbx"\n[mqtt]\nhost = "b"\ntls = true\nca_file = "office-ca.pem"\n')
    assert Site.from_toml(new, warn=warned.append).mqtt_ca_file == tmp_path / "office-ca.pem"
    assert len(warned) == 1

    both = tmp_path / "both.toml"
    both.write_text('[mqtt]\nca_file = "office-ca.pem"\nca_cert = "office-ca.pem"\n')
    with pytest.raises(InvalidDevice, match="keep only ca_file"):
        Site.from_toml(both)
    assert Site(sip_registrar="pbx", mqtt_host="b", mqtt_ca_file=tmp_path / "nope.pem").problems() == [
        f"mqtt.ca_file: no such file {tmp_path / 'nope.pem'}"
    ]


IDS = ["desk-1", "desk_1", "a", "9lives", "x" * 64, "x" * 65, "-desk", "_desk", "Desk", "desk 1", "dësk", ""]


def test_device_id_rule_is_one_rule_in_the_inventory_the_config_check_and_the_readme() -> None:
    require_config_schema()
    from firmware.config import ConfigError, parse_config

    def config_accepts(device_id: str) -> bool:
        data = {"device": {"id": device_id}, "sip": {"registrar": "pbx", "user": "1", "password": "x"}}
        try:
            parse_config(data)
        except ConfigError as exc:
            assert all(e.startswith("device.id") for e in exc.errors), exc.errors
            return False
        return True

    inventory = {i: not Device(i, "101").problems() for i in IDS}
    config = {i: config_accepts(i) for i in IDS}
    assert inventory == config
    assert [i for i, ok in inventory.items() if ok] == ["desk-1", "desk_1", "a", "9lives", "x" * 64]
    readme = (REPO / "README.md").read_text()
    installing = (REPO / "docs" / "INSTALLING.md").read_text()
    for text in (readme, installing):
        assert DEVICE_ID_RULE.replace("'", "`") in text


def test_an_empty_extension_or_device_id_reads_required() -> None:
    with pytest.raises(InvalidDevice) as caught:
        parse_inventory("device_id,extension\ndesk-1,\n,102\n")
    assert caught.value.errors == [
        "row 2: extension: required (the phone's SIP user)",
        "row 3: device_id: required",
    ]
    require_config_schema()
    from firmware.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as config_error:
        parse_config({"device": {"id": "d"}, "sip": {"registrar": "pbx", "user": "", "password": "x"}})
    assert config_error.value.errors == ["sip.user: required: a user name without spaces, '@' or ':'"]


def test_bulk_help_explains_every_option() -> None:
    import argparse

    from tools.flash import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    bulk = commands.choices["bulk"]
    undescribed = [a.option_strings[0] for a in bulk._actions if a.option_strings and not a.help]
    assert undescribed == [], f"options of bulk without help: {undescribed}"
    text = " ".join(flash("bulk", "--help").stdout.split())
    assert "account,sip_password,mqtt_password" in text
    assert "crm_user is the CRM user at that desk" in text


def test_installing_guide_documents_the_inventory_the_secrets_and_the_boot_mount() -> None:
    guide = (REPO / "docs" / "INSTALLING.md").read_text()
    crm_user = next(line for line in guide.splitlines() if line.startswith("  | `crm_user` |"))
    assert "CRM gateway" in crm_user and "Empty for a plain extension" in crm_user
    assert "`account,sip_password,mqtt_password`" in guide and "CRM's own broker account" in guide
    assert "`--boot-mount` (default `/boot/firmware`)" in guide
    assert "ca_cert =" not in guide and 'ca_file = "office-ca.pem"' in guide
