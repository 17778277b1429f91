"""The gateway's configuration: ``gateway.toml`` (and ``secrets.toml`` beside it), checked like the
phone's: every error at once, each naming its key, secrets never shown.

``load_config(path)`` reads and checks; ``render_config`` shows it back with secrets masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from configschema import values as check
from configschema.schema import ConfigError, check_sections, merge_secrets, read_toml, render, resolve_paths
from configschema.sections import LogConfig
from configschema.values import Secret

__all__ = ["Config", "ConfigError", "load_config", "parse_config", "render_config"]

DEFAULT_STORAGE_DIR = Path("/var/lib/deskphone-gateway")
SECRETS_FILE_NAME = "secrets.toml"
NO_SECRET = Secret("")


@dataclass(frozen=True)
class MqttConfig:
    """The office broker, as the CRM account that ``tools/flash.py broker`` creates."""

    host: Annotated[str, check.host]
    port: Annotated[int, check.integer(1, 65535)] = 1883
    username: Annotated[str, check.string()] = "crm"
    password: Annotated[Secret, check.secret] = NO_SECRET
    tls: Annotated[bool, check.boolean] = False
    ca_file: Annotated[Path | None, check.path] = None
    client_cert: Annotated[Path | None, check.path] = None
    client_key: Annotated[Path | None, check.path] = None
    topic_prefix: Annotated[str, check.topic_prefix] = "deskphone"
    client_id: Annotated[
        str, check.string(r"[A-Za-z0-9_.-]{1,64}", "1-64 letters, digits, '.', '_', '-'")
    ] = "deskphone-gateway"
    keepalive_s: Annotated[int, check.integer(5, 3600)] = 30
    session_expiry_s: Annotated[int, check.integer(60, 4294967295)] = 86400
    # Several instances: each its own client_id, all the same share_group (MQTT 5 shared subscription).
    share_group: Annotated[
        str, check.string(r"[A-Za-z0-9_.-]{0,64}", "up to 64 letters, digits, '.', '_', '-'")
    ] = ""


@dataclass(frozen=True)
class InventoryConfig:
    """The office inventory (``office.csv``): desk -> extension -> CRM user."""

    file: Annotated[Path, check.path]


@dataclass(frozen=True)
class StorageConfig:
    """SQLite in ``dir`` for one gateway; PostgreSQL (``dsn``, a libpq connection string) for several."""

    dir: Annotated[Path, check.path] = DEFAULT_STORAGE_DIR
    backend: Annotated[str, check.one_of("sqlite", "postgresql")] = "sqlite"
    dsn: Annotated[Secret, check.secret] = NO_SECRET  # postgresql://gateway:<password>@db.example/gateway


@dataclass(frozen=True)
class HttpConfig:
    """Where the gateway listens for CRMs (Bitrix24 events, ``POST /v1/calls``)."""

    listen: Annotated[str, check.host_and_port] = "127.0.0.1:8088"
    public_url: Annotated[str, check.url()] = ""  # how the CRM reaches us (https://gateway.example)
    tls_cert: Annotated[Path | None, check.path] = None
    tls_key: Annotated[Path | None, check.path] = None


@dataclass(frozen=True)
class Bitrix24Config:
    """A Bitrix24 portal, through a server-side local application (OAuth)."""

    enabled: Annotated[bool, check.boolean] = False
    domain: Annotated[str, check.host_and_port] = "example.bitrix24.com"
    client_id: Annotated[str, check.string()] = ""
    client_secret: Annotated[Secret, check.secret] = NO_SECRET
    oauth_server: Annotated[str, check.url(("https",))] = "https://oauth.bitrix.info"
    ca_file: Annotated[Path | None, check.path] = None  # extra CA bundle (a portal behind a private CA)
    line_number: Annotated[str, check.string()] = ""
    line_name: Annotated[str, check.string()] = "Desk phones"
    dial_ttl_s: Annotated[int, check.integer(5, 3600)] = 60
    crm_create: Annotated[bool, check.boolean] = False
    rate_burst: Annotated[int, check.integer(1, 10000)] = 50
    rate_per_s: Annotated[float, check.number(0.1, 1000)] = 2.0
    timeout_s: Annotated[float, check.number(1, 120)] = 10.0
    # Requests that wait together go in one ``batch`` (up to 50 commands, one request of the limit).
    batch: Annotated[bool, check.boolean] = True
    # How long a finish may wait for others to share its batch (pop-ups never wait).
    batch_linger_ms: Annotated[int, check.integer(0, 10000)] = 500


@dataclass(frozen=True)
class WebhookConfig:
    """Any other CRM: one signed JSON call card per finished call, POSTed to ``url``."""

    enabled: Annotated[bool, check.boolean] = False
    url: Annotated[str, check.url()] = ""
    secret: Annotated[Secret, check.secret] = NO_SECRET
    steps: Annotated[bool, check.boolean] = False  # also the ring and answer steps, for pop-ups
    timeout_s: Annotated[float, check.number(1, 120)] = 10.0


@dataclass(frozen=True)
class ApiConfig:
    """``POST /v1/calls``: one bearer token per CRM integration (name = token)."""

    tokens: Annotated[dict[str, Secret], check.secret_table] = field(default_factory=dict)
    dial_ttl_s: Annotated[int, check.integer(5, 3600)] = 60
    reply_timeout_s: Annotated[float, check.number(1, 120)] = 10.0


def time_zone(value: Any) -> str:
    """An IANA time zone name (``Europe/Berlin``), as the system's tz database knows it."""
    text = check.string()(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise check.Invalid(f"unknown time zone {text!r} (an IANA name such as 'Europe/Berlin')") from None
    return text


@dataclass(frozen=True)
class StatsConfig:
    """Call statistics (``/stats``, ``deskphone-gateway report``): the office's time zone, whether
    desks without a CRM user are left out or shown apart, and the page's access token (empty: the page
    is off)."""

    time_zone: Annotated[str, time_zone] = "UTC"
    accountants: Annotated[str, check.one_of("omit", "apart")] = "omit"
    token: Annotated[Secret, check.secret] = NO_SECRET
    chart_js: Annotated[Path, check.path] = Path("/usr/share/javascript/chart.js/chart.min.js")


@dataclass(frozen=True)
class OutboxConfig:
    """How a CRM that does not accept requests is retried (doubling from min to max)."""

    retry_min_s: Annotated[float, check.number(0.05, 60)] = 0.5
    retry_max_s: Annotated[float, check.number(0.1, 600)] = 30.0


@dataclass(frozen=True)
class Config:
    mqtt: MqttConfig
    inventory: InventoryConfig
    storage: StorageConfig = field(default_factory=StorageConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    bitrix24: Bitrix24Config = field(default_factory=Bitrix24Config)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    log: LogConfig = field(default_factory=LogConfig)


SECTIONS: dict[str, type] = {
    "mqtt": MqttConfig,
    "inventory": InventoryConfig,
    "storage": StorageConfig,
    "http": HttpConfig,
    "bitrix24": Bitrix24Config,
    "webhook": WebhookConfig,
    "api": ApiConfig,
    "outbox": OutboxConfig,
    "stats": StatsConfig,
    "log": LogConfig,
}


def load_config(path: str | Path, secrets_path: str | Path | None = None) -> Config:
    """Read and check ``path``; ``secrets.toml`` beside it (if present) is merged over it."""
    path = Path(path)
    data = read_toml(path)
    default_secrets = path.parent / SECRETS_FILE_NAME
    if secrets_path is None and default_secrets.exists():
        secrets_path = default_secrets
    if secrets_path is not None:
        data = merge_secrets(data, Path(secrets_path))
    return parse_config(data, base_dir=path.resolve().parent)


def parse_config(data: dict[str, Any], base_dir: Path | None = None) -> Config:
    errors: list[str] = []
    values, _ = check_sections(data, SECTIONS, errors, required=("mqtt", "inventory"))
    resolve_paths(values, base_dir)
    _check_across_sections(values, errors)
    if errors:
        raise ConfigError(errors)
    return Config(**{name: SECTIONS[name](**section) for name, section in values.items()})


def _check_across_sections(values: dict[str, dict[str, Any]], errors: list[str]) -> None:
    b24, hook, http, mqtt = values["bitrix24"], values["webhook"], values["http"], values["mqtt"]
    if b24["enabled"]:
        if not b24["client_id"]:
            errors.append("bitrix24.client_id: required when bitrix24.enabled is true")
        if not b24["client_secret"]:
            errors.append("bitrix24.client_secret: required when bitrix24.enabled is true")
        if not http["public_url"]:
            errors.append(
                "http.public_url: required when bitrix24.enabled is true (Bitrix24 posts events to it)"
            )
    if hook["enabled"]:
        if not hook["url"]:
            errors.append("webhook.url: required when webhook.enabled is true")
        if not hook["secret"]:
            errors.append("webhook.secret: required when webhook.enabled is true (cards are signed with it)")
    if values["storage"]["backend"] == "postgresql" and not values["storage"]["dsn"]:
        errors.append('storage.dsn: required when storage.backend is "postgresql"')
    if bool(http["tls_cert"]) != bool(http["tls_key"]):
        errors.append("http.tls_key: http.tls_cert and http.tls_key go together")
    if bool(mqtt["client_cert"]) != bool(mqtt["client_key"]):
        errors.append("mqtt.client_key: mqtt.client_cert and mqtt.client_key go together")


def render_config(config: Config, show_secrets: bool = False) -> str:
    return render(config, show_secrets=show_secrets)
