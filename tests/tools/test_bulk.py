"""Bulk provisioning from an inventory CSV: 50 phones; bad rows all named, nothing written."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import pytest

from tools.provisioning.errors import InvalidDevice
from tools.provisioning.inventory import parse_inventory

from .conftest import SITE_ARGS, flash, require_config_schema

BAD_CSV = (
    "device_id,extension,name,board,crm_user,sip_password\n"
    "desk-1,101,Front,rpi-v1,alice,\n"
    "Desk 2,102,Back,rpi-v1,bob,\n"  # row 3: bad id
    "desk-3,103,Side,rpi-v9,carol,\n"  # row 4: unknown board
    "desk-4,104,Hall,rpi-v1,dan,\n"
    "desk-5,101,Dup,rpi-v1,erin,\n"  # row 6: extension used in row 2
)


def test_three_bad_rows_are_named_together() -> None:
    with pytest.raises(InvalidDevice) as caught:
        parse_inventory(BAD_CSV)
    errors = caught.value.errors
    assert len(errors) == 3
    assert errors[0].startswith("row 3: device_id")
    assert errors[1].startswith("row 4: board")
    assert errors[2] == "row 6: extension '101' already used in row 2"


def test_unknown_and_missing_columns_are_refused() -> None:
    with pytest.raises(InvalidDevice) as caught:
        parse_inventory("device_id,phone\nx,1\n")
    assert "missing column(s) extension" in caught.value.errors[0]
    assert "unknown column(s) phone" in caught.value.errors[1]


@pytest.mark.e2e
def test_bulk_with_bad_rows_writes_nothing(pi_image: Path, bundle: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "office.csv"
    inventory.write_text(BAD_CSV)
    out = tmp_path / "images"
    secrets = tmp_path / "secrets.csv"
    proc = flash(
        "bulk", "--inventory", str(inventory), "--secrets", str(secrets), "--bundle", str(bundle),
        "--base", str(pi_image), "--out-dir", str(out), *SITE_ARGS,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "refused, nothing written (3 problems)" in proc.stderr
    for row in ("row 3:", "row 4:", "row 6:"):
        assert row in proc.stderr
    assert not out.exists() and not secrets.exists()


@pytest.mark.e2e
def test_bulk_fifty_phones(pi_image: Path, bundle: Path, tmp_path: Path) -> None:
    require_config_schema()
    inventory = tmp_path / "office.csv"
    rows = ["device_id,extension,name,crm_user,sip_password"]
    rows += [
        f"desk-{n:03d},{200 + n},Desk {n},user{n},{'given-pw-1' if n == 1 else ''}" for n in range(1, 51)
    ]
    inventory.write_text("\n".join(rows) + "\n")
    out = tmp_path / "images"
    secrets = tmp_path / "secrets.csv"
    args = [
        "bulk", "--inventory", str(inventory), "--secrets", str(secrets), "--bundle", str(bundle),
        "--base", str(pi_image), "--out-dir", str(out), *SITE_ARGS,
    ]  # fmt: skip
    proc = flash(*args, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert not out.exists() and not secrets.exists()

    proc = flash(*args)
    assert proc.returncode == 0, proc.stderr
    assert "[50/50] desk-050" in proc.stdout
    images = sorted(out.glob("*.img"))
    assert len(images) == 50
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    store = {r["account"]: r for r in csv.DictReader(secrets.open())}
    assert store["desk-001"]["sip_password"] == "given-pw-1"
    assert len({store[f"desk-{n:03d}"]["sip_password"] for n in range(1, 51)}) == 50

    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["device_id"] for r in summary] == [f"desk-{n:03d}" for n in range(1, 51)]
    assert {r["status"] for r in summary} == {"written"}
    assert {r["sip_password"] for r in summary} == {"(hidden)"}
    assert summary[4]["extension"] == "205" and summary[4]["crm_user"] == "user5"
    assert "given-pw-1" not in proc.stdout + proc.stderr + (out / "summary.csv").read_text()

    for image in (images[0], images[49]):
        check = flash(
            "verify", "--target", str(image), "--inventory", str(inventory), "--secrets", str(secrets)
        )
        assert check.returncode == 0, check.stderr

    # Again, with the secrets on the sheet: same passwords (from the store), the sheet is 0600.
    sheet = tmp_path / "sheet.csv"
    proc = flash(*args, "--show-secrets", "--summary", str(sheet))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(sheet.stat().st_mode) == 0o600
    shown = {r["device_id"]: r for r in csv.DictReader(sheet.open())}
    assert shown["desk-002"]["sip_password"] == store["desk-002"]["sip_password"]
