"""Wakes the ``sip`` thread out of ``libHandleEvents`` when a job is posted to it.

The ``sip`` thread sleeps in pjsip's ioqueue (``select``) until SIP or RTP I/O or pjsip's next timer
is due. Media shares that ioqueue (``MediaConfig.hasIoqueue`` off, no media worker thread), and only
the ``sip`` thread polls it, so a datagram to a UDP SIP transport ends its wait. The datagram is two
CRLFs: pjsip drops datagrams that short before parsing, and a SIP keep-alive is CRLFs anyway. A phone
whose line is TCP or TLS gets a UDP transport on 127.0.0.1 of its own for this.
"""

from __future__ import annotations

import contextlib
import logging
import socket

import pjsua2 as pj

logger = logging.getLogger(__name__)

_WAKE_DATAGRAM = b"\r\n\r\n"


class PumpWakeup:
    """``wake()`` from any thread ends the ``sip`` thread's current ``libHandleEvents`` wait."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    @classmethod
    def for_transport(
        cls, ep: pj.Endpoint, transport_id: int, transport: str, bind_address: str
    ) -> PumpWakeup:
        """On the ``sip`` thread, after ``transportCreate``: a wake-up through the line's UDP transport,
        or through a loopback UDP transport of its own when the line is not UDP."""
        host = bind_address if bind_address and bind_address != "0.0.0.0" else "127.0.0.1"
        if transport != "udp":
            cfg = pj.TransportConfig()
            cfg.port = 0
            cfg.boundAddress = "127.0.0.1"
            transport_id = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, cfg)
            host = "127.0.0.1"
        port = int(ep.transportGetInfo(transport_id).localName.rsplit(":", 1)[1])
        return cls((host, port))

    def wake(self) -> None:
        try:
            self._sock.sendto(_WAKE_DATAGRAM, self.address)
        except OSError as exc:  # a full socket buffer already holds a wake-up
            logger.debug("sip wake-up not sent: %s", exc)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
