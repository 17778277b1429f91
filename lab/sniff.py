"""A loopback packet sniffer (AF_PACKET on ``lo``; needs root or CAP_NET_RAW) that time-stamps packets.

Used where the exact moment a packet is on the wire matters: the phone's RTP (audio path delay), the
registrar's 200 OK to REGISTER and the broker's CONNACK (start-up figures).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

ETH_P_ALL = 0x0003
PACKET_HOST = 0


@dataclass(frozen=True)
class Packet:
    t: float
    proto: int  # 6 TCP, 17 UDP
    sport: int
    dport: int
    payload: bytes


Handler = Callable[[Packet], None]


def available() -> bool:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)).close()
    except (PermissionError, OSError, AttributeError):
        return False
    return True


class Sniffer:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.bind(("lo", 0))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.settimeout(0.2)
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sniffer", daemon=True)

    def __enter__(self) -> Sniffer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def add(self, handler: Handler) -> None:
        with self._lock:
            self._handlers.append(handler)

    def remove(self, handler: Handler) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._handlers.remove(handler)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self._sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            t = time.monotonic()
            if addr[2] != PACKET_HOST or len(frame) < 34 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            proto = ip[9]
            seg = ip[ihl:]
            if proto == 17 and len(seg) >= 8:
                sport, dport = struct.unpack("!HH", seg[:4])
                payload = seg[8:]
            elif proto == 6 and len(seg) >= 20:
                sport, dport = struct.unpack("!HH", seg[:4])
                payload = seg[(seg[12] >> 4) * 4 :]
            else:
                continue
            packet = Packet(t, proto, sport, dport, payload)
            with self._lock:
                handlers = list(self._handlers)
            for handler in handlers:
                handler(packet)


def rtp_payload(data: bytes) -> tuple[int, bytes] | None:
    """(payload type, payload) of an RTP packet, or None."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    pt = data[1] & 0x7F
    if 72 <= pt <= 76:  # RTCP
        return None
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= offset + 4:
        offset += 4 + 4 * struct.unpack("!H", data[offset + 2 : offset + 4])[0]
    return pt, data[offset:]


def ulaw_decode(data: bytes) -> list[int]:
    out = []
    for b in data:
        u = ~b & 0xFF
        exp = (u >> 4) & 7
        mag = (((u & 0x0F) << 3) + 0x84 << exp) - 0x84
        out.append(-mag if u & 0x80 else mag)
    return out
