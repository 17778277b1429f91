"""The office inventory (CSV, one phone a row) and the secrets store shared by ``bulk`` and ``broker``.

Inventory columns: ``device_id`` and ``extension`` are required; ``name``, ``board`` (default
``rpi-v1``), ``crm_user`` (the CRM user who sits at that desk: the CRM gateway reads this file and
credits the desk's calls to that user; empty for a plain extension, never reported to a CRM) and
``sip_password`` (empty: generated) are optional. Every bad row is reported at once, by its row
number as a spreadsheet shows it (the header is row 1).

The secrets store is a CSV (mode 0600) of ``account,sip_password,mqtt_password``, one row per phone
(``account`` is its device id) and one for the CRM's broker account (``crm_username``, no SIP
password): generated passwords
are kept there, and only there, so that the images written by ``bulk`` and the broker files written
by ``broker`` agree whichever runs first.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from .device import Device, Site, generate_password
from .errors import InvalidDevice

REQUIRED = ("device_id", "extension")
OPTIONAL = ("name", "board", "crm_user", "sip_password")
STORE_FIELDS = ("account", "sip_password", "mqtt_password")


@dataclass(frozen=True)
class Row:
    """A device and the spreadsheet row it came from."""

    number: int
    device: Device


def parse_inventory(text: str, source: str = "inventory") -> list[Row]:
    """Parse the CSV; raise InvalidDevice naming every bad row when any row is bad."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    errors: list[str] = []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing:
        errors.append(f"{source}: missing column(s) {', '.join(missing)}")
    if unknown:
        errors.append(
            f"{source}: unknown column(s) {', '.join(unknown)} (known: {', '.join(REQUIRED + OPTIONAL)})"
        )
    if errors:
        raise InvalidDevice(errors)
    reader.fieldnames = header
    devices: list[Row] = []
    seen_ids: dict[str, int] = {}
    seen_ext: dict[str, int] = {}
    for index, row in enumerate(reader):
        rownum = index + 2
        if None in row:
            errors.append(f"row {rownum}: more fields than columns")
            continue
        values = {k: (v or "").strip() for k, v in row.items()}
        if not any(values.values()):
            continue  # blank line
        device = Device(
            device_id=values["device_id"],
            extension=values["extension"],
            name=values.get("name", ""),
            board=values.get("board", "") or "rpi-v1",
            owner=values.get("crm_user", ""),
            sip_password=values.get("sip_password", ""),
        )
        problems = device.problems()
        if device.device_id in seen_ids:
            problems.append(
                f"device_id {device.device_id!r} already used in row {seen_ids[device.device_id]}"
            )
        if device.extension in seen_ext:
            problems.append(
                f"extension {device.extension!r} already used in row {seen_ext[device.extension]}"
            )
        seen_ids.setdefault(device.device_id, rownum)
        seen_ext.setdefault(device.extension, rownum)
        errors.extend(f"row {rownum}: {p}" for p in problems)
        devices.append(Row(rownum, device))
    if errors:
        raise InvalidDevice(errors)
    if not devices:
        raise InvalidDevice([f"{source}: no devices"])
    return devices


def load_inventory(path: Path) -> list[Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidDevice([f"{path}: {exc.strerror}"]) from exc
    return parse_inventory(text, source=str(path))


def check_against_site(devices: Iterable[Device], site: Site) -> list[str]:
    """Problems that involve the site: a device id that is the CRM account's name."""
    return [
        f"device_id {d.device_id!r} is the CRM account's user name; choose another"
        for d in devices
        if site.mqtt_enabled and d.device_id == site.crm_username
    ]


class SecretsStore:
    """Passwords by account (device id or the CRM user name), persisted with mode 0600."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, str]] = {}
        self.changed = False
        if path is not None and path.exists():
            with path.open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    account = (row.get("account") or "").strip()
                    if account:
                        self.entries[account] = {k: (row.get(k) or "") for k in STORE_FIELDS[1:]}

    def _get_or_make(self, account: str, key: str, given: str = "") -> str:
        entry = self.entries.setdefault(account, {"sip_password": "", "mqtt_password": ""})
        if given and entry.get(key) != given:
            entry[key] = given
            self.changed = True
        if not entry.get(key):
            entry[key] = generate_password()
            self.changed = True
        return entry[key]

    def complete(self, device: Device, site: Site) -> Device:
        """The device with its passwords: given ones win, then stored ones, then new ones."""
        sip = self._get_or_make(device.device_id, "sip_password", device.sip_password)
        mqtt = self._get_or_make(device.device_id, "mqtt_password") if site.mqtt_enabled else ""
        return replace(device, sip_password=sip, mqtt_password=mqtt)

    def crm_password(self, site: Site) -> str:
        return self._get_or_make(site.crm_username, "mqtt_password")

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=STORE_FIELDS, lineterminator="\n")
        writer.writeheader()
        for account, entry in sorted(self.entries.items()):
            writer.writerow({"account": account, **entry})
        write_private(self.path, buf.getvalue())
        self.changed = False


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; the file is never readable by others, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
