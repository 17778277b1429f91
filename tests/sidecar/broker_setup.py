"""A real mosquitto serving the password file and ACL that ``flash.py broker --sidecars`` generates."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from lab.servers.mosquitto import Mosquitto
from tests.tools.conftest import SITE_ARGS, flash


def office_broker(tmp_path: Path, inventory: str, sidecars: str) -> tuple[Mosquitto, dict[str, str], str]:
    """Generate the broker files for ``inventory`` and ``sidecars`` (CSV texts) and start mosquitto on them;
    returns the (started) broker, the passwords by account and the ACL text."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto not installed")
    (tmp_path / "office.csv").write_text(inventory)
    (tmp_path / "sidecars.csv").write_text(sidecars)
    out, secrets = tmp_path / "broker-files", tmp_path / "secrets.csv"
    proc = flash(
        "broker",
        "--inventory", str(tmp_path / "office.csv"),
        "--sidecars", str(tmp_path / "sidecars.csv"),
        "--secrets", str(secrets),
        "--out-dir", str(out),
        *SITE_ARGS,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    passwords = {r["account"]: r["mqtt_password"] for r in csv.DictReader(secrets.open())}
    assert not any(p in proc.stdout + proc.stderr for p in passwords.values())
    acl = (out / "acl").read_text()
    broker = Mosquitto(tmp_path / "mosquitto", users={"placeholder": "x"}, acl=acl)
    shutil.copyfile(out / "passwd", broker.dir / "passwd")  # the generated hashes, not re-made ones
    broker.start()
    return broker, passwords, acl
