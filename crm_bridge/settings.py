"""Settings of the CRM bridge: the broker, credentials, topics and the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MqttSettings:
    """Where and how the bridge talks to the broker.

    ``password`` is never shown by ``repr`` and never logged. ``tls`` without ``ca_file`` uses the
    system's CA store; ``client_cert``/``client_key`` add a client certificate.
    """

    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    topic_prefix: str = "deskphone"
    keepalive_s: int = 30
    session_expiry_s: int = 3600
    outbox_path: str = "/var/lib/deskphone/outbox.sqlite3"
    outbox_max_events: int = 10_000
    firmware_version: str = "0.0.0"
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30

    def base_topic(self, device_id: str) -> str:
        """``<prefix>/<device_id>``; the prefix never starts or ends with a slash."""
        prefix = self.topic_prefix.strip("/")
        return f"{prefix}/{device_id}" if prefix else device_id


@dataclass(frozen=True)
class PhoneStatus:
    """What the retained ``status`` says about the phone besides being online."""

    registered: bool = False
    state: str = "idle"
    extension: str = ""
    settings: dict[str, Any] | None = None  # {"dnd": ..., "forward": {...}}: shown in the status
