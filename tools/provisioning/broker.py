"""What the office's mosquitto needs: a password file in its own hash format, and a per-device ACL.

Mosquitto 2's ``$7$`` format is PBKDF2-HMAC-SHA512 with a 12-byte random salt and 101 iterations,
written ``$7$<iterations>$<base64 salt>$<base64 hash>`` (standard base64 with padding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

from .device import Device, Site

ITERATIONS = 101
SALT_BYTES = 12


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """A mosquitto ``$7$`` password hash."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash."""
    try:
        _, kind, iterations, salt64, hash64 = encoded.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    salt = base64.b64decode(salt64)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(iterations))
    return hmac.compare_digest(digest, base64.b64decode(hash64))


def password_file(accounts: Iterable[tuple[str, str]]) -> str:
    """Lines ``user:$7$...`` for ``(user, password)`` pairs."""
    return "".join(f"{user}:{hash_password(password)}\n" for user, password in accounts)


def device_topics(site: Site, device_id: str) -> dict[str, list[str]]:
    """The topics one phone may read and write (the MQTT contract, version 1)."""
    base = f"{site.topic_prefix}/{device_id}"
    return {
        "read": [f"{base}/cmd/#"],
        "write": [f"{base}/status", f"{base}/events", f"{base}/reply/#"],
    }


def sidecar_topics(site: Site, phones: Iterable[str]) -> list[str]:
    """The topics a busy-light sidecar may read: the ``status`` and ``events`` of the phones it watches."""
    return [f"{site.topic_prefix}/{p}/{leaf}" for p in phones for leaf in ("status", "events")]


def acl_file(
    devices: Iterable[Device], site: Site, sidecars: Iterable[tuple[str, Iterable[str]]] = ()
) -> str:
    """A mosquitto ACL: each phone only its own topics; the CRM commands all phones and reads all;
    each busy-light sidecar ``(account, watched device ids)`` only reads those phones' status and events."""
    prefix = site.topic_prefix
    lines = [
        "# mosquitto ACL written by tools/flash.py broker; regenerate rather than edit",
        "# phones read only their own cmd/# and write only their own status, events, reply/#",
        "",
        f"user {site.crm_username}",
        f"topic write {prefix}/+/cmd/#",
        f"topic read {prefix}/+/status",
        f"topic read {prefix}/+/events",
        f"topic read {prefix}/+/reply/#",
        "# the gateway instances' presence (several instances sharing the work; no device id starts with _)",
        f"topic readwrite {prefix}/_gateways/#",
        "",
    ]
    for device in devices:
        topics = device_topics(site, device.device_id)
        lines.append(f"user {device.device_id}")
        lines.extend(f"topic read {t}" for t in topics["read"])
        lines.extend(f"topic write {t}" for t in topics["write"])
        lines.append("")
    for account, phones in sidecars:
        lines.append(f"# busy light {account}: reads only the status and events of the phones it watches")
        lines.append(f"user {account}")
        lines.extend(f"topic read {t}" for t in sidecar_topics(site, phones))
        lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class Listener:
    """The broker's listener for the phones: where it listens and, with TLS, its certificate and key
    (paths on the broker's host; the key readable by the mosquitto user only)."""

    port: int
    address: str = ""  # empty: every interface
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def tls(self) -> bool:
        return self.certfile is not None

    def describe(self) -> str:
        where = f"{self.address}:{self.port}" if self.address else f"port {self.port} on every interface"
        return f"{where}, " + (f"TLS with {self.certfile} and {self.keyfile}" if self.tls else "plain MQTT")


def mosquitto_snippet(passwd_path: str, acl_path: str, listener: Listener) -> str:
    """A file for ``/etc/mosquitto/conf.d/``: the phones' listener and the generated files in use.

    Without a ``listener`` line mosquitto 2 would listen on the loopback interface only ("local only
    mode") and no phone could connect.
    """
    lines = [
        "# mosquitto 2.x configuration for the desk phones, written by tools/flash.py broker",
        "per_listener_settings false",
        "allow_anonymous false",
        "# replies and events go out at once instead of waiting ~40 ms for a delayed ACK (Nagle)",
        "set_tcp_nodelay true",
        f"password_file {passwd_path}",
        f"acl_file {acl_path}",
        "",
        f"listener {listener.port}{f' {listener.address}' if listener.address else ''}",
    ]
    if listener.tls:
        lines += [f"certfile {listener.certfile}", f"keyfile {listener.keyfile}"]
    else:
        lines.append("# plain MQTT: passwords and calls cross the network readable; prefer mqtt.tls = true")
    return "\n".join(lines) + "\n"
