"""The paho client both ends of the contract use: paho 2 on MQTT 5, Nagle off, TLS verified.

The phone's bridge (``crm_bridge.bridge``) and the CRM gateway (``gateway.mqtt``) build their
connections here, so that the two set the broker link up the same way.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """paho's ``on_socket_open``: turn Nagle's algorithm off. A reply or event written right after a
    PUBACK would otherwise wait for the broker's delayed ACK of that PUBACK (about 40 ms on Linux)."""
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def new_client(
    client_id: str, username: str | None = None, password: str | None = None, *, manual_ack: bool = False
) -> mqtt.Client:
    """An MQTT 5 client (callback API 2) with TCP_NODELAY; ``username`` empty or None: anonymous."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack
    )
    if username:
        client.username_pw_set(username, password or None)
    client.on_socket_open = no_delay
    return client


def use_tls(
    client: mqtt.Client, ca_file: str | Path | None, certfile: str | Path | None, keyfile: str | Path | None
) -> None:
    """TLS with the server's certificate verified (against ``ca_file``, else the system's CAs) and an
    optional client certificate. Raises ``OSError`` for a file it cannot load (``ssl.SSLError`` for a
    key that does not match the certificate is one too)."""
    client.tls_set(
        ca_certs=str(ca_file) if ca_file else None,
        certfile=str(certfile) if certfile else None,
        keyfile=str(keyfile) if keyfile else None,
        cert_reqs=ssl.CERT_REQUIRED,
    )
