"""One phone's settings and the two files rendered from them: the config and the secrets.

The config (``deskphone.toml``) holds no secret; the secrets file (``secrets.toml``) has the same
section and key names as the config but only the secret keys::

    [sip]
    password = "..."

    [mqtt]
    password = "..."

On the phone they live at ``/etc/deskphone/deskphone.toml`` (0640 root:deskphone) and
``/etc/deskphone/secrets.toml`` (0600 deskphone); the daemon merges the second into the first.
"""

from __future__ import annotations

import re
import secrets as _secrets
import string
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import InvalidDevice
from .tomlwriter import dumps

CONFIG_PATH = "/etc/deskphone/deskphone.toml"
SECRETS_PATH = "/etc/deskphone/secrets.toml"
CA_PATH = "/etc/deskphone/ca.pem"
STORAGE_DIR = "/var/lib/deskphone"
BOARDS = ("rpi-v1", "sim")
TRANSPORTS = ("udp", "tcp", "tls")
SECRET_KEYS = (("sip", "password"), ("mqtt", "password"))

# The phone's own rule (firmware.config's device.id): it is a topic level, the broker user name and
# the image's file name; a leading '-' or '_' would read as an option on command lines.
DEVICE_ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
DEVICE_ID_RULE = "lower-case letters, digits, '-' and '_', 1-64 long, starting with a letter or digit"
_DEVICE_ID = re.compile(rf"^{DEVICE_ID_PATTERN}$")
_SIP_USER = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,253}$")
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def generate_password(length: int = 24) -> str:
    """A random password from letters and digits (no quoting trouble in any file format)."""
    return "".join(_secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class Site:
    """What every phone of an office shares: PBX, broker, CRM account name."""

    sip_registrar: str = ""
    sip_transport: str = "udp"
    trusted_pbx: tuple[str, ...] = ()
    mqtt_enabled: bool = True
    mqtt_host: str = ""
    mqtt_port: int = 1883
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None  # local CA file copied to the card, installed at CA_PATH
    topic_prefix: str = "deskphone"
    crm_username: str = "crm"
    pin_factory: str = "lgpio"

    def problems(self) -> list[str]:
        errors: list[str] = []
        if not self.sip_registrar or not _HOST.match(self.sip_registrar):
            errors.append(f"sip.registrar: a host name is required (got {self.sip_registrar!r})")
        if self.sip_transport not in TRANSPORTS:
            errors.append(f"sip.transport: one of {', '.join(TRANSPORTS)} (got {self.sip_transport!r})")
        errors.extend(
            f"sip.trusted_pbx: {host!r} is not a host name"
            for host in self.trusted_pbx
            if not _HOST.match(host)
        )
        if self.mqtt_enabled:
            if not self.mqtt_host or not _HOST.match(self.mqtt_host):
                errors.append(
                    f"mqtt.host: a host name is required when mqtt is enabled (got {self.mqtt_host!r})"
                )
            if not 0 < self.mqtt_port < 65536:
                errors.append(f"mqtt.port: 1..65535 (got {self.mqtt_port})")
            prefix = self.topic_prefix
            if not prefix or prefix.startswith("/") or prefix.endswith("/") or set(prefix) & set("#+\0"):
                errors.append(f"mqtt.topic_prefix: no leading/trailing '/', no wildcards (got {prefix!r})")
            if not _DEVICE_ID.match(self.crm_username):
                errors.append(f"mqtt.crm_username: {DEVICE_ID_RULE} (got {self.crm_username!r})")
            if self.mqtt_ca_file is not None and not self.mqtt_ca_file.is_file():
                errors.append(f"mqtt.ca_file: no such file {self.mqtt_ca_file}")
        return errors

    @classmethod
    def from_toml(cls, path: Path, warn: Callable[[str], None] | None = None) -> Site:
        """Read a site file: ``[sip]`` registrar/transport/trusted_pbx, ``[mqtt]`` enabled/host/port/tls/
        ca_file/topic_prefix/crm_username, ``[board]`` pin_factory.

        ``mqtt.ca_cert``, the old name of ``ca_file``, is still read; ``warn`` (stderr by default)
        says so once."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidDevice([f"{path}: {exc}"]) from exc
        sip, mqtt, board = data.get("sip", {}), data.get("mqtt", {}), data.get("board", {})
        known = {
            "sip": {"registrar", "transport", "trusted_pbx"},
            "mqtt": {"enabled", "host", "port", "tls", "ca_file", "ca_cert", "topic_prefix", "crm_username"},
            "board": {"pin_factory"},
        }
        errors = [f"{path}: unknown section [{s}]" for s in data if s not in known]
        for section, keys in known.items():
            errors.extend(
                f"{path}: unknown key {section}.{k}" for k in data.get(section, {}) if k not in keys
            )
        if "ca_cert" in mqtt and "ca_file" in mqtt:
            errors.append(f"{path}: mqtt.ca_cert is the old name of mqtt.ca_file: keep only ca_file")
        if errors:
            raise InvalidDevice(errors)
        if "ca_cert" in mqtt:
            (warn or _warn)(
                f"{path}: mqtt.ca_cert is deprecated, rename it to ca_file "
                "(the same key as in the phone's config); read as ca_file this time"
            )
        ca = mqtt.get("ca_file", mqtt.get("ca_cert"))
        return cls(
            sip_registrar=str(sip.get("registrar", "")),
            sip_transport=str(sip.get("transport", "udp")),
            trusted_pbx=tuple(sip.get("trusted_pbx", ())),
            mqtt_enabled=bool(mqtt.get("enabled", True)),
            mqtt_host=str(mqtt.get("host", "")),
            mqtt_port=int(mqtt.get("port", 8883 if mqtt.get("tls") else 1883)),
            mqtt_tls=bool(mqtt.get("tls", False)),
            mqtt_ca_file=(path.parent / ca) if ca else None,
            topic_prefix=str(mqtt.get("topic_prefix", "deskphone")),
            crm_username=str(mqtt.get("crm_username", "crm")),
            pin_factory=str(board.get("pin_factory", "lgpio")),
        )

    def with_overrides(self, **changes: Any) -> Site:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class Device:
    """One phone: identity, SIP account, board revision and its two passwords."""

    device_id: str
    extension: str
    name: str = ""
    board: str = "rpi-v1"
    owner: str = ""  # crm_user: the CRM user at this desk (the CRM gateway's); empty: a plain extension
    sip_password: str = field(default="", repr=False)
    mqtt_password: str = field(default="", repr=False)

    def problems(self) -> list[str]:
        errors: list[str] = []
        if not self.device_id:
            errors.append("device_id: required")
        elif not _DEVICE_ID.match(self.device_id):
            errors.append(f"device_id: {DEVICE_ID_RULE} (got {self.device_id!r})")
        if not self.extension:
            errors.append("extension: required (the phone's SIP user)")
        elif not _SIP_USER.match(self.extension):
            errors.append(f"extension: letters, digits, '._+-' (got {self.extension!r})")
        if self.board not in BOARDS:
            errors.append(f"board: one of {', '.join(BOARDS)} (got {self.board!r})")
        if len(self.name) > 64 or any(ord(c) < 32 for c in self.name):
            errors.append("name: at most 64 printable characters")
        return errors

    def with_passwords(self, mqtt_enabled: bool = True) -> Device:
        """This device with generated passwords where none were given."""
        return replace(
            self,
            sip_password=self.sip_password or generate_password(),
            mqtt_password=(self.mqtt_password or generate_password()) if mqtt_enabled else "",
        )


def _warn(message: str) -> None:
    print(f"flash: warning: {message}", file=sys.stderr)


def render_config(device: Device, site: Site) -> dict[str, dict[str, Any]]:
    """The phone's config without secrets, as ``{section: {key: value}}``."""
    mqtt: dict[str, Any] = {"enabled": site.mqtt_enabled}
    if site.mqtt_enabled:
        mqtt.update(
            host=site.mqtt_host,
            port=site.mqtt_port,
            username=device.device_id,
            tls=site.mqtt_tls,
            topic_prefix=site.topic_prefix,
        )
        if site.mqtt_ca_file:
            mqtt["ca_file"] = CA_PATH
    return {
        "device": {"id": device.device_id, "name": device.name or device.device_id},
        "board": {"name": device.board, "pin_factory": "mock" if device.board == "sim" else site.pin_factory},
        "sip": {
            "registrar": site.sip_registrar,
            "user": device.extension,
            "transport": site.sip_transport,
            "trusted_pbx": list(site.trusted_pbx),
        },
        "mqtt": mqtt,
        "storage": {"dir": STORAGE_DIR},
    }


def render_secrets(device: Device, site: Site) -> dict[str, dict[str, Any]]:
    """Only the secret keys, under the same section names as the config."""
    out: dict[str, dict[str, Any]] = {"sip": {"password": device.sip_password}}
    if site.mqtt_enabled:
        out["mqtt"] = {"password": device.mqtt_password}
    return out


def merge(config: dict[str, dict[str, Any]], secrets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the daemon sees: the config with the secrets file laid over it."""
    merged = {section: dict(values) for section, values in config.items()}
    for section, values in secrets.items():
        merged.setdefault(section, {}).update(values)
    return merged


def config_text(device: Device, site: Site) -> str:
    header = (
        f"deskphone configuration for {device.device_id}, written by tools/flash.py\n"
        f"secrets (sip.password, mqtt.password) are in {SECRETS_PATH}"
    )
    return dumps(render_config(device, site), header=header)


def secrets_text(device: Device, site: Site) -> str:
    header = f"deskphone secrets for {device.device_id}: keep mode 0600, merged over {CONFIG_PATH}"
    return dumps(render_secrets(device, site), header=header)


def validate(config: dict[str, dict[str, Any]], secrets: dict[str, dict[str, Any]]) -> list[str]:
    """Every error ``firmware.config`` finds in the merged config (empty when valid).

    Raises ImportError when the firmware's config schema is not importable: provisioning never
    writes a config that was not checked by the schema the phone itself uses.
    """
    from firmware.config import ConfigError, parse_config  # lazy: tools must import without firmware

    try:
        parse_config(merge(config, secrets))
    except ConfigError as exc:
        return list(exc.errors) or [str(exc)]
    return []


def check_device(device: Device, site: Site) -> list[str]:
    """Our own checks, then the firmware's schema; every problem at once."""
    errors = device.problems() + site.problems()
    if errors:
        return errors
    try:
        return validate(render_config(device, site), render_secrets(device, site))
    except ImportError as exc:
        return [f"cannot validate the config: firmware.config is not importable ({exc})"]
