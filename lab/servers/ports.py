"""Free loopback ports for test servers."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(span: int = 1) -> int:
    """A port on 127.0.0.1 free for both UDP and TCP at the time of asking, with the ``span - 1``
    ports after it free for TCP too (baresip opens its SIP/TLS listener on the SIP port + 1)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((LOOPBACK, 0))
            port = udp.getsockname()[1]
            if port + span - 1 > 65535:
                continue
            if all(_tcp_free(p) for p in range(port, port + span)):
                return port
    raise RuntimeError("no free UDP+TCP port on 127.0.0.1")


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        try:
            tcp.bind((LOOPBACK, port))
        except OSError:
            return False
        return True
